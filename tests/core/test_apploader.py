"""App loading: spec forms, factories, and the failure kinds servers turn into exit code 4."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tricorn.core.apploader import AppLoadError, AppSpec, load_app, parse_app_spec

_counter = itertools.count()


class AppDir:
    """A temporary directory on sys.path where each test writes uniquely named modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[str] = []

    def module(self, source: str, *, package: str | None = None) -> str:
        name = f"tricorn_test_app_{next(_counter)}"
        if package is None:
            (self.root / f"{name}.py").write_text(textwrap.dedent(source))
            self.created.append(name)
            return name
        pkg = self.root / package
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").touch()
        (pkg / f"{name}.py").write_text(textwrap.dedent(source))
        self.created += [package, f"{package}.{name}"]
        return f"{package}.{name}"

    def load(self, spec: str, *, factory: bool = False) -> Callable[..., object]:
        return load_app(spec, factory=factory, app_dir=str(self.root))


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[AppDir]:
    saved_path = list(sys.path)
    app_dir = AppDir(tmp_path)
    yield app_dir
    sys.path[:] = saved_path
    for name in app_dir.created:
        sys.modules.pop(name, None)


APP_SOURCE = """
def app(environ, start_response):
    return [b"app"]

def application(environ, start_response):
    return [b"application"]

class Holder:
    class inner:
        @staticmethod
        def app(environ, start_response):
            return [b"inner"]

calls = []

def create_app(*args, **kwargs):
    calls.append((args, kwargs))
    def made(environ, start_response):
        return [repr((args, kwargs)).encode()]
    return made

not_an_app = 42

def broken_factory():
    raise RuntimeError("no database")
"""


def call(app: Callable[..., object]) -> object:
    return app({}, lambda *a: None)


def test_module_colon_attribute(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    assert call(apps.load(f"{name}:app")) == [b"app"]
    assert call(apps.load(f"{name}:application")) == [b"application"]


def test_dotted_attribute(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    assert call(apps.load(f"{name}:Holder.inner.app")) == [b"inner"]


def test_module_in_a_package(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE, package=f"tricorn_test_pkg_{next(_counter)}")
    assert "." in name
    assert call(apps.load(f"{name}:app")) == [b"app"]


def test_bare_module_prefers_application_then_app(apps: AppDir) -> None:
    both = apps.module(APP_SOURCE)
    assert call(apps.load(both)) == [b"application"]
    only_app = apps.module("def app(environ, start_response):\n    return [b'only app']\n")
    assert call(apps.load(only_app)) == [b"only app"]


def test_factory_call_syntax_with_literal_arguments(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    assert call(apps.load(f"{name}:create_app()")) == [b"((), {})"]
    made = apps.load(f"{name}:create_app(1, 'two', [3], name='x', flag=None)")
    assert call(made) == [repr(((1, "two", [3]), {"name": "x", "flag": None})).encode()]


def test_factory_flag_calls_without_arguments(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    module = sys.modules.get(name)
    assert module is None  # not imported yet
    assert call(apps.load(f"{name}:create_app", factory=True)) == [b"((), {})"]
    calls = sys.modules[name].calls
    assert calls == [((), {})]


def test_factory_flag_with_call_syntax_calls_once(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    apps.load(f"{name}:create_app(7)", factory=True)
    assert sys.modules[name].calls == [((7,), {})]


def test_app_dir_is_put_on_sys_path(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    assert str(apps.root) not in sys.path
    apps.load(f"{name}:app")
    assert sys.path[0] == str(apps.root)
    apps.load(f"{name}:app")
    assert sys.path.count(str(apps.root)) == 1


# --------------------------------------------------------------------------------------------------
# Failures


def test_module_not_found(apps: AppDir) -> None:
    with pytest.raises(AppLoadError) as info:
        apps.load("tricorn_no_such_module_xyz:app")
    error = info.value
    assert error.kind == "module_not_found"
    assert error.exit_code == 4
    assert "module 'tricorn_no_such_module_xyz' not found" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_file_name_instead_of_module_name_gets_a_hint(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}.py:app")
    assert info.value.kind == "module_not_found"
    assert f"not a file name: '{name}'" in str(info.value)


def test_missing_dependency_is_an_import_failure_not_a_missing_module(apps: AppDir) -> None:
    name = apps.module("import tricorn_missing_dependency_abc\napp = None\n")
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:app")
    assert info.value.kind == "import_failed"
    assert "tricorn_missing_dependency_abc" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_module_raising_at_import_keeps_the_traceback(apps: AppDir) -> None:
    name = apps.module("x = 1\nraise ValueError('bad settings')\n")
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:app")
    error = info.value
    assert error.kind == "import_failed"
    assert f"importing '{name}' raised ValueError: bad settings" in str(error)
    cause = error.__cause__
    assert isinstance(cause, ValueError)
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert frames[-1].endswith(f"{name}.py")  # the traceback reaches the app's own line


def test_syntax_error_in_module(apps: AppDir) -> None:
    name = apps.module("def app(:\n")
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:app")
    assert info.value.kind == "import_failed"
    assert isinstance(info.value.__cause__, SyntaxError)


def test_attribute_not_found(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:nope")
    assert info.value.kind == "attribute_not_found"
    assert f"'{name}' has no attribute 'nope'" in str(info.value)
    assert isinstance(info.value.__cause__, AttributeError)
    with pytest.raises(AppLoadError, match=rf"'{name}\.Holder' has no attribute 'missing'"):
        apps.load(f"{name}:Holder.missing.app")


def test_bare_module_without_application_or_app(apps: AppDir) -> None:
    name = apps.module("wsgi = None\n")
    with pytest.raises(AppLoadError) as info:
        apps.load(name)
    assert info.value.kind == "attribute_not_found"
    assert "neither 'application' nor 'app'" in str(info.value)


def test_factory_raising(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:broken_factory()")
    assert info.value.kind == "factory_failed"
    assert "raised RuntimeError: no database" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_not_callable(apps: AppDir) -> None:
    name = apps.module(APP_SOURCE)
    with pytest.raises(AppLoadError) as info:
        apps.load(f"{name}:not_an_app")
    assert info.value.kind == "not_callable"
    assert "is a int, not a callable application" in str(info.value)
    with pytest.raises(AppLoadError, match="factory 'not_an_app' is not callable"):
        apps.load(f"{name}:not_an_app", factory=True)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "expected MODULE:APP"),
        (":app", "expected MODULE:APP"),
        ("mod:", "nothing after ':'"),
        ("path/to/mod:app", "not a file path"),
        ("mod-name:app", "is not a module name"),
        ("mod:app[0]", "is not an attribute name or a call"),
        ("mod:1app", "is not an attribute name or a call"),
        ("mod:make(x)", "factory arguments must be Python literals"),
        ("mod:make(**opts)", "factory arguments must be Python literals"),
        ("mod:make()()", "only a named function can be called"),
        ("mod:__import__('os').system('true')", "only a named function can be called"),
    ],
)
def test_bad_specs(spec: str, reason: str) -> None:
    with pytest.raises(AppLoadError) as info:
        parse_app_spec(spec)
    assert info.value.kind == "bad_spec"
    assert reason in str(info.value)
    assert info.value.spec == spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pkg.mod", AppSpec("pkg.mod")),
        ("pkg.mod:app", AppSpec("pkg.mod", ("app",))),
        (" pkg.mod : api.app ", AppSpec("pkg.mod", ("api", "app"))),
        ("m:f()", AppSpec("m", ("f",), call=True)),
        (
            "m:ns.f(1, -2.5, b'x', name='y')",
            AppSpec("m", ("ns", "f"), call=True, args=(1, -2.5, b"x"), kwargs=(("name", "y"),)),
        ),
    ],
)
def test_parse_app_spec(spec: str, expected: AppSpec) -> None:
    assert parse_app_spec(spec) == expected
