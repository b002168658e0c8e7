"""Find the application named by an app spec (``MODULE:APP``).

Spec grammar (parsed with `ast`, never evaluated)::

    spec    = module [":" target]
    module  = identifier ("." identifier)*
    target  = attr ("." attr)* [ "(" literal arguments ")" ]

- ``pkg.web:app`` -- the attribute (dotted attributes are followed: ``pkg.web:api.app``);
- ``pkg.web:create_app()`` or ``pkg.web:create_app(1, name='x')`` -- call the factory; arguments
  must be Python literals (`ast.literal_eval`);
- ``factory=True`` (``--factory``) -- call the attribute with no arguments;
- ``pkg.web`` -- its ``application``, else its ``app``.

Invariants:
- Every failure is an `AppLoadError` whose `kind` says which step failed (bad spec, module not
  found, import raised, attribute not found, factory raised, not callable) and whose message names
  the spec. The original exception is chained (``raise ... from``), so its traceback is kept.
  Servers exit with `AppLoadError.exit_code` (4) so that an arbiter stops instead of respawning
  forever.
- A module that exists but fails to import (including a ``ModuleNotFoundError`` for one of *its*
  imports) is "import_failed", not "module_not_found".
- The loaded object is callable (a WSGI or ASGI application); nothing else is checked here.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Final, Literal

__all__ = ["AppLoadError", "AppSpec", "load_app", "parse_app_spec"]

AppLoadErrorKind = Literal[
    "bad_spec",
    "module_not_found",
    "import_failed",
    "attribute_not_found",
    "factory_failed",
    "not_callable",
]

DEFAULT_ATTRIBUTES: Final = ("application", "app")


class AppLoadError(Exception):
    """The application could not be loaded; `str(exc)` is the message for the user."""

    exit_code: Final = 4
    """The process exit code for "app failed to load" (design contract §3)."""

    def __init__(self, message: str, *, kind: AppLoadErrorKind, spec: str) -> None:
        super().__init__(message)
        self.kind: AppLoadErrorKind = kind
        self.spec = spec


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed app spec. `attrs` is empty for a bare module; `call` is True when the spec has
    parentheses (then `args`/`kwargs` hold the literal arguments)."""

    module: str
    attrs: tuple[str, ...] = ()
    call: bool = False
    args: tuple[object, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = ()


def _dotted(node: ast.expr) -> tuple[str, ...] | None:
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    return tuple(reversed(names))


def parse_app_spec(spec: str) -> AppSpec:
    """Parse `spec` without importing anything. Raises `AppLoadError` (kind "bad_spec")."""

    def bad(reason: str) -> AppLoadError:
        return AppLoadError(f"invalid app spec {spec!r}: {reason}", kind="bad_spec", spec=spec)

    module, colon, target = spec.strip().partition(":")
    module = module.strip()
    if not module:
        raise bad("expected MODULE:APP, e.g. myproject.wsgi:application")
    if "/" in module or "\\" in module:
        raise bad("give a module name (dotted, as for import), not a file path")
    if not all(part.isidentifier() for part in module.split(".")):
        raise bad(f"{module!r} is not a module name")
    if not colon:
        return AppSpec(module)
    target = target.strip()
    if not target:
        raise bad("nothing after ':'")
    try:
        expr = ast.parse(target, mode="eval").body
    except SyntaxError:
        raise bad(f"{target!r} is not an attribute name or a call") from None
    if not isinstance(expr, ast.Call):
        attrs = _dotted(expr)
        if attrs is None:
            raise bad(f"{target!r} is not an attribute name or a call")
        return AppSpec(module, attrs)
    attrs = _dotted(expr.func)
    if attrs is None:
        raise bad(f"{target!r}: only a named function can be called")
    try:
        args = tuple(ast.literal_eval(arg) for arg in expr.args)
        kwargs = []
        for keyword in expr.keywords:
            if keyword.arg is None:
                raise ValueError("**kwargs")
            kwargs.append((keyword.arg, ast.literal_eval(keyword.value)))
    except ValueError:
        raise bad(f"{target!r}: factory arguments must be Python literals") from None
    return AppSpec(module, attrs, call=True, args=args, kwargs=tuple(kwargs))


def _import(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            hint = ""
            if name.endswith(".py"):
                hint = f"; give a module name, not a file name: {name[:-3]!r}"
            raise AppLoadError(
                f"cannot load app {spec!r}: module {name!r} not found (sys.path[0] is "
                f"{sys.path[0]!r}; see --chdir){hint}",
                kind="module_not_found",
                spec=spec,
            ) from exc
        raise AppLoadError(
            f"cannot load app {spec!r}: importing {name!r} raised ModuleNotFoundError: {exc}",
            kind="import_failed",
            spec=spec,
        ) from exc
    except Exception as exc:  # the module's own code raised (SyntaxError included)
        raise AppLoadError(
            f"cannot load app {spec!r}: importing {name!r} raised {type(exc).__name__}: {exc}",
            kind="import_failed",
            spec=spec,
        ) from exc


def _resolve(module: ModuleType, attrs: tuple[str, ...], spec: str) -> object:
    obj: object = module
    for depth, attr in enumerate(attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            owner = ".".join((module.__name__, *attrs[:depth]))
            raise AppLoadError(
                f"cannot load app {spec!r}: {owner!r} has no attribute {attr!r}",
                kind="attribute_not_found",
                spec=spec,
            ) from exc
    return obj


def load_app(
    spec: str, *, factory: bool = False, app_dir: str | None = None
) -> Callable[..., object]:
    """Import and return the application named by `spec` (see the module docstring).

    `factory`: call the attribute with no arguments (a spec with parentheses is always called,
    once). `app_dir`: a directory put first on ``sys.path`` (if not already there) before importing.
    Raises `AppLoadError`.
    """
    parsed = parse_app_spec(spec)
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    module = _import(parsed.module, spec)
    if parsed.attrs:
        obj = _resolve(module, parsed.attrs, spec)
        name = ".".join(parsed.attrs)
    else:
        for name in DEFAULT_ATTRIBUTES:
            if hasattr(module, name):
                obj = getattr(module, name)
                break
        else:
            raise AppLoadError(
                f"cannot load app {spec!r}: module {parsed.module!r} has neither 'application' "
                f"nor 'app'; name the application: {parsed.module}:NAME",
                kind="attribute_not_found",
                spec=spec,
            )
    if parsed.call or factory:
        if not callable(obj):
            raise AppLoadError(
                f"cannot load app {spec!r}: factory {name!r} is not callable "
                f"(it is {type(obj).__name__})",
                kind="not_callable",
                spec=spec,
            )
        try:
            obj = obj(*parsed.args, **dict(parsed.kwargs))
        except Exception as exc:
            raise AppLoadError(
                f"cannot load app {spec!r}: factory {name!r} raised {type(exc).__name__}: {exc}",
                kind="factory_failed",
                spec=spec,
            ) from exc
    if not callable(obj):
        raise AppLoadError(
            f"cannot load app {spec!r}: {name!r} is a {type(obj).__name__}, not a callable "
            "application",
            kind="not_callable",
            spec=spec,
        )
    return obj
