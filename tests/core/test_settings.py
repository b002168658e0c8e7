"""The settings registry: sources and precedence, validation, Gunicorn config files, CLI, docs."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import re
import textwrap
from collections.abc import Mapping
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from tricorn.core import settings as s
from tricorn.core.limits import ParserLimits
from tricorn.core.settings import (
    CORE_CHECKS,
    CORE_SETTINGS,
    REGISTRY,
    BindAddress,
    Registry,
    Setting,
    Settings,
    SettingsError,
    bind_addresses,
    parse_bind,
    parser_limits,
    render_markdown,
)

REPO = Path(__file__).resolve().parents[2]


def load(
    argv: list[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path,
    registry: Registry = REGISTRY,
    command: str = "wsgi",
) -> Settings:
    return registry.load(command, argv, environ=dict(environ or {}), cwd=str(cwd))


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------------------------------
# Defaults


def test_defaults_without_any_source(tmp_path: Path) -> None:
    cfg = load(["app:app"], cwd=tmp_path)
    assert cfg[s.BIND] == ("127.0.0.1:8000",)
    assert cfg[s.KEEP_ALIVE] == 5.0
    assert cfg[s.GRACEFUL_TIMEOUT] == 30.0
    assert cfg[s.TIMEOUT_HEADER_READ] == 30.0
    assert cfg[s.BACKLOG] == 2048
    assert cfg[s.LIMIT_REQUEST_LINE] == 4094
    assert cfg[s.ACCESS_LOGFILE] is None
    assert cfg[s.ERROR_LOGFILE] == "-"
    assert cfg[s.FORWARDED_ALLOW_IPS] == ("127.0.0.1", "::1")
    assert cfg[s.REQUIRE_HOST] is True
    assert cfg.config_file is None
    assert cfg.warnings == ()
    assert cfg.source("keep_alive") == "default"
    assert set(cfg) == {setting.name for setting in REGISTRY.for_command(cfg.command)}


def test_environment_dependent_defaults(tmp_path: Path) -> None:
    cfg = load(["app:app"], environ={"PORT": "5000", "FORWARDED_ALLOW_IPS": "*"}, cwd=tmp_path)
    assert cfg[s.BIND] == ("0.0.0.0:5000",)
    assert cfg[s.FORWARDED_ALLOW_IPS] == ("*",)
    assert cfg.source("bind") == "default (from the environment)"


def test_bad_environment_default_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"default.*bind.*port must be a number") as info:
        load(["app:app"], environ={"PORT": "http"}, cwd=tmp_path)
    assert info.value.setting == "bind"


def test_every_default_round_trips_through_its_converter() -> None:
    for setting in CORE_SETTINGS:
        assert setting.convert(setting.default) == setting.default, setting.name


def test_make_builds_settings_without_reading_sources() -> None:
    cfg = REGISTRY.make("asgi", {"bind": ["127.0.0.1:0"], "keep-alive": "2.5"}, environ={})
    assert cfg[s.BIND] == ("127.0.0.1:0",)
    assert cfg[s.KEEP_ALIVE] == 2.5
    assert cfg.source("keep_alive") == "api"
    assert cfg[s.APP] is None  # make() does not require the app
    with pytest.raises(SettingsError, match="no such setting"):
        REGISTRY.make("asgi", {"nope": 1}, environ={})


# --------------------------------------------------------------------------------------------------
# Precedence: defaults < pyproject < config file < TRICORN_* < TRICORN_CMD_ARGS < command line


def test_precedence_of_all_sources(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.tricorn]
        keep_alive = 1
        backlog = 11
        graceful_timeout = 11
        timeout_header_read = 11
        limit_request_fields = 11
        """,
    )
    write(
        tmp_path / "tricorn.conf.py",
        """
        keep_alive = 2
        backlog = 22
        graceful_timeout = 22
        timeout_header_read = 22
        """,
    )
    environ = {
        "TRICORN_KEEP_ALIVE": "3",
        "TRICORN_BACKLOG": "33",
        "TRICORN_GRACEFUL_TIMEOUT": "33",
        "TRICORN_CMD_ARGS": "--keep-alive 4 --backlog 44",
    }
    cfg = load(["app:app", "--keep-alive", "5"], environ=environ, cwd=tmp_path)
    assert cfg[s.KEEP_ALIVE] == 5.0
    assert cfg[s.BACKLOG] == 44
    assert cfg[s.GRACEFUL_TIMEOUT] == 33.0
    assert cfg[s.TIMEOUT_HEADER_READ] == 22.0
    assert cfg[s.LIMIT_REQUEST_FIELDS] == 11
    assert cfg[s.LIMIT_REQUEST_LINE] == 4094
    assert cfg.source("keep_alive") == "command line"
    assert cfg.source("backlog") == "TRICORN_CMD_ARGS"
    assert cfg.source("graceful_timeout") == "environment variable TRICORN_GRACEFUL_TIMEOUT"
    assert cfg.source("timeout_header_read").startswith("config file ")
    assert cfg.source("limit_request_fields").endswith("pyproject.toml [tool.tricorn]")
    assert cfg.source("limit_request_line") == "default"
    assert cfg.config_file == "tricorn.conf.py"


def test_repeatable_setting_is_replaced_not_merged(tmp_path: Path) -> None:
    write(tmp_path / "tricorn.conf.py", 'bind = ["127.0.0.1:1000", "unix:/tmp/a.sock"]\n')
    cfg = load(["app:app"], cwd=tmp_path)
    assert cfg[s.BIND] == ("127.0.0.1:1000", "unix:/tmp/a.sock")
    cfg = load(["app:app", "-b", "[::1]:2000", "--bind", "fd://3"], cwd=tmp_path)
    assert cfg[s.BIND] == ("[::1]:2000", "fd://3")


def test_repeatable_settings_in_environment_are_shell_split(tmp_path: Path) -> None:
    environ = {
        "TRICORN_BIND": "127.0.0.1:1 unix:/tmp/b.sock",
        "TRICORN_HEADER": "'X-A: one two' X-B:3",
        "TRICORN_ENV": "A=1 'B=x y'",
    }
    cfg = load(["app:app"], environ=environ, cwd=tmp_path)
    assert cfg[s.BIND] == ("127.0.0.1:1", "unix:/tmp/b.sock")
    assert cfg[s.HEADER] == (("X-A", "one two"), ("X-B", "3"))
    assert cfg[s.ENV] == (("A", "1"), ("B", "x y"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("off", False)],
)
def test_boolean_environment_values(tmp_path: Path, text: str, expected: bool) -> None:
    cfg = load(["app:app"], environ={"TRICORN_REUSE_PORT": text}, cwd=tmp_path)
    assert cfg[s.REUSE_PORT] is expected


def test_boolean_flags_and_their_negations(tmp_path: Path) -> None:
    cfg = load(["app:app", "--reuse-port", "--no-require-host", "--no-date-header"], cwd=tmp_path)
    assert cfg[s.REUSE_PORT] is True
    assert cfg[s.REQUIRE_HOST] is False
    assert cfg[s.DATE_HEADER] is False
    environ = {"TRICORN_REUSE_PORT": "yes"}
    cfg = load(["app:app", "--no-reuse-port"], environ=environ, cwd=tmp_path)
    assert cfg[s.REUSE_PORT] is False


def test_uvicorn_spellings(tmp_path: Path) -> None:
    cfg = load(
        [
            "app:app",
            "--timeout-keep-alive",
            "9",
            "--timeout-graceful-shutdown",
            "3",
            "--access-log",
            "--ssl-certfile",
            "c.pem",
        ],
        cwd=tmp_path,
    )
    assert cfg[s.KEEP_ALIVE] == 9.0
    assert cfg[s.GRACEFUL_TIMEOUT] == 3.0
    assert cfg[s.ACCESS_LOGFILE] == "-"
    assert cfg[s.CERTFILE] == "c.pem"
    cfg = load(["app:app", "--access-logfile", "a.log", "--no-access-log"], cwd=tmp_path)
    assert cfg[s.ACCESS_LOGFILE] is None


def test_gunicorn_field_size_flag_spelling(tmp_path: Path) -> None:
    cfg = load(["app:app", "--limit-request-field_size", "100"], cwd=tmp_path)
    assert cfg[s.LIMIT_REQUEST_FIELD_SIZE] == 100


def test_app_from_environment_and_missing_app(tmp_path: Path) -> None:
    cfg = load([], environ={"TRICORN_APP": "pkg.mod:create()"}, cwd=tmp_path)
    assert cfg[s.APP] == "pkg.mod:create()"
    with pytest.raises(SettingsError, match="missing MODULE:APP"):
        load([], cwd=tmp_path)


# --------------------------------------------------------------------------------------------------
# TRICORN_CMD_ARGS


def test_cmd_args_are_shell_split(tmp_path: Path) -> None:
    environ = {"TRICORN_CMD_ARGS": "--header 'X-Served-By: tricorn one' -b 127.0.0.1:9 mod:app"}
    cfg = load([], environ=environ, cwd=tmp_path)
    assert cfg[s.HEADER] == (("X-Served-By", "tricorn one"),)
    assert cfg[s.BIND] == ("127.0.0.1:9",)
    assert cfg[s.APP] == "mod:app"
    assert cfg.source("app") == "TRICORN_CMD_ARGS"


def test_cmd_args_errors_raise_instead_of_exiting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TRICORN_CMD_ARGS: unrecognized arguments: --help"):
        load(["app:app"], environ={"TRICORN_CMD_ARGS": "--help"}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="TRICORN_CMD_ARGS: unrecognized arguments: --nope"):
        load(["app:app"], environ={"TRICORN_CMD_ARGS": "--nope"}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="TRICORN_CMD_ARGS: No closing quotation"):
        load(["app:app"], environ={"TRICORN_CMD_ARGS": "--header 'X: y"}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="TRICORN_CMD_ARGS: backlog: expected an integer"):
        load(["app:app"], environ={"TRICORN_CMD_ARGS": "--backlog many"}, cwd=tmp_path)


# --------------------------------------------------------------------------------------------------
# Config files


def test_gunicorn_config_file_works_unchanged(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """
        import multiprocessing

        wsgi_app = "myproject.wsgi:application"
        bind = "0.0.0.0:8080"
        workers = multiprocessing.cpu_count() * 2 + 1
        keepalive = 2
        accesslog = "-"
        errorlog = "/var/log/app/error.log"
        loglevel = "DEBUG"
        access_log_format = '%(h)s "%(r)s" %(s)s %(D)s'
        limit_request_field_size = 0
        raw_env = ["DJANGO_SETTINGS_MODULE=myproject.settings"]
        proxy_allow_ips = "*"
        _private = 1

        def post_fork(server, worker):
            server.log.info("worker %s", worker.pid)

        def when_ready(server):
            pass
        """,
    )
    cfg = load(["-c", str(conf)], cwd=tmp_path)
    assert cfg[s.APP] == "myproject.wsgi:application"
    assert cfg[s.BIND] == ("0.0.0.0:8080",)
    assert cfg[s.KEEP_ALIVE] == 2.0
    assert cfg[s.ACCESS_LOGFILE] == "-"
    assert cfg[s.ERROR_LOGFILE] == "/var/log/app/error.log"
    assert cfg[s.LOG_LEVEL] == "debug"
    assert cfg[s.ACCESS_LOGFORMAT] == '%(h)s "%(r)s" %(s)s %(D)s'
    assert cfg[s.LIMIT_REQUEST_FIELD_SIZE] == 0
    assert cfg[s.ENV] == (("DJANGO_SETTINGS_MODULE", "myproject.settings"),)
    assert cfg.source("keep_alive") == f"config file {conf}"
    # Hooks are kept as the very functions the file defined.
    post_fork = cfg.extras["post_fork"]
    assert callable(post_fork) and getattr(post_fork, "__name__", "") == "post_fork"
    assert "when_ready" in cfg.extras
    assert "multiprocessing" not in cfg.extras and "_private" not in cfg.extras
    # Gunicorn settings tricorn-wsgi lacks are warned about, not fatal.
    joined = "\n".join(cfg.warnings)
    assert "Gunicorn setting 'proxy_allow_ips' is not supported by tricorn-wsgi" in joined
    assert len(cfg.warnings) == 1  # workers is the arbiter's: skipped quietly for tricorn-wsgi


def test_setting_registered_by_another_package_is_read_from_gunicorn_file(tmp_path: Path) -> None:
    # What tricorn-arbiter will do: one registration line adds `workers`.
    workers: Setting[int] = Setting(
        name="workers",
        section="Processes",
        convert=s.to_int(min=1),
        default=1,
        default_factory=lambda env: int(env.get("WEB_CONCURRENCY", "1")),
        default_doc="`$WEB_CONCURRENCY` or 1",
        flags=("-w", "--workers"),
        metavar="INT",
        commands=frozenset({"arbiter"}),
        help="Worker processes.",
    )
    registry = Registry(CORE_SETTINGS)
    registry.register(workers)
    load_arbiter = functools.partial(load, cwd=tmp_path, registry=registry, command="arbiter")
    assert load_arbiter(["a:b"], environ={"WEB_CONCURRENCY": "3"})[workers] == 3
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 4\nkeepalive = 7\n")
    cfg = load_arbiter(["a:b", "-c", str(conf)])
    assert cfg[workers] == 4 and cfg[s.KEEP_ALIVE] == 7.0
    assert cfg.warnings == ()
    assert load_arbiter(["a:b", "-w", "9"])[workers] == 9
    # The same file for a command without `workers`: skipped quietly (a shared config file).
    cfg = load(["a:b", "-c", str(conf)], cwd=tmp_path, registry=registry, command="asgi")
    assert "workers" not in cfg and cfg.warnings == ()


def test_default_config_file_and_its_overrides(tmp_path: Path) -> None:
    write(tmp_path / "tricorn.conf.py", "backlog = 5\n")
    other = write(tmp_path / "other.conf.py", "backlog = 6\n")
    assert load(["app:app"], cwd=tmp_path)[s.BACKLOG] == 5
    assert load(["app:app", "-c", "other.conf.py"], cwd=tmp_path)[s.BACKLOG] == 6
    cfg = load(["app:app"], environ={"TRICORN_CONFIG": str(other)}, cwd=tmp_path)
    assert cfg[s.BACKLOG] == 6 and cfg.config_file == str(other)
    cfg = load(["app:app"], environ={"TRICORN_CMD_ARGS": "-c other.conf.py"}, cwd=tmp_path)
    assert cfg[s.BACKLOG] == 6


def test_config_file_named_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.tricorn]\nconfig = "deploy/t.py"\n')
    (tmp_path / "deploy").mkdir()
    write(tmp_path / "deploy" / "t.py", "backlog = 7\n")
    assert load(["app:app"], cwd=tmp_path)[s.BACKLOG] == 7


def test_config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "tricorn_test_confmod.py", "backlog = 8\ndef on_exit(server): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load(["app:app", "-c", "python:tricorn_test_confmod"], cwd=tmp_path)
    assert cfg[s.BACKLOG] == 8
    assert "on_exit" in cfg.extras


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file .*missing\.py: cannot read"):
        load(["app:app", "-c", "missing.py"], cwd=tmp_path)
    write(tmp_path / "bad.py", "backlog = = 1\n")
    with pytest.raises(SettingsError, match="invalid Python"):
        load(["app:app", "-c", "bad.py"], cwd=tmp_path)
    write(tmp_path / "raises.py", "backlog = 1 // 0\n")
    with pytest.raises(SettingsError, match="raised ZeroDivisionError") as info:
        load(["app:app", "-c", "raises.py"], cwd=tmp_path)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    write(tmp_path / "badvalue.py", 'keepalive = "forever"\n')
    with pytest.raises(SettingsError, match=r"badvalue\.py: keep_alive: expected a number"):
        load(["app:app", "-c", "badvalue.py"], cwd=tmp_path)


def test_config_file_typo_gets_a_hint(tmp_path: Path) -> None:
    write(tmp_path / "tricorn.conf.py", "keep_alvie = 3\nport_number_helper = 5\n")
    cfg = load(["app:app"], cwd=tmp_path)
    assert cfg[s.KEEP_ALIVE] == 5.0
    assert any(
        "'keep_alvie' is not a setting (did you mean 'keep_alive'?)" in w for w in cfg.warnings
    )
    assert not any("port_number_helper" in w for w in cfg.warnings)


# --------------------------------------------------------------------------------------------------
# pyproject.toml


def test_pyproject_table(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
        [project]
        name = "demo"

        [tool.tricorn]
        app = "demo.web:app"
        keep-alive = 2.5
        bind = ["127.0.0.1:7000", "[::1]:7000"]
        header = ["X-Frame-Options: DENY"]
        env = {A = "1"}
        proxy_headers = false
        no_such_thing = 1
        """,
    )
    cfg = load([], cwd=tmp_path)
    assert cfg[s.APP] == "demo.web:app"
    assert cfg[s.KEEP_ALIVE] == 2.5
    assert cfg[s.BIND] == ("127.0.0.1:7000", "[::1]:7000")
    assert cfg[s.HEADER] == (("X-Frame-Options", "DENY"),)
    assert cfg[s.ENV] == (("A", "1"),)
    assert cfg[s.PROXY_HEADERS] is False
    assert len(cfg.warnings) == 1 and "unknown setting 'no_such_thing'" in cfg.warnings[0]


def test_pyproject_without_table_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert load(["app:app"], cwd=tmp_path).warnings == ()


def test_pyproject_errors(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.tricorn\n")
    with pytest.raises(SettingsError, match="pyproject.toml"):
        load(["app:app"], cwd=tmp_path)
    write(tmp_path / "pyproject.toml", "[tool]\ntricorn = 3\n")
    with pytest.raises(SettingsError, match="expected a table"):
        load(["app:app"], cwd=tmp_path)
    write(tmp_path / "pyproject.toml", "[tool.tricorn]\nbacklog = true\n")
    with pytest.raises(SettingsError, match=r"\[tool.tricorn\]: backlog: expected an integer"):
        load(["app:app"], cwd=tmp_path)


# --------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backlog", "abc"], "command line: backlog: expected an integer, got 'abc'"),
        (["--backlog", "0"], "command line: backlog: must be at least 1"),
        (["--keep-alive", "-1"], "keep_alive: must be at least 0"),
        (["--keep-alive", "nan"], "keep_alive: expected a finite number"),
        (["--limit-request-line", "9000"], "limit_request_line: must be at most 8190"),
        (["--limit-request-fields", "40000"], "limit_request_fields: must be at most 32768"),
        (["--port", "70000"], "port: must be at most 65535"),
        (["-b", "::1:80"], "put an IPv6 address in brackets"),
        (["-b", "host:http"], "port must be a number"),
        (["-b", ":80"], "missing host"),
        (["-b", "unix:"], "unix: needs a path"),
        (["-b", "fd://x"], "fd:// needs a file descriptor number"),
        (["-b", "[::1"], "missing ']'"),
        (["-b", "bad_host!:80"], "not an IPv4 address or a host name"),
        (["--header", "NoColon"], "header: expected NAME:VALUE"),
        (["--header", "Bad Name: v"], "is not a valid header name"),
        (["-e", "NOEQUALS"], "env: expected KEY=VALUE"),
        (["--forwarded-allow-ips", "10.0.0.1,nope"], "'nope' is not an IP address"),
        (["--log-level", "loud"], "log_level: expected one of critical"),
        (["--access-logformat", "%(h)s 100%"], "stray '%'"),
        (["--access-logformat", "%(h)d"], "bad access log format"),
        (["--cert-reqs", "sometimes"], "cert_reqs: expected 0/1/2"),
        (["--root-path", "api"], "root_path: must be empty or start with '/'"),
        (["--chdir", "/definitely/not/here"], "is not a directory"),
    ],
)
def test_invalid_command_line_values(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(["app:app", *argv], cwd=tmp_path)
    assert message in str(info.value)
    assert str(info.value).startswith("command line: ")
    assert info.value.source == "command line"


def test_invalid_app_spec_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"command line: app: invalid app spec 'a/b\.py:app'"):
        load(["a/b.py:app"], cwd=tmp_path)


def test_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load(["app:app"], environ={"TRICORN_PORT": "eighty"}, cwd=tmp_path)
    assert str(info.value) == (
        "environment variable TRICORN_PORT: port: expected an integer, got 'eighty'"
    )
    assert info.value.setting == "port"


def test_invalid_boolean(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TRICORN_FACTORY: factory: expected a boolean"):
        load(["app:app"], environ={"TRICORN_FACTORY": "maybe"}, cwd=tmp_path)


def test_unknown_tricorn_environment_variable_warns(tmp_path: Path) -> None:
    cfg = load(["app:app"], environ={"TRICORN_KEEPALIVE": "3"}, cwd=tmp_path)
    assert cfg[s.KEEP_ALIVE] == 5.0
    assert cfg.warnings == (
        "environment variable TRICORN_KEEPALIVE is not a setting "
        "(did you mean TRICORN_KEEP_ALIVE?)",
    )


def test_tls_consistency_check(tmp_path: Path) -> None:
    registry = Registry(CORE_SETTINGS, checks=CORE_CHECKS)
    with pytest.raises(SettingsError, match=r"keyfile is set \(command line\) but certfile is not"):
        load(["app:app", "--keyfile", "k.pem"], cwd=tmp_path, registry=registry)
    cfg = load(
        ["app:app", "--certfile", "c.pem", "--keyfile", "k.pem", "--cert-reqs", "required"],
        cwd=tmp_path,
        registry=registry,
    )
    assert cfg[s.CERT_REQS] == 2


# --------------------------------------------------------------------------------------------------
# The result object


def test_settings_are_immutable(tmp_path: Path) -> None:
    cfg = load(["app:app", "-b", "127.0.0.1:1"], cwd=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.command = "asgi"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.data["backlog"] = 1  # type: ignore[index]
    assert isinstance(cfg[s.BIND], tuple)
    assert cfg["backlog"] == cfg[s.BACKLOG] == 2048
    assert dict(cfg)["keep_alive"] == 5.0


# --------------------------------------------------------------------------------------------------
# The registry


def test_one_line_registration_and_clashes() -> None:
    threads: Setting[int] = Setting(
        name="threads",
        section="Processes",
        convert=s.to_int(min=1),
        default=1,
        flags=("--threads",),
        commands=frozenset({"wsgi", "arbiter"}),
        help="Threads per worker.",
    )
    registry = Registry(CORE_SETTINGS)
    registry.register(threads)
    registry.register(threads)  # the same object again: a no-op
    assert registry["threads"] is threads and len(registry) == len(CORE_SETTINGS) + 1
    clone = dataclasses.replace(threads)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(clone)
    with pytest.raises(ValueError, match=r"flag \['--bind'\] used by 'bind'"):
        registry.register(dataclasses.replace(threads, name="other", flags=("--bind",)))
    with pytest.raises(ValueError, match="clashes with 'keep_alive'"):
        registry.register(dataclasses.replace(threads, name="other", aliases=("keepalive",)))
    with pytest.raises(ValueError, match="snake_case"):
        dataclasses.replace(threads, name="Threads")
    with pytest.raises(ValueError, match="--long names"):
        Setting(
            name="x",
            section="HTTP",
            convert=s.to_bool,
            default=False,
            help="h",
            action="flag",
            flags=("-x",),
        )


def test_each_command_parser_shows_only_its_settings(capsys: pytest.CaptureFixture[str]) -> None:
    only_wsgi: Setting[int] = Setting(
        name="wsgi_only",
        section="Processes",
        convert=s.to_int(),
        default=1,
        flags=("--wsgi-only",),
        commands=frozenset({"wsgi"}),
        help="Only for tricorn-wsgi.",
    )
    registry = Registry(CORE_SETTINGS, [only_wsgi])
    assert "--wsgi-only" in registry.build_parser("wsgi").format_help()
    assert "--wsgi-only" not in registry.build_parser("asgi").format_help()
    assert registry.build_parser("wsgi").parse_args(["--wsgi-only", "2"]).wsgi_only == "2"
    with pytest.raises(SystemExit):
        registry.build_parser("asgi").parse_args(["--wsgi-only", "1"])
    assert "unrecognized arguments: --wsgi-only" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(s.ALL_COMMANDS))
def test_help_lists_each_setting_once(command: str) -> None:
    help_text = REGISTRY.build_parser(command).format_help()
    body = help_text.split("options:", 1)[1]
    for setting in REGISTRY.for_command(command):
        if setting.positional:
            assert len(re.findall(rf"^  {re.escape(setting.metavar or '')}\s", body, re.M)) == 1
            continue
        first = setting.flags[0]
        pattern = rf"^  {re.escape(first)}(?=[ ,\n])"  # entries are indented by two spaces
        assert len(re.findall(pattern, body, re.M)) == 1, setting.name
    # Switches (--access-log, --no-access-log) are described inside their setting's entry only.
    assert not re.search(r"^  --no-access-log", body, re.M)
    assert "--no-access-log: Uvicorn's spelling" in " ".join(body.split())


def test_help_renders_percent_signs_literally() -> None:
    help_text = " ".join(REGISTRY.build_parser("wsgi").format_help().split())
    assert '%(h)s %(l)s %(u)s %(t)s "%(r)s"' in help_text


def test_unknown_flag_exits_with_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load(["app:app", "--keep"], cwd=tmp_path)  # no abbreviations
    assert info.value.code == 2
    assert "unrecognized arguments: --keep" in capsys.readouterr().err


def test_caller_parser_with_extra_arguments(tmp_path: Path) -> None:
    parser = REGISTRY.build_parser("asgi", prog="tricorn-asgi")
    parser.add_argument("--version", action="version", version="tricorn 0.1")
    assert isinstance(parser, argparse.ArgumentParser)
    cfg = REGISTRY.load(
        "asgi", ["app:app", "--port", "0"], environ={}, cwd=str(tmp_path), parser=parser
    )
    assert cfg[s.PORT] == 0


# --------------------------------------------------------------------------------------------------
# Derived values


def test_parser_limits_defaults_match_the_dataclass(tmp_path: Path) -> None:
    assert parser_limits(load(["app:app"], cwd=tmp_path)) == ParserLimits()


def test_parser_limits_zero_rules_and_leniency_flags(tmp_path: Path) -> None:
    cfg = load(
        [
            "app:app",
            "--limit-request-line=0",
            "--limit-request-fields=0",
            "--limit-request-field-size=0",
            "--limit-request-head=1024",
            "--limit-request-body=1000000",
            "--limit-chunk-line=100",
            "--limit-chunk-ext=10",
            "--permit-obsolete-folding",
            "--permit-unconventional-http-method",
            "--no-require-host",
        ],
        cwd=tmp_path,
    )
    assert parser_limits(cfg) == ParserLimits(
        max_request_line=8190,
        max_fields=32768,
        max_field_size=8188,  # Gunicorn's 8190 counts the CRLF
        max_head_size=1024,
        max_body_size=1_000_000,
        max_chunk_line=100,
        max_chunk_ext=10,
        unfold=True,
        any_method=True,
        host_optional=True,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", BindAddress("tcp", host="127.0.0.1", port=8000)),
        ("localhost", BindAddress("tcp", host="localhost", port=8000)),
        ("example.com:0", BindAddress("tcp", host="example.com", port=0)),
        ("[::1]:9000", BindAddress("tcp", host="::1", port=9000)),
        ("[::]", BindAddress("tcp", host="::", port=8000)),
        ("unix:/run/app.sock", BindAddress("unix", path="/run/app.sock")),
        ("unix:///run/app.sock", BindAddress("unix", path="/run/app.sock")),
        ("fd://3", BindAddress("fd", fd=3)),
    ],
)
def test_parse_bind(text: str, expected: BindAddress) -> None:
    parsed = parse_bind(text)
    assert parsed == expected
    assert parse_bind(str(parsed)) == parsed


def test_bind_addresses_combines_uvicorn_options(tmp_path: Path) -> None:
    cfg = load(["app:app", "--port", "9000"], cwd=tmp_path)
    assert [str(a) for a in bind_addresses(cfg)] == ["127.0.0.1:9000"]
    cfg = load(["app:app", "--host", "::1", "--uds", "/tmp/x.sock"], cwd=tmp_path)
    assert [str(a) for a in bind_addresses(cfg)] == ["[::1]:8000", "unix:/tmp/x.sock"]
    cfg = load(["app:app", "-b", "0.0.0.0:80", "--fd", "3", "-b", "0.0.0.0:80"], cwd=tmp_path)
    assert [str(a) for a in bind_addresses(cfg)] == ["0.0.0.0:80", "fd://3"]
    assert [str(a) for a in bind_addresses(load(["app:app"], cwd=tmp_path))] == ["127.0.0.1:8000"]


# --------------------------------------------------------------------------------------------------
# Docs


def test_committed_settings_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "settings.md").read_text()
    assert committed == render_markdown(REGISTRY), (
        "docs/settings.md is stale: run `python -m tricorn.core.settings --markdown "
        "> docs/settings.md`"
    )


def test_markdown_mentions_every_setting_with_its_env_var_and_flags() -> None:
    text = render_markdown(REGISTRY)
    for setting in REGISTRY.values():
        assert text.count(f"### `{setting.name}`") == 1
        assert f"`{setting.env_var}`" in text
        for flag in setting.flags:
            assert f"`{flag}" in text
    assert "## Server socket" in text and text.index("## Config") < text.index("## Logging")
    assert "- Default: `0.0.0.0:$PORT` if `PORT` is set, else `127.0.0.1:8000`" in text


def test_module_main_prints_the_markdown() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert s.main(["--markdown"]) == 0
    assert out.getvalue() == render_markdown(REGISTRY)
