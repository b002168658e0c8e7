"""Every conformance case where tricorn does not do what the external corpus expects, and why.

`DEVIATIONS` maps "<corpus>/<case id>" to (what we do, reason). The test of a listed case asserts
exactly "what we do", so a deviation can neither hide a regression nor go stale: if the behaviour
changes, the test fails until this file is changed too. `NOT_APPLICABLE` lists the cases that need
a server setting which does not exist at the parser level (what can still be checked of them is).

"What we do" is a small language (read by harness.check_outcome):
    "400 missing_host"                      a ProtocolError(400, "missing_host") before any request
                                            completes
    "after 1 request: 400 bad_chunk_size"   that many complete requests, then the error
    "1 request, then close"                 that many requests, all complete, then the connection is
                                            not persistent ("then EOF": the client's clean close;
                                            "then tunnel": CONNECT; "then upgrade": 101)
    "1 request, then waits for more"        no error; the connection waits for more bytes
    "1 request, then incomplete at EOF"     the last request is cut by the client's close: it is
                                            never delivered as complete
    "1 request (last body b'...'), then …"  and the last request's body is exactly these bytes
    "…; with host_optional: as corpus"      the case runs again with these ParserLimits options on,
                                            and then the corpus' own expectation (or the outcome
                                            given) holds: what the first answer hides is checked too

The reasons cite RFC 9110 / RFC 9112 (and, for lenient llhttp cases, say which leniency we do not
adopt). Reasons that start with "lenient case, rejected by design" are counted as such in the report.
"""

from __future__ import annotations

_HOST = "RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request that lacks a Host field"
_HOST_ONLY = (
    _HOST + "; the case has none. With host_optional the request is exactly what the corpus expects"
)
_LENIENT = "lenient case, rejected by design: "
_GZIP = (
    "RFC 9112 §6.1: a server that receives a transfer coding it does not understand SHOULD answer "
    "501. tricorn decodes only chunked; passing a gzip/deflate-coded body on to the application "
    "still coded (as gunicorn does) would hand it bytes it cannot tell from a plain body"
)

DEVIATIONS: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------------------------- gunicorn
    "gunicorn/valid/004": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/007": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/009": (
        "400 missing_host; with host_optional: 400 content_length_with_transfer_encoding",
        _HOST + ". Then: `Transfer-Encoding: identity` with `Content-Length: 5`: TE overrides CL "
        "and chunked is not the final coding, so the length cannot be determined (RFC 9112 §6.3 "
        "rule 3 and 4: 400 and close); RFC 9112 §6.1 also allows rejecting CL+TE outright, which "
        "is the check that fires first",
    ),
    "gunicorn/valid/010": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/013": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/014": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/018": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/021": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/023": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/025": (
        "400 missing_host; with host_optional: 501 unknown_transfer_coding",
        _HOST + ". Then: " + _GZIP,
    ),
    "gunicorn/valid/025_line": (
        "400 missing_host; with host_optional: 501 unknown_transfer_coding",
        _HOST + ". Then: " + _GZIP,
    ),
    "gunicorn/valid/030": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "gunicorn/valid/099": (
        "1 request, then incomplete at EOF",
        "RFC 9112 §8: a message whose body is shorter than its Content-Length when the connection "
        "closes is incomplete. The case declares 17914 bytes and sends 8599 (the corpus file is "
        "truncated; gunicorn's reader returns the short body as if complete); we never deliver it "
        "as a complete request",
    ),
    "gunicorn/valid/compat_obs_fold_huge": (
        "400 missing_host; with host_optional: as corpus", _HOST_ONLY
    ),
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01": ("501 unknown_transfer_coding", _GZIP),
    # ------------------------------------------------------------------------------- llhttp
    "llhttp/e38a96e645ec": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/4581cfc0055e": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/8e71260f26dd": (
        "1 request, then close",
        _LENIENT + "llhttp's keep-alive leniency reads on after `Connection: close`; RFC 9112 §9.6: "
        "after a close the server MUST NOT process further requests on the connection",
    ),
    "llhttp/15719c1b4f43": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/9a85af4e8e8e": (
        "400 obsolete_line_folding",
        _LENIENT + "even with unfold on, a folded Connection (or other framing / connection) "
        "field is refused: RFC 9112 §5.2 allows rejecting any obs-fold with 400, and a folded "
        "framing field is a classic desync vector (CVE-2022-32215)",
    ),
    "llhttp/5b053420a58e": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/a279f3d563e6": (
        "400 obsolete_line_folding",
        _LENIENT + "even with unfold on, a folded Connection field is refused (RFC 9112 §5.2 "
        "allows 400 for any obs-fold)",
    ),
    "llhttp/cd401b91c2c5": (
        "400 bad_field_name",
        _LENIENT + "whitespace between a field name and the colon: RFC 9112 §5.1 says a server "
        "MUST reject it with 400",
    ),
    "llhttp/0286cad2c5fe": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/7916deaf06e4": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/b594744dd87c": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/efe49d41e865": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/f9d6d46050d8": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/c81a3aab507f": (
        "400 missing_host; with host_optional: 1 request, then waits for more",
        _HOST + ". Then: the case's `skipBody` meta makes llhttp's on_headers_complete skip the "
        "Content-Length body (an API meant for responses to HEAD); a server must read the 123-byte "
        "body (RFC 9112 §6.3 rule 6), so the second request is part of the first one's body",
    ),
    "llhttp/4fcce74440f3": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/f62b1ccf05fc": (
        "1 request, then close",
        "RFC 9110 §9.1: a method is any token, and whether it is implemented is the server's "
        "answer (501), not a parse error; llhttp refuses ANNOUNCE because it is an RTSP method. "
        "HTTP/1.0 without keep-alive: the connection closes after the response",
    ),
    "llhttp/a389e71a8fea": (
        "400 bare_cr",
        _LENIENT + "llhttp's optional-lf-after-cr leniency takes `\\rZ` as a line end; a CR not "
        "followed by LF is invalid (RFC 9112 §2.2), so the first request is refused, not "
        "delivered",
    ),
    "llhttp/c74832259a8b": (
        "0 requests, then waits for more",
        "The request line is validated once its CRLF has arrived (an incomplete line is only "
        "scanned for bytes that are invalid anywhere, and counted against the limits); llhttp "
        "fails on `HTTP/5.6` before the line ends. With the CRLF we answer 505 (RFC 9110 §15.6.6; "
        "see tests/core/test_parser_rules.py)",
    ),
    "llhttp/20567a18caaa": (
        "400 bare_lf",
        _LENIENT + "lines ended by a bare LF: RFC 9112 §2.2 only MAY accept them; we reject "
        "(a classic desync vector, CVE-2019-16785)",
    ),
    "llhttp/63373acc1c3e": (
        "400 control_byte",
        _LENIENT + "a control byte (0x0C) in a field value is invalid (RFC 9110 §5.5)",
    ),
    "llhttp/b97d72bc5a56": (
        "400 control_byte",
        _LENIENT + "a control byte (0x0C) in a field value is invalid (RFC 9110 §5.5)",
    ),
    "llhttp/6b3e97ff28ae": (
        "400 bare_cr",
        _LENIENT + "a CR not followed by LF in a field line is invalid (RFC 9112 §2.2, RFC 9110 "
        "§5.5)",
    ),
    "llhttp/071539874df5": (
        "505 http_version_not_supported",
        _LENIENT + "HTTP/5.6 is well-formed but not a version we implement (RFC 9110 §15.6.6)",
    ),
    "llhttp/9c7072a312a3": (
        "400 connect_with_body",
        "RFC 9110 §9.3.6: a CONNECT request has no content, so Content-Length (or "
        "Transfer-Encoding) on one is refused rather than read as a body; llhttp ignores the "
        "length and starts the tunnel after the head",
    ),
    "llhttp/e235da503343": (
        "400 bad_request_target",
        "RFC 9112 §3.2.4: the asterisk-form is only used for a server-wide OPTIONS request "
        "(M-SEARCH * is SSDP, not HTTP)",
    ),
    "llhttp/0d3efde9d6a0": (
        "400 bad_http_version",
        "RFC 9112 §2.3/§3: HTTP-version is `HTTP/` DIGIT `.` DIGIT; `ICE/1.0` is not HTTP",
    ),
    "llhttp/153f72eea249": (
        "400 bad_http_version",
        "RFC 9112 §2.3/§3: HTTP-version is `HTTP/` DIGIT `.` DIGIT; `RTSP/1.0` is not HTTP",
    ),
    "llhttp/8e0fa5873164": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/883a4d56cfb6": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/d1c2dc73b2a8": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/1c3e49f6f8aa": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/e3bf51ef97e1": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/5399cc6f0933": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/bb366f5737ba": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/91efc55ddc13": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/f161479e7bdf": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/6f492e7fa2dd": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/3296f0a3f997": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/1cfc16894bf7": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/3bcfd55ae805": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/6de1fa8b6bae": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/9d98d10a0e22": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/431b0050bf50": (
        "400 bad_request_line",
        "An HTTP/0.9 simple request (no version): RFC 9112 §3 requires the HTTP-version in the "
        "request-line; HTTP/0.9 is not supported",
    ),
    "llhttp/1e224f4a947e": (
        "400 obsolete_line_folding",
        _LENIENT + "with unfold on, the folded Line1..Line4 fields would be joined, but the "
        "folded Connection field is refused (RFC 9112 §5.2 allows 400 for any obs-fold)",
    ),
    "llhttp/ba672c8a5e32": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/f4761c6fed3e": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/07ade6c545a5": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/72625a5adc64": (
        "400 missing_host; with host_optional: as corpus",
        _HOST_ONLY + " (with unfold, the same leniency as llhttp's: obs-fold becomes one SP, "
        "RFC 9112 §5.2)",
    ),
    "llhttp/40221fffd16b": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/0580d655cc39": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/5954b2a69187": (
        "400 missing_host; with host_optional: 400 forbidden_trailer_field",
        _HOST + ". Then: the trailer section holds `Vary` and `Content-Type`. RFC 9110 §6.5.1: a "
        "sender MUST NOT generate a trailer field unless its definition permits it, and fields "
        "needed before the content (content format, response controls) cannot be trailers; we "
        "refuse such trailers with 400, as gunicorn does for its rfc9110_trailer_forbidden cases",
    ),
    "llhttp/81ce354a1350": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/6f12807aa777": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/e3f4b01dd011": (
        "400 missing_host; with host_optional: 400 content_length_with_transfer_encoding",
        _LENIENT + _HOST + "; then Transfer-Encoding with Content-Length is refused (RFC 9112 §6.1 "
        "MAY reject; §6.3 rule 4: chunked is not final), never framed by Content-Length",
    ),
    "llhttp/afb995731d1c": (
        "400 missing_host; with host_optional: 400 transfer_encoding_not_chunked",
        _LENIENT + _HOST + "; then `chunked, deflate`: chunked is not the final coding, so the "
        "length cannot be determined (RFC 9112 §6.3 rule 4: 400 and close)",
    ),
    "llhttp/a29c51f64072": (
        "400 missing_host; with host_optional: 400 transfer_encoding_not_chunked",
        _LENIENT + _HOST + "; then two TE lines form the list `chunked, deflate` (RFC 9110 §5.3): "
        "chunked is not final (RFC 9112 §6.3 rule 4: 400 and close)",
    ),
    "llhttp/87209939210f": (
        "400 missing_host; with host_optional: 501 unknown_transfer_coding",
        _HOST + ". Then: " + _GZIP,
    ),
    "llhttp/b14b757c2812": (
        "400 bare_cr",
        _LENIENT + "`6\\r\\r;ABCD`: a CR not followed by LF ends no chunk-size line (RFC 9112 "
        "§2.2, §7.1); the head is delivered, its body fails",
    ),
    "llhttp/ccc3588d6982": (
        "400 bad_chunk_data_end",
        _LENIENT + "chunk data must be followed by CRLF (RFC 9112 §7.1; CVE-2025-43859 shape)",
    ),
    "llhttp/f823fa7147d5": (
        "400 missing_host; with host_optional: 400 bad_chunk_size",
        _LENIENT + _HOST + "; then `a \\r\\n`: chunk-size is 1*HEXDIG and BWS may only precede "
        "`;` (RFC 9112 §7.1, §7.1.1)",
    ),
    "llhttp/5638a79d6875": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/b6ae3d25f183": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/986c82fa8d75": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/819aa6c3763f": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/65fc9a18db36": (
        "1 request, then waits for more",
        "The parser accepts obs-text (bytes 0x80-0xFF) in the request-target, as gunicorn does "
        "(gunicorn valid/027 expects `/\\xc3\\xa0%20k`); it does not affect framing. Strictly, "
        "RFC 9112 §3.2 (RFC 3986 URI syntax) has no non-ASCII and RFC 9112 §3 says a server "
        "SHOULD answer 400 or 301: a deliberate leniency of the C parser's target class",
    ),
    "llhttp/00c313ed0cb3": ("400 missing_host; with host_optional: as corpus", _HOST_ONLY),
    "llhttp/f8bcacb2d4dd": (
        "400 bad_request_target",
        "userinfo in an http URI: RFC 9110 §4.2.4: a sender MUST NOT generate it and a recipient "
        "SHOULD treat it as an error (it is used to obscure the authority)",
    ),
    # ------------------------------------------------------------------------------- HTTP Garden
    "http-garden/http-garden-server-bug-25": (
        "400 missing_host; with host_optional: as corpus", _HOST_ONLY
    ),
    "http-garden/http-garden-server-bug-39": (
        "400 missing_host; with host_optional: as corpus", _HOST_ONLY
    ),
}

_PROXY = (
    "proxy_protocol: the PROXY protocol is a server setting tricorn-core's parser does not have; "
    "checked instead: without it a PROXY line is refused with 400, never parsed as a request"
)

NOT_APPLICABLE: dict[str, str] = {
    "gunicorn/valid/031compat": (
        "casefold_http_method: gunicorn upper-cases the method; our parser delivers it as sent "
        "(any_method maps permit_unconventional_http_method). Checked instead: with any_method the "
        "method is accepted and equals the expected one case-insensitively"
    ),
    "gunicorn/valid/pp_02": _PROXY,
    "gunicorn/valid/pp_03": (
        "proxy_protocol: not a parser setting. This case sends no PROXY line, so it is checked as "
        "a plain request against the corpus"
    ),
    "gunicorn/valid/pp_04": _PROXY,
    "gunicorn/valid/pp_05": _PROXY,
    "gunicorn/invalid/019": (
        "forwarded_allow_ips / secure_scheme_headers: contradictory X-Forwarded-* scheme headers "
        "are judged by the server from trusted peers, not by the parser. Checked instead: both "
        "fields reach the server unchanged"
    ),
    "gunicorn/invalid/040": (
        "header_map=refuse: refusing `_` in field names is the WSGI server's policy. Checked "
        "instead: the parser flags the request with F_UNDERSCORE_NAME, which that policy reads"
    ),
    "gunicorn/invalid/chunked_07": (
        "header_map=refuse: refusing `_` in field names is the WSGI server's policy. Checked "
        "instead: the parser flags the request with F_UNDERSCORE_NAME, which that policy reads"
    ),
    "gunicorn/invalid/pp_01": _PROXY,
    "gunicorn/invalid/pp_02": _PROXY,
    "gunicorn/invalid/pp_03": _PROXY,
}
