"""tricorn-wsgi: a strict, fast WSGI (PEP 3333) server on tricorn-core's parser.

Run it with ``tricorn-wsgi [OPTIONS] MODULE:APP`` (or ``python -m tricorn.wsgi``), or let the
arbiter fork its worker classes (``tricorn -k sync|gthread``). See docs/wsgi.md.
"""

from __future__ import annotations

from .filewrapper import FileWrapper

__version__ = "0.1.0"

__all__ = ["FileWrapper", "__version__"]
