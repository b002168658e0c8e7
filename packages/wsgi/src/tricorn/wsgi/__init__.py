"""tricorn.wsgi — not built yet; see docs/status.md."""
