"""tricorn.asgi: tricorn's ASGI 3 server on asyncio/uvloop (HTTP/1.1 and lifespan).

Run it as ``tricorn-asgi MODULE:APP`` or under the arbiter as ``tricorn -k asgi MODULE:APP``.
The pieces: `protocol` (one connection), `cycle` (one request), `lifespan`, `server` (the engine),
`worker` (the ``asgi`` worker class), `settings` (this package's settings).
"""

__version__ = "0.1.0"
