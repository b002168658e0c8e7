"""``python -m tricorn.arbiter``: the same as the ``tricorn`` command."""

from tricorn.arbiter.cli import main

raise SystemExit(main())
