"""What both faces of the lab app compute: bodies, the CPU work, the upstream address.

The functions here are pure (no I/O) except `upstream_url`, which reads the environment once.
Bodies that do not depend on the request are built once per process and reused.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import zlib
from urllib.parse import parse_qs, urlsplit

HELLO = b"Hello from the tricorn lab!\n"
DOWNLOAD_DEFAULT = 64 * 1024
DOWNLOAD_MAX = 16 * 1024 * 1024
CPU_DEFAULT_ROUNDS = 20_000
CPU_MAX_ROUNDS = 5_000_000
IO_DEFAULT_MS = -1  # -1: let the upstream use its own configured delay
UPSTREAM_ENV = "LAB_UPSTREAM_URL"


def query_int(query_string: str, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter `name`, clamped to [low, high]; `default` when absent or invalid."""
    values = parse_qs(query_string).get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        return default
    return max(low, min(high, value))


def json_body(request_number: int) -> bytes:
    """A small list of records serialised per request (the JSON workload measures this work)."""
    records = [
        {
            "id": request_number * 20 + i,
            "name": f"item-{i}",
            "tags": ["lab", "tricorn", "json"],
            "price": round(1.5 * i + 0.25, 2),
            "in_stock": i % 3 != 0,
        }
        for i in range(20)
    ]
    return json.dumps({"count": len(records), "items": records}).encode()


@functools.lru_cache(maxsize=8)
def download_body(size: int) -> bytes:
    """`size` deterministic bytes (cached per size, so the download workload measures I/O only)."""
    pattern = bytes(range(256))
    return (pattern * (size // 256 + 1))[:size]


def upload_answer(length: int, crc: int) -> bytes:
    """The upload endpoint's JSON answer."""
    return json.dumps({"received": length, "crc32": crc}).encode()


def crc_update(crc: int, chunk: bytes) -> int:
    """Running CRC-32 over the uploaded chunks."""
    return zlib.crc32(chunk, crc)


def cpu_work(rounds: int) -> int:
    """Pure-Python arithmetic holding the GIL for `rounds` iterations (1–2 ms per 10k rounds here)."""
    x = 1
    acc = 0
    for i in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        acc ^= x >> (i & 7)
    return acc


def cpu_body(rounds: int) -> bytes:
    """The CPU endpoint's JSON answer."""
    return json.dumps({"rounds": rounds, "result": cpu_work(rounds)}).encode()


@functools.lru_cache(maxsize=1)
def upstream_url() -> str | None:
    """The slow upstream's base URL from `LAB_UPSTREAM_URL`, only if it points at loopback."""
    url = os.environ.get(UPSTREAM_ENV, "").rstrip("/")
    if not url:
        return None
    host = urlsplit(url).hostname or ""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host != "localhost":
            return None
    return url


def upstream_target(query_string: str) -> str | None:
    """The upstream URL for one /io request (the `ms` parameter is passed through), or None."""
    base = upstream_url()
    if base is None:
        return None
    ms = query_int(query_string, "ms", IO_DEFAULT_MS, -1, 10_000)
    return f"{base}/delay" if ms < 0 else f"{base}/delay?ms={ms}"


NO_UPSTREAM = b'{"error": "LAB_UPSTREAM_URL is not set to a loopback address"}'
NOT_FOUND = b"not found\n"
