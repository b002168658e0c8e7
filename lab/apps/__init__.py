"""The lab's application: the same endpoints with a WSGI face and an ASGI face.

| path | what it does | workload |
|---|---|---|
| `GET /health` | `ok` (readiness probe, warm-up) | — |
| `GET /` | a short plain-text hello | hello |
| `GET /json` | serialises a small list of records with `json.dumps` per request | json |
| `GET /download?size=N` | N bytes (default 64 KiB, at most 16 MiB) | download |
| `POST /upload` | reads the whole body, answers its length and CRC-32 as JSON | upload |
| `GET /io?ms=N` | calls the slow upstream (`LAB_UPSTREAM_URL`) with httpx, answers its JSON | io |
| `GET /cpu?n=N` | N rounds of pure-Python arithmetic (holds the GIL) | cpu |
| `WS /ws` | echoes every message (ASGI face only) | websocket |

`lab.apps.content` holds everything both faces share, so they differ only in their I/O model.
"""
