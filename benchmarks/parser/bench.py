"""Parse-rate benchmark: tricorn's C parser vs httptools (llhttp) vs h11, from Python.

Each contender turns the same raw request into the same data -- method, target, HTTP version, the
header list and the body -- and reuses its parser objects the way a server reuses them on a
keep-alive connection (h11, which cannot parse a second request before a response is sent, gets a
fresh Connection per request, as its API requires). Results are checked for equality before timing.

Timing: contenders are interleaved in rounds (the machines are shared and noisy), each round timing
`--number` parses; the report gives the median per-parse time over `--rounds` rounds and ratios
against tricorn measured in the same rounds. Pin to one core with `--cpu N` (default: the last one).

    python benchmarks/parser/bench.py            # all requests, all installed contenders
    python benchmarks/parser/bench.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable

Parsed = tuple[bytes, bytes, str, list[tuple[bytes, bytes]], bytes]

BROWSER_GET = (
    b"GET /articles/2024/11/parsers?ref=home HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"Connection: keep-alive\r\n"
    b"sec-ch-ua-mobile: ?0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Cookie: session=6f1c2a9e; theme=dark\r\n"
    b"\r\n"
)
SMALL_GET = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


CHUNKED_POST = (
    b"POST /api/upload HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Content-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
) + _chunked(b'{"name": "tricorn", "id":', b' 12345, "tags": ', b'["fast", "strict", "small"]}')
REQUESTS = {"browser GET": BROWSER_GET, "1-header GET": SMALL_GET, "chunked POST": CHUNKED_POST}


def tricorn_parser() -> Callable[[bytes], Parsed]:
    from tricorn.core.events import F_CHUNKED
    from tricorn.core.limits import ParserLimits
    from tricorn.core.parser import ChunkedDecoder, HeadParser

    limits = ParserLimits()
    heads = HeadParser(limits)
    chunks = ChunkedDecoder(limits)

    def parse(raw: bytes) -> Parsed:
        req = heads.parse(raw)
        if req is None:
            raise ValueError("incomplete")
        start = heads.length
        if req.flags & F_CHUNKED:
            chunks.reset()
            body, consumed, done = chunks.decode(raw, start)
            if not done or heads.parse_trailers(raw, start + consumed) is None:
                raise ValueError("incomplete body")
        elif req.content_length:
            body = raw[start:start + req.content_length]
        else:
            body = b""
        return req.method, req.target, req.http_version, req.headers, body

    return parse


def httptools_parser() -> Callable[[bytes], Parsed]:
    import httptools

    class Protocol:
        __slots__ = ("url", "headers", "body")

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

    proto = Protocol()
    parser = httptools.HttpRequestParser(proto)

    def parse(raw: bytes) -> Parsed:
        proto.headers = []
        proto.body = []
        parser.feed_data(raw)
        return (parser.get_method(), proto.url, parser.get_http_version(), proto.headers,
                b"".join(proto.body))

    return parse


def h11_parser() -> Callable[[bytes], Parsed]:
    import h11

    def parse(raw: bytes) -> Parsed:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(raw)
        req = conn.next_event()
        body = []
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise ValueError(f"unexpected {event!r}")
        return (req.method, req.target, req.http_version.decode(), list(req.headers),
                b"".join(body))

    return parse


CONTENDERS = {"tricorn": tricorn_parser, "httptools": httptools_parser, "h11": h11_parser}


def normalised(p: Parsed) -> tuple[object, ...]:
    method, target, version, headers, body = p
    return (method, target, version, [(n.lower(), v) for n, v in headers], body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--number", type=int, default=20000, help="parses per round and contender")
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})

    contenders = {}
    for name, make in CONTENDERS.items():
        try:
            contenders[name] = make()
        except ImportError as exc:
            print(f"# {name}: not installed ({exc}); skipped", file=sys.stderr)

    results: dict[str, dict[str, float]] = {}
    print(f"# Python {platform.python_version()} on {platform.machine()}, cpu {args.cpu}, "
          f"{args.rounds} rounds x {args.number} parses, median ns per parse")
    header = f"{'request':14} {'bytes':>5} " + " ".join(f"{n:>10}" for n in contenders)
    header += "   " + " ".join(f"{n + '/tricorn':>18}" for n in contenders if n != "tricorn")
    print(header)
    for label, raw in REQUESTS.items():
        expected = normalised(contenders["tricorn"](raw))
        for name, parse in contenders.items():
            got = normalised(parse(raw))
            if got != expected:
                raise SystemExit(f"{name} disagrees on {label}: {got!r} != {expected!r}")
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, parse in contenders.items():
                number = args.number if name != "h11" else max(1, args.number // 10)
                t = timeit.timeit(lambda p=parse: p(raw), number=number)  # noqa: B023
                samples[name].append(t / number * 1e9)
        medians = {name: statistics.median(v) for name, v in samples.items()}
        ratios = {
            name: statistics.median(
                [a / b for a, b in zip(samples[name], samples["tricorn"], strict=True)])
            for name in contenders if name != "tricorn"
        }
        results[label] = {**{f"{n}_ns": m for n, m in medians.items()},
                          **{f"{n}_per_tricorn": r for n, r in ratios.items()}, "bytes": len(raw)}
        line = f"{label:14} {len(raw):5d} " + " ".join(f"{medians[n]:10.0f}" for n in contenders)
        line += "   " + " ".join(f"{ratios[n]:17.2f}x" for n in ratios)
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
