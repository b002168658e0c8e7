"""``python -m tricorn.wsgi``: the same as the ``tricorn-wsgi`` command."""

from __future__ import annotations

from .server import main

raise SystemExit(main())
