"""tricorn.asgi — not built yet; see docs/status.md."""
