"""Can a deployment run here? Resolve its program and check its modules, without starting it.

A deployment whose program is not installed (or not built yet) or whose required module is missing is
*unavailable*: the runner records that as a cell status with the reason, never as an error.
Programs are looked up first next to the lab's interpreter (its virtual environment's bin/), then on
PATH; "{python}" is the lab's interpreter itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.deployments import Deployment


@dataclass(frozen=True)
class Availability:
    """Whether a deployment can be started, the resolved program, and why not when it cannot."""

    available: bool
    program: str | None
    reason: str | None


def resolve_program(name: str, python: str = sys.executable) -> str | None:
    """Absolute path of program `name` (the interpreter's bin/ first, then PATH), or None."""
    if name == "{python}":
        return python
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    local = Path(python).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def module_present(module: str) -> bool:
    """True if `module` (dotted) can be imported by the lab's interpreter."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check(deployment: Deployment, python: str = sys.executable) -> Availability:
    """Availability of `deployment` on this machine."""
    program = resolve_program(deployment.executable, python)
    if program is None:
        return Availability(
            False, None, f"command {deployment.executable!r} not found (not installed, or not built yet)"
        )
    for module in deployment.requires_modules:
        if not module_present(module):
            return Availability(False, program, f"Python module {module!r} is not installed")
    return Availability(True, program, None)
