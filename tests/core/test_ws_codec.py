"""The C WebSocket frame codec (tricorn_ws.c via tricorn.core.parser.FrameParser)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tricorn.core.parser import WS_DIRECT_MIN, FrameError, FrameParser, utf8_valid, ws_frame, ws_header

KEY = 0x37FA213D


def client(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    return ws_frame(opcode, payload, fin, rsv1, mask_key=KEY)


def parse_all(data: bytes, max_size: int = 0, **kw: bool) -> list[tuple[int, int, int, bytes, int]]:
    p = FrameParser(max_size, **kw)
    buf = bytearray(data)
    out = p.parse(buf)
    assert p.consumed == len(data)
    return out


def parse_split(data: bytes, sizes: list[int], max_size: int = 0) -> list:
    """Feed data in pieces (as a connection would), dropping consumed bytes."""
    p = FrameParser(max_size)
    buf = bytearray()
    out: list = []
    pos = 0
    for size in sizes + [len(data)]:
        piece = data[pos:pos + size]
        pos += len(piece)
        buf += piece
        out += p.parse(buf)
        del buf[:p.consumed]
        if pos >= len(data):
            break
    assert not buf
    return out


def test_rfc_examples() -> None:
    # RFC 6455 section 5.7: a masked "Hello"
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert parse_all(data) == [(1, 1, 0, b"Hello", 0)]
    # fragmented unmasked text, as a client parser
    data = bytes.fromhex("010348656c80026c6f")
    assert parse_all(data, server=False) == [(1, 0, 0, b"Hel", 0), (0, 1, 0, b"lo", 0)]


def test_encoder_lengths() -> None:
    for n in (0, 125, 126, 65535, 65536, 100000):
        frame = ws_frame(2, b"x" * n)
        assert len(frame) == n + (2 if n < 126 else 4 if n < 65536 else 10)
        assert parse_all(frame, server=False) == [(2, 1, 0, b"x" * n, 0)]
        assert ws_header(2, n) == frame[:len(frame) - n]
        assert parse_all(client(2, b"y" * n)) == [(2, 1, 0, b"y" * n, 0)]


def test_many_frames_one_call() -> None:
    data = b"".join(client(2, bytes([i % 256]) * i) for i in range(200))
    out = parse_all(data)
    assert [f[3] for f in out] == [bytes([i % 256]) * i for i in range(200)]


def test_every_split() -> None:
    msgs = [client(1, "héllo wörld €𝄞".encode(), fin=False), client(9, b"ping"),
            client(0, b"tail", fin=True), client(2, b"\x00" * 300),
            client(8, struct.pack("!H", 1000) + b"bye")]
    data = b"".join(msgs)
    expected = parse_all(data)
    assert expected[-1][4] == 1000
    for i in range(len(data) + 1):
        assert parse_split(data, [i]) == expected
    assert parse_split(data, [1] * len(data)) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_random_splits(sizes: list[int]) -> None:
    data = b"".join(client(1 + i % 2, b"ab\xc3\xa9" * i) for i in range(20))
    assert parse_split(data, sizes) == parse_all(data)


def test_incomplete_waits() -> None:
    p = FrameParser()
    frame = client(2, b"abcdef")
    buf = bytearray(frame[:-1])
    assert p.parse(buf) == [] and p.consumed == 0
    assert bytes(buf) == frame[:-1]  # not unmasked yet
    buf += frame[-1:]
    assert p.parse(buf) == [(2, 1, 0, b"abcdef", 0)]


def expect_error(data: bytes, code: int, max_size: int = 0, **kw: bool) -> list:
    p = FrameParser(max_size, **kw)
    buf = bytearray(data)
    got = []
    with pytest.raises(FrameError) as info:
        while True:
            got += p.parse(buf)
            del buf[:p.consumed]
    assert info.value.code == code
    return got


def test_w2_oversized_length_header_fails_before_payload() -> None:
    # only the header of a frame announcing 2**62 bytes: rejected at once, nothing buffered
    header = bytes([0x82, 0xFF]) + struct.pack("!Q", 2**62) + b"\x00\x00\x00\x00"
    expect_error(header, 1009, max_size=1 << 20)
    header = bytes([0x82, 0xFE]) + struct.pack("!H", 1001) + b"\x00\x00\x00\x00"
    expect_error(header, 1009, max_size=1000)
    # the most significant bit of a 64-bit length must be 0
    expect_error(bytes([0x82, 0xFF]) + struct.pack("!Q", 2**63) + b"\0" * 4, 1002)


def test_w3_fragments_over_max() -> None:
    data = client(2, b"a" * 600, fin=False) + client(0, b"b" * 600, fin=False)
    got = expect_error(data, 1009, max_size=1000)
    assert len(got) == 1
    # exactly at the limit is fine
    data = client(2, b"a" * 600, fin=False) + client(0, b"b" * 400)
    assert len(parse_all(data, max_size=1000)) == 2


@pytest.mark.parametrize("data", [
    bytes([0x82 | 0x40, 0x80]) + b"\0" * 4,  # RSV1 without an extension
    bytes([0x82 | 0x20, 0x80]) + b"\0" * 4,  # RSV2
    bytes([0x82 | 0x10, 0x80]) + b"\0" * 4,  # RSV3
    bytes([0x83, 0x80]) + b"\0" * 4,         # reserved data opcode
    bytes([0x8B, 0x80]) + b"\0" * 4,         # reserved control opcode
    bytes([0x82, 0x00]),                     # unmasked client frame
    bytes([0x09, 0x80]) + b"\0" * 4,         # fragmented ping
    bytes([0x89, 0xFE, 0x00, 0x7E]) + b"\0" * 4,  # ping over 125 bytes
    bytes([0x80, 0x80]) + b"\0" * 4,         # continuation without a message
    bytes([0x82, 0xFE, 0x00, 0x05]) + b"\0" * 9,  # non-minimal length
    bytes([0x88, 0x81]) + b"\0" * 5,         # close with a 1-byte payload
])
def test_w4_protocol_violations(data: bytes) -> None:
    expect_error(data, 1002)


def test_data_frame_inside_fragmented_message() -> None:
    expect_error(client(1, b"a", fin=False) + client(1, b"b"), 1002)
    # control frames may be interleaved
    out = parse_all(client(1, b"a", fin=False) + client(9, b"") + client(0, b"b"))
    assert [f[0] for f in out] == [1, 9, 0]


@pytest.mark.parametrize("code,ok", [(1000, True), (1001, True), (1003, True), (1004, False),
                                     (1005, False), (1006, False), (1007, True), (1011, True),
                                     (1016, False), (2999, False), (3000, True), (4999, True),
                                     (5000, False), (0, False), (999, False)])
def test_close_codes(code: int, ok: bool) -> None:
    data = client(8, struct.pack("!H", code))
    if ok:
        assert parse_all(data) == [(8, 1, 0, struct.pack("!H", code), code)]
    else:
        expect_error(data, 1002)
    assert parse_all(client(8, b""))[0][4] == 1005


def test_utf8() -> None:
    expect_error(client(8, struct.pack("!H", 1000) + b"\xff"), 1007)
    expect_error(client(1, b"\xed\xa0\x80"), 1007)   # a surrogate
    expect_error(client(1, b"\xc0\xaf"), 1007)       # overlong
    expect_error(client(1, b"\xf4\x90\x80\x80"), 1007)  # beyond U+10FFFF
    expect_error(client(1, b"ab\xc3"), 1007)         # truncated at the end of the message
    # split inside a character across fragments: fine
    assert len(parse_all(client(1, b"\xc3", fin=False) + client(0, b"\xa9"))) == 2
    got = expect_error(client(1, b"\xc3", fin=False) + client(0, b"\x41"), 1007)
    assert len(got) == 1
    # binary is not checked; compressed text is checked after inflation, not here
    assert parse_all(client(2, b"\xff"))
    assert parse_all(client(1, b"\xff", rsv1=True), rsv1=True)[0][2] == 1
    for text in ["", "a", "é", "€", "𝄞", "ab" * 100 + "€"]:
        assert utf8_valid(text.encode())
    for bad in [b"\x80", b"\xc3", b"\xe0\x80\x80", b"\xf8\x88\x80\x80\x80"]:
        assert not utf8_valid(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_utf8_matches_python(data: bytes) -> None:
    try:
        data.decode("utf-8")
        ok = True
    except UnicodeDecodeError:
        ok = False
    assert utf8_valid(data) == ok


def test_error_is_sticky() -> None:
    p = FrameParser()
    buf = bytearray(client(2, b"ok") + bytes([0x83, 0x80]) + b"\0" * 4)
    assert p.parse(buf) == [(2, 1, 0, b"ok", 0)]
    del buf[:p.consumed]
    with pytest.raises(FrameError):
        p.parse(buf)
    with pytest.raises(FrameError):
        p.parse(bytearray())


# ------------------------------------------------------- feed(): marshal output, input untouched


def as_frames(items: list) -> list:
    """feed() items in parse()'s shape (a message in one frame comes as its str or bytes)."""
    out = []
    for item in items:
        if type(item) is str:
            out.append((1, 1, 0, item.encode(), 0))
        elif type(item) is bytes:
            out.append((2, 1, 0, item, 0))
        else:
            out.append(item)
    return out


def feed_split(data: bytes, sizes: list[int], max_size: int = 0, **kw: bool) -> tuple[list, int]:
    p = FrameParser(max_size, **kw)
    out: list = []
    pos = 0
    for size in [*sizes, len(data)]:
        piece = data[pos:pos + size]
        pos += len(piece)
        out += p.feed(piece)
        if pos >= len(data):
            break
    return out, p.error


MIXED = b"".join([
    client(1, "héllo wörld €𝄞".encode()), client(2, b""), client(1, b""),
    client(1, b"frag", fin=False), client(9, b"ping"), client(0, b"ment"),
    client(2, bytes(range(256)) * 300),  # 76800 bytes: 64-bit length
    client(2, b"\xff" * 126), client(1, b"c", rsv1=True), client(10, b""),
    client(8, struct.pack("!H", 1000) + b"bye"),
])


def test_feed_matches_parse_and_keeps_its_input() -> None:
    data = bytes(MIXED)
    expected = parse_all(MIXED, rsv1=True)
    items, error = feed_split(data, [], rsv1=True)
    assert data == MIXED and error == 0
    assert as_frames(items) == expected
    assert [type(i) for i in items[:3]] == [str, bytes, str]  # whole messages come ready-made
    assert isinstance(items[3], tuple) and items[3][3] == b"frag"  # fragments do not


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20000), max_size=40))
def test_feed_random_splits(sizes: list[int]) -> None:
    items, error = feed_split(MIXED, sizes, rsv1=True)
    assert error == 0 and as_frames(items) == parse_all(MIXED, rsv1=True)


def test_feed_every_small_split() -> None:
    data = b"".join([client(1, "é€".encode() * 5), client(9, b"p"), client(2, b"x" * 130),
                     client(8, b"")])
    expected = parse_all(data)
    for i in range(len(data) + 1):
        assert as_frames(feed_split(data, [i])[0]) == expected
    assert as_frames(feed_split(data, [1] * len(data))[0]) == expected


def test_feed_errors_after_the_frames_before_them() -> None:
    assert feed_split(client(2, b"ok") + bytes([0x83, 0x80]) + b"\0" * 4, []) == ([b"ok"], 1002)
    assert feed_split(client(1, b"ok") + client(1, b"\xc3\x28"), []) == (["ok"], 1007)
    assert feed_split(client(2, b"a" * 100) + client(2, b"b" * 101), [], max_size=100) == (
        [b"a" * 100], 1009)
    bad_close = client(8, struct.pack("!H", 1000) + b"\xff")
    assert feed_split(bad_close, [3]) == ([], 1007)
    p = FrameParser()
    assert p.feed(client(2, b"x") + bytes([0x83, 0x80])) == [b"x"] and p.error == 1002
    assert p.feed(client(2, b"y")) == [] and p.error == 1002  # sticky


def test_feed_larger_than_the_scratch_buffer() -> None:
    big = bytes(range(256)) * 5000  # 1.28 MB: more than the kept 1 MiB scratch
    data = client(2, big) + client(1, b"after")
    for sizes in ([], [1000, 500000]):
        items, error = feed_split(data, sizes)
        assert error == 0 and items == [big, "after"]


def read_through_buffers(data: bytes, sizes: list[int], **kw: bool) -> tuple[list, int]:
    """As a buffered transport would: get_buffer(), write at most a read's size into it,
    buffer_updated(n)."""
    p = FrameParser(1 << 24, **kw)
    out: list = []
    pos = 0
    for size in [*sizes, len(data)] * (len(data) + 1):
        if pos >= len(data):
            break
        buf = p.get_buffer()
        n = min(size, len(buf), len(data) - pos)
        assert n > 0
        buf[:n] = data[pos:pos + n]
        del buf
        pos += n
        out += p.buffer_updated(n)
    assert p.buffered == 0
    return out, p.error


def test_buffered_reads_in_a_fresh_thread() -> None:
    """The first get_buffer() of a thread makes its read buffer (and the parse scratch)."""
    import threading
    result: list = []
    thread = threading.Thread(target=lambda: result.append(read_through_buffers(MIXED, [], rsv1=True)))
    thread.start()
    thread.join(30)
    assert result and as_frames(result[0][0]) == parse_all(MIXED, rsv1=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=100000), max_size=40))
def test_buffered_reads_random_sizes(sizes: list[int]) -> None:
    items, error = read_through_buffers(MIXED, sizes, rsv1=True)
    assert error == 0 and as_frames(items) == parse_all(MIXED, rsv1=True)


def test_buffered_read_offers_room_for_the_whole_frame() -> None:
    p = FrameParser(1 << 24)
    frame = client(2, b"z" * 300_000)
    buf = p.get_buffer()
    buf[:100] = frame[:100]
    del buf
    assert p.buffer_updated(100) == [] and p.buffered == 100
    buf = p.get_buffer()  # the parser's own buffer now: the rest of the frame fits at once
    assert len(buf) >= len(frame) - 100
    buf[:len(frame) - 100] = frame[100:]
    del buf
    assert p.buffer_updated(len(frame) - 100) == [b"z" * 300_000] and p.buffered == 0


def test_large_binary_messages_are_unmasked_straight_into_their_bytes() -> None:
    """From WS_DIRECT_MIN bytes on, the C codec gives a binary message's place and Python unmasks
    it into a new bytes object in one copy: the same messages, any mask key (its high bit too)."""
    payloads = [bytes((i * 7 + n) & 0xFF for i in range(n)) for n in (WS_DIRECT_MIN - 1, WS_DIRECT_MIN,
                                                                      70000)]
    data = b"".join(ws_frame(2, payload, mask_key=0xF1E2D3C4) for payload in payloads)
    data += ws_frame(2, payloads[2], mask_key=0x01020304) + client(1, b"t")
    expected = [*payloads, payloads[2], "t"]
    for sizes in ([], [5, 30000], [WS_DIRECT_MIN + 3, 1]):
        for items, error in (feed_split(data, sizes), read_through_buffers(data, sizes)):
            assert error == 0 and items == expected
            assert [type(item) for item in items] == [bytes] * 4 + [str]
