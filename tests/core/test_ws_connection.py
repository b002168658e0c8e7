"""The sans-I/O WebSocket connection and permessage-deflate (tricorn.core.websocket)."""

from __future__ import annotations

import struct
import zlib

import pytest
from tricorn.core.parser import FrameParser, ws_frame
from tricorn.core.websocket import (
    PerMessageDeflate,
    WebSocketConnection,
    WsState,
    accept_key,
    valid_key,
)


def c(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    return ws_frame(opcode, payload, fin, rsv1, mask_key=0x01020304)


def server_frames(data: bytes) -> list:
    return FrameParser(server=False, rsv1=True).parse(bytearray(data))


def test_accept_key_rfc_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert valid_key(b"dGhlIHNhbXBsZSBub25jZQ==")
    assert not valid_key(b"dGhlIHNhbXBsZSBub25jZQ") and not valid_key(b"!" * 24)


def test_messages_ping_and_close_echo() -> None:
    ws = WebSocketConnection()
    events = ws.receive_data(c(1, b"he", fin=False) + c(9, b"x") + c(0, b"y"))
    assert events == [("ping", b"x"), "hey"]
    assert server_frames(ws.data_to_send()) == [(10, 1, 0, b"x", 0)]
    events = ws.receive_data(c(8, struct.pack("!H", 4000) + b"why"))
    assert events == [("close", 4000, "why")] and ws.state is WsState.CLOSED
    assert server_frames(ws.data_to_send())[0][4] == 4000
    assert ws.send_close() == b""


def test_our_close_then_theirs() -> None:
    ws = WebSocketConnection()
    assert server_frames(ws.send_close(1001, "away"))[0][3] == struct.pack("!H", 1001) + b"away"
    assert ws.state is WsState.CLOSING
    assert ws.receive_data(c(2, b"late")) == []  # data after our close is dropped
    assert ws.receive_data(c(8, b"")) == [("close", 1005, "")]
    assert ws.data_to_send() == b"" and ws.state is WsState.CLOSED


def test_error_fails_connection() -> None:
    ws = WebSocketConnection()
    assert ws.receive_data(c(2, b"ok") + bytes([0x83, 0x80, 0, 0, 0, 0])) == [
        b"ok", ("error", 1002)]
    assert server_frames(ws.data_to_send())[0][4] == 1002
    assert ws.receive_data(c(2, b"more")) == []


@pytest.mark.parametrize("offer,response", [
    (b"permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; client_max_window_bits", b"permessage-deflate"),
    (b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
     b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
    (b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
     b"permessage-deflate"),  # 8 bits declined: the next offer
    (b"permessage-deflate; server_max_window_bits=12",
     b"permessage-deflate; server_max_window_bits=12"),
    (b"permessage-deflate; bogus", None),
    (b"permessage-deflate; client_max_window_bits=16", None),
    (b"x-webkit-deflate-frame", None),
])
def test_negotiation(offer: bytes, response: bytes | None) -> None:
    got = PerMessageDeflate.negotiate(offer)
    assert (got[1] if got else None) == response


def deflate_client(data: bytes, comp: zlib._Compress | None = None) -> bytes:
    comp = comp or zlib.compressobj(6, zlib.DEFLATED, -15)
    return (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_compressed_roundtrip_with_context_takeover() -> None:
    pmd, _ = PerMessageDeflate.negotiate(b"permessage-deflate")  # type: ignore[misc]
    ws = WebSocketConnection(deflate=pmd)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    for i in range(3):
        text = ("hello " * 50 + str(i)).encode()
        assert ws.receive_data(c(1, deflate_client(text, comp), rsv1=True)) == [
            text.decode()]
    out = ws.send_message("abc" * 100)
    (opcode, fin, rsv1, payload, _), = server_frames(out)
    assert rsv1 == 1 and zlib.decompressobj(-15).decompress(payload + b"\0\0\xff\xff") == b"abc" * 100
    assert server_frames(ws.send_message("tiny"))[0][2] == 0  # small messages are not compressed


def test_inflate_bomb_and_bad_utf8() -> None:
    pmd, _ = PerMessageDeflate.negotiate(b"permessage-deflate")  # type: ignore[misc]
    ws = WebSocketConnection(max_size=1000, deflate=pmd)
    assert ws.receive_data(c(2, deflate_client(b"\0" * 1001), rsv1=True)) == [("error", 1009)]
    pmd, _ = PerMessageDeflate.negotiate(b"permessage-deflate")  # type: ignore[misc]
    ws = WebSocketConnection(deflate=pmd)
    assert ws.receive_data(c(1, deflate_client(b"\xff\xfe"), rsv1=True)) == [("error", 1007)]
    ws = WebSocketConnection(deflate=PerMessageDeflate())
    assert ws.receive_data(c(2, b"\xff\xff\xff garbage", rsv1=True)) == [("error", 1007)]


@pytest.mark.parametrize("max_size", [16 * 1024 * 1024, 2**40])  # marshal path / in-place path
def test_both_parser_paths_give_the_same_events(max_size: int) -> None:
    ws = WebSocketConnection(max_size)
    data = c(1, "é".encode() * 70) + c(2, b"a", fin=False) + c(9, b"p") + c(0, b"b") \
        + c(2, b"\x00" * 70000) + c(1, b"")
    events = []
    for i in range(0, len(data), 1000):
        events += ws.receive_data(data[i:i + 1000])
    assert events == ["é" * 70, ("ping", b"p"), b"ab",
                      b"\x00" * 70000, ""]
    assert server_frames(ws.data_to_send()) == [(10, 1, 0, b"p", 0)]
    assert ws.send_message("x" * 200) == ws_frame(1, b"x" * 200)
    assert ws.send_message(b"y" * 70000) == ws_frame(2, b"y" * 70000)
    assert ws.send_message(b"") == ws_frame(2, b"")
