"""tricorn.arbiter: the pre-fork master (``tricorn [OPTIONS] MODULE:APP``).

It binds every listening socket once, forks workers of any class (``sync``, ``gthread`` from
tricorn-wsgi, ``asgi`` from tricorn-asgi, or ``package.module:Class``), watches their heartbeats,
replaces them, and reacts to signals (HUP rolling reload, TTIN/TTOU, USR1, USR2, WINCH, TERM,
INT/QUIT). The worker contract it relies on is `tricorn.core.worker`. See docs/arbiter.md.
"""

from .arbiter import Arbiter, ArbiterError
from .cli import main

__all__ = ["Arbiter", "ArbiterError", "main"]
