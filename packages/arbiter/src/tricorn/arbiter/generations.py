"""Generations: what workers are started from, and the rolling reload (SIGHUP) that makes a new one.

A generation (`tricorn.arbiter.process.Generation`) bundles settings, the resolved worker class,
the app (its spec, or the object imported in the master with ``--preload``), hooks and listeners.

Invariants:
- `reload` changes nothing unless every step succeeds: settings load, listeners open, worker
  class resolves, preloaded app imports. On failure the current generation keeps serving, the
  log says why, and listeners opened for the failed attempt are closed.
- With ``--preload`` the app's modules are dropped from ``sys.modules`` before a reload imports
  it again, so the new generation runs the new code.
- A successful reload only installs the new generation and target; the replacement itself is
  the worker set's job (`tricorn.arbiter.workerset`, readiness-gated).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from tricorn.core.apploader import AppLoadError, load_app
from tricorn.core.logs import setup_from_settings
from tricorn.core.settings import APP, CHDIR, FACTORY, Settings, SettingsError
from tricorn.core.sockets import Listener, ListenError
from tricorn.core.worker import Hooks, WorkerClassError, resolve_worker_class

from . import settings as s
from . import systemd
from .listeners import open_listeners
from .process import Generation
from .state import ArbiterError
from .workerset import WorkerSetMixin

__all__ = ["GenerationsMixin"]


class GenerationsMixin(WorkerSetMixin):
    """Generations from settings, and the reload (HUP) that starts a new one."""

    def _resolve_class(self, cfg: Settings) -> tuple[type[Any], str]:
        name = cfg[s.WORKER_CLASS]
        try:
            return resolve_worker_class(name, threads=s.worker_threads(cfg)), name
        except WorkerClassError as exc:
            raise ArbiterError(str(exc)) from exc

    def _preload(self, cfg: Settings) -> object | None:
        if not cfg[s.PRELOAD]:
            return None
        if self._preload_modules:  # a reload: forget the app's modules so they are imported anew
            for name in self._preload_modules:
                sys.modules.pop(name, None)
            importlib.invalidate_caches()
        before = set(sys.modules)
        chdir = cfg[CHDIR]
        app = load_app(cfg[APP] or "", factory=cfg[FACTORY], app_dir=chdir or os.getcwd())
        self._preload_modules |= set(sys.modules) - before
        return app

    def _make_generation(self, cfg: Settings, listeners: Sequence[Listener]) -> Generation:
        worker_class, name = self._resolve_class(cfg)
        app = self._preload(cfg)  # raises AppLoadError
        number = 1 if self.generation is None else self.generation.number + 1
        return Generation(
            number=number,
            settings=cfg,
            worker_class=worker_class,
            worker_class_name=name,
            app_spec=cfg[APP] or "",
            app=app,
            hooks=Hooks.from_settings(cfg, self.log),
            listeners=tuple(listeners),
        )

    def reload(self) -> bool:
        """Reload settings, worker class and app (re-imported when preloaded), then replace every
        worker, readiness-gated. On any error the current workers keep serving. True if started."""
        if self.stopping or self.generation is None:
            return False
        try:
            cfg = self._load_settings()
        except SettingsError as exc:
            self.log.error("Reload failed, keeping the current configuration: %s", exc)
            return False
        except SystemExit:
            self.log.error("Reload failed (invalid command line); keeping the current config")
            return False
        try:
            logs = setup_from_settings(cfg)
        except (OSError, ValueError) as exc:
            self.log.error("Reload: cannot set up logging (%s); keeping the old logs", exc)
        else:
            old_access = self.logs.access
            self.logs = logs
            self.log = logs.error
            if old_access is not None:
                old_access.close()
        try:
            listeners = open_listeners(cfg, current=self._listeners,
                                       inherited=self._systemd_listeners)
        except ListenError as exc:
            self.log.error("Reload failed, keeping the current configuration: %s", exc)
            return False
        try:
            generation = self._make_generation(cfg, listeners)
        except (ArbiterError, AppLoadError) as exc:
            self.log.error("Reload failed, keeping the current workers: %s", exc)
            self._close_unused_listeners(extra=listeners)
            return False
        for listener in listeners:
            if listener not in self._listeners:
                self._listeners.append(listener)
                self.log.info("Listening at: %s (%d)", listener.url(), self.pid)
        self.settings = cfg
        self.generation = generation
        self.set_workers(cfg[s.WORKERS])
        self.reloading = True
        self.announced_ready = False
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        generation.hooks.call("on_reload", self)
        self.log.info("Reloading: generation %d, %d workers", generation.number, self.num_workers)
        return True
