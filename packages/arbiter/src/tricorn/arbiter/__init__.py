"""tricorn.arbiter — not built yet; see docs/status.md."""
