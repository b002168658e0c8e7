"""The arbiter-less command harness shared by ``tricorn-asgi`` and ``tricorn-wsgi``.

Each standalone command runs one worker class in its own process (design §3). The steps around
the worker are the same for both and live here: read the settings (CLI, environment, config
file, pyproject) with ``--version``, set up logging, log the settings warnings, apply ``--chdir``
and ``--env``, and open the TLS context and the listening sockets (closed again on the way out).

Invariants:
- A step that stops the start raises `StartupFailed` with the process exit code, after saying
  why: on stderr (``PROG: error: ...``) before logging is set up, in the error log after.
- Exit codes: 2 (`EXIT_USAGE`) bad settings or usage; 3 (`EXIT_BOOT_ERROR`) the server cannot
  start (logging, TLS files, sockets). The commands add 4 (`EXIT_APP_LOAD_ERROR`) and 0.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from tricorn.core.logs import Logs, setup_from_settings
from tricorn.core.reaper import start_reaper
from tricorn.core.settings import CHDIR, ENV, REGISTRY, Settings, SettingsError
from tricorn.core.sockets import (
    Listener,
    ListenError,
    listeners_from_settings,
    ssl_context_from_settings,
)
from tricorn.core.worker import EXIT_BOOT_ERROR

EXIT_USAGE: Final = 2
"""Bad settings or usage (argparse's own code for usage errors)."""


class StartupFailed(Exception):
    """The command cannot start; the reason has been reported. `code` is the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def start(
    command: str,
    argv: Sequence[str] | None,
    *,
    prog: str,
    version: str,
    description: str,
    autoflush: bool = True,
) -> tuple[Settings, Logs]:
    """The settings of `command` and the logging they ask for. Raises StartupFailed."""
    parser = REGISTRY.build_parser(command, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    try:
        cfg = REGISTRY.load(command, argv, parser=parser)
    except SettingsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise StartupFailed(EXIT_USAGE) from exc
    try:
        logs = setup_from_settings(cfg, autoflush=autoflush)
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: cannot set up logging: {exc}", file=sys.stderr)
        raise StartupFailed(EXIT_BOOT_ERROR) from exc
    return cfg, logs


def prepare_process(cfg: Settings, log: logging.Logger) -> None:
    """Log the settings warnings, change to ``--chdir`` and export the ``--env`` variables; as
    PID 1 (a container without an init), start reaping orphaned zombies (`tricorn.core.reaper`);
    warn when ``$WEB_CONCURRENCY`` asks for more than the one process a standalone command runs."""
    if start_reaper() is not None:
        log.info("Running as PID 1: reaping orphaned child processes")
    concurrency = os.environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit() and int(concurrency) > 1:
        log.warning("WEB_CONCURRENCY=%s asks for several processes; this command serves from one. "
                    "Run `tricorn` (the arbiter reads WEB_CONCURRENCY as --workers) or scale replicas",
                    concurrency)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    chdir = cfg[CHDIR]
    if chdir is not None:
        os.chdir(chdir)
    for key, value in cfg[ENV]:
        os.environ[key] = value


@contextmanager
def listening(
    cfg: Settings, log: logging.Logger
) -> Iterator[tuple[ssl.SSLContext | None, list[Listener]]]:
    """The TLS context (None without TLS) and the bound listeners, closed on exit. Raises
    StartupFailed (logged) when the TLS files or the sockets cannot be used."""
    try:
        ssl_context = ssl_context_from_settings(cfg)
    except ValueError as exc:
        log.error("TLS: %s", exc)
        raise StartupFailed(EXIT_BOOT_ERROR) from exc
    try:
        listeners = listeners_from_settings(cfg)
    except ListenError as exc:
        log.error("%s", exc)
        raise StartupFailed(EXIT_BOOT_ERROR) from exc
    try:
        yield ssl_context, listeners
    finally:
        for listener in listeners:
            listener.close()


__all__ = ["EXIT_USAGE", "StartupFailed", "listening", "prepare_process", "start"]
