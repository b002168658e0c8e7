"""``tricorn [OPTIONS] MODULE:APP``: load the settings, then run the master.

The command line is built from the settings registry: core's settings, the arbiter's, and those
of each installed server package (``tricorn.wsgi.settings``, ``tricorn.asgi.settings``; importing
them is cheap and imports no server code). ``--check-config`` loads the worker class and the app
in this process and reports; ``--print-config`` prints every value with its source.

Exit codes: 0 after a normal stop; 1 the master could not start (socket, pid file, worker class);
2 invalid settings or usage; 3 workers failed to boot; 4 the app could not be loaded.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from tricorn.core.apploader import AppLoadError, load_app
from tricorn.core.logs import setup_from_settings
from tricorn.core.settings import APP, CHDIR, FACTORY, REGISTRY, Settings, SettingsError
from tricorn.core.worker import WorkerClassError, resolve_worker_class

from . import settings as s
from .arbiter import Arbiter
from .osutil import daemonize

__all__ = ["main"]

SERVER_SETTINGS = ("tricorn.wsgi.settings", "tricorn.asgi.settings")
EXIT_USAGE = 2


def import_server_settings() -> None:
    """Register the settings of every installed server package (skip the missing ones)."""
    for name in SERVER_SETTINGS:
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: its flags are simply not offered
            continue


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"tricorn {version('tricorn-arbiter')}"
    except Exception:
        return "tricorn (unknown version)"


def load_settings(argv: Sequence[str]) -> Settings:
    parser = REGISTRY.build_parser(
        "arbiter", description="The pre-fork master: binds the sockets, forks and supervises "
        "workers (sync, gthread, asgi or your own class)."
    )
    parser.add_argument("--version", action="version", version=_version())
    return REGISTRY.load("arbiter", list(argv), parser=parser)


def print_config(cfg: Settings) -> None:
    width = max(len(name) for name in cfg)
    for name in sorted(cfg):
        print(f"{name:<{width}} = {cfg[name]!r}  # {cfg.source(name)}")
    for name in sorted(cfg.extras):
        print(f"{name:<{width}} = {cfg.extras[name]!r}  # config file (hook or extra)")


def check_config(cfg: Settings) -> int:
    try:
        cls = resolve_worker_class(cfg[s.WORKER_CLASS], threads=s.worker_threads(cfg))
    except WorkerClassError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return 1
    try:
        chdir = cfg[CHDIR]
        load_app(cfg[APP] or "", factory=cfg[FACTORY], app_dir=chdir or os.getcwd())
    except AppLoadError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"config ok: {cfg[APP]} with worker class {cls.__module__}.{cls.__qualname__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    import_server_settings()
    try:
        cfg = load_settings(args)
    except SettingsError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if cfg[s.PRINT_CONFIG]:
        print_config(cfg)
        return 0
    if cfg[s.CHECK_CONFIG]:
        return check_config(cfg)
    if cfg[s.DAEMON]:
        daemonize()
    try:
        logs = setup_from_settings(cfg)
    except (OSError, ValueError) as exc:
        print(f"tricorn: error: cannot open the logs: {exc}", file=sys.stderr)
        return 1
    arbiter = Arbiter(cfg, logs, argv=args, load_settings=lambda: load_settings(args))
    try:
        return arbiter.run()
    finally:
        logs.close()


if __name__ == "__main__":
    raise SystemExit(main())
