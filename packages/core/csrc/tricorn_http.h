/* tricorn_http.h -- the C API of tricorn-core, and (verbatim) the cffi cdef.
 *
 * Plain declarations only: no #include, no macros, no function bodies, because cffi parses this
 * file. Fixed-width integer types come from <stdint.h>, which tricorn_http.c includes first.
 *
 * Invariants every entry point keeps:
 *   - no callbacks: one call consumes everything that is available and writes its results into
 *     caller-owned structs and buffers, which the caller reuses;
 *   - incremental: the same bytes split at any points give the same result, and every input byte is
 *     looked at a bounded number of times, so a client that sends one byte at a time costs linear work;
 *   - strict: ambiguous framing and malformed syntax are errors with an HTTP status hint, never repaired.
 *     Leniency exists only as TC_OPT_* bits, all off by default;
 *   - every limit is checked before the bytes it guards are accepted.
 */

/* --- limits and options (one struct per server, shared by all its connections) ----------------- */

enum {
    TC_OPT_UNFOLD = 1,        /* obs-fold: join a folded field line with one SP instead of 400 */
    TC_OPT_ANY_METHOD = 2,    /* accept any token as method, not only conventional upper-case ones */
    TC_OPT_HOST_OPTIONAL = 4  /* do not require a Host field in HTTP/1.1 requests */
};

typedef struct tc_limits {
    uint32_t max_request_line;  /* request-line bytes without CRLF; longer: 414 */
    uint32_t max_fields;        /* header (or trailer) field lines; more: 431 */
    uint32_t max_field_size;    /* one field line without CRLF; longer: 431 */
    uint32_t max_head_size;     /* the whole head (or trailer section) with CRLFs; larger: 431 */
    uint64_t max_body_size;     /* Content-Length or decoded chunked total; 0 = no limit; larger: 413 */
    uint32_t max_chunk_line;    /* one chunk-size line with its extensions, without CRLF; longer: 400 */
    uint32_t max_chunk_ext;     /* chunk-extension bytes in one message; more: 400 */
    uint32_t options;           /* TC_OPT_* bits */
} tc_limits;

/* --- errors: a code, an HTTP status hint, an offset -------------------------------------------- */

enum tc_error {
    TC_OK = 0,
    TC_E_REQUEST_LINE,        /* malformed request line */
    TC_E_METHOD,              /* method is not a (conventional) token */
    TC_E_TARGET,              /* request-target has a byte or form that is not allowed */
    TC_E_VERSION,             /* malformed HTTP-version */
    TC_E_VERSION_UNSUPPORTED, /* well-formed but not HTTP/1.0 or HTTP/1.1 (505) */
    TC_E_REQUEST_LINE_TOO_LONG, /* (414) */
    TC_E_BARE_LF,             /* a line ended in LF without CR */
    TC_E_BARE_CR,             /* a CR not followed by LF */
    TC_E_CTL,                 /* a control byte where none may stand */
    TC_E_FIELD_NAME,          /* field name empty or not a token, or whitespace before the colon */
    TC_E_FIELD_VALUE,         /* field value with a forbidden byte */
    TC_E_NO_COLON,            /* field line without a colon */
    TC_E_LEADING_WHITESPACE,  /* whitespace before the first field line */
    TC_E_OBS_FOLD,            /* obsolete line folding */
    TC_E_TOO_MANY_FIELDS,     /* (431) */
    TC_E_FIELD_TOO_LARGE,     /* (431) */
    TC_E_HEAD_TOO_LARGE,      /* (431) */
    TC_E_HOST_MISSING,        /* HTTP/1.1 without Host */
    TC_E_HOST_DUPLICATE,
    TC_E_HOST_INVALID,
    TC_E_DUPLICATE_FIELD,     /* a singleton field (Content-Type, ...) twice */
    TC_E_CONTENT_LENGTH,      /* not 1*DIGIT, a list, repeated, or overflowing */
    TC_E_CL_AND_TE,           /* both Content-Length and Transfer-Encoding */
    TC_E_TE_NOT_CHUNKED,      /* Transfer-Encoding whose final coding is not chunked */
    TC_E_TE_CHUNKED_TWICE,
    TC_E_TE_UNKNOWN,          /* a transfer coding we do not decode, e.g. gzip (501) */
    TC_E_TE_INVALID,          /* malformed Transfer-Encoding list */
    TC_E_TE_HTTP10,           /* Transfer-Encoding in an HTTP/1.0 request */
    TC_E_EXPECT,              /* an expectation other than 100-continue (417) */
    TC_E_BODY_TOO_LARGE,      /* (413) */
    TC_E_CHUNK_SIZE,          /* chunk-size not 1*HEXDIG, or overflowing */
    TC_E_CHUNK_EXT,           /* malformed chunk extension */
    TC_E_CHUNK_EXT_TOO_LONG,
    TC_E_CHUNK_DATA_END,      /* chunk data not followed by exactly CRLF */
    TC_E_TRAILER_FORBIDDEN,   /* a trailer field that may not be sent as a trailer */
    TC_E_CONNECT_BODY,        /* CONNECT with Content-Length or Transfer-Encoding */
    TC_E__COUNT
};

const char *tc_error_name(int code);   /* machine-readable reason, e.g. "bad_content_length" */
int tc_error_status(int code);         /* HTTP status hint: 400, 413, 414, 417, 431, 501, 505 */

/* --- request heads (and trailer sections) -------------------------------------------------------- */

enum {
    TC_F_HTTP11 = 1,              /* HTTP/1.1 (else HTTP/1.0) */
    TC_F_KEEP_ALIVE = 2,          /* the connection may persist after this request */
    TC_F_CHUNKED = 4,             /* body framed by chunked transfer coding */
    TC_F_LENGTH = 8,              /* body framed by Content-Length (content_length bytes, may be 0) */
    TC_F_EXPECT_CONTINUE = 16,    /* Expect: 100-continue in an HTTP/1.1 request */
    TC_F_UPGRADE = 32,            /* Upgrade field present and "upgrade" listed in Connection */
    TC_F_CONN_CLOSE = 64,         /* "close" listed in Connection */
    TC_F_CONN_KEEP_ALIVE = 128,   /* "keep-alive" listed in Connection */
    TC_F_UPGRADE_FIELD = 256,     /* an Upgrade field is present */
    TC_F_ABSOLUTE_FORM = 512,     /* request-target in absolute-form */
    TC_F_ASTERISK_FORM = 1024,    /* OPTIONS * */
    TC_F_AUTHORITY_FORM = 2048,   /* CONNECT host:port */
    TC_F_UNDERSCORE_NAME = 4096,  /* some field name contains "_" (CGI/WSGI name collisions) */
    TC_F_HOST = 8192,             /* a Host field is present */
    TC_F_TE_FIELD = 16384         /* a Transfer-Encoding field is present */
};

typedef struct tc_head {
    /* set once by the caller, kept across heads */
    const tc_limits *limits;
    /* results, valid once tc_parse_head returned > 0 */
    uint32_t flags;           /* TC_F_* */
    uint32_t nfields;         /* field lines written to out */
    uint64_t content_length;  /* with TC_F_LENGTH */
    uint32_t out_len;         /* bytes written to out */
    /* error details, valid once tc_parse_head returned < 0 */
    uint32_t error;           /* enum tc_error */
    uint32_t error_offset;    /* offset in buf where the error was found */
    /* incremental state, kept between calls while a head is incomplete */
    uint32_t stage;           /* 0 = new, 1 = request line, 2 = field lines, 3 = trailer lines, 4 = done */
    uint32_t start;           /* offset in buf where this head begins */
    uint32_t pos;             /* start of the first line not yet parsed */
    uint32_t scan;            /* how far the current line has been searched for LF */
    uint32_t cl_count;
    uint32_t seen;            /* internal bits: singleton fields seen */
    uint32_t te_state;        /* internal: transfer-coding list state */
    uint32_t list_at;         /* internal: offset in out of the field list's count */
    uint32_t last_field;      /* internal: offset in out of the last value (for unfolding) */
} tc_head;

/* The size of the out buffer that tc_parse_head and tc_parse_trailers need for these limits. */
size_t tc_head_out_size(const tc_limits *limits);

/* Parse a request head from buf[start:len]. While the result is 0, call again with the same buffer
 * grown by new bytes (start is then ignored). A head that completed or failed is forgotten by the next
 * call, which begins a new head at start; a zeroed struct (but for limits) also begins a new head.
 *
 * out (tc_head_out_size(limits) bytes) is scratch space that may be shared by many heads: it is only
 * meaningful after a call that returned > 0, and only until the next call that uses it. A head that
 * arrives in several pieces is validated line by line as its lines arrive and written out in full
 * once it is complete, so each byte is parsed at most twice.
 *
 * The result is written to out in Python's marshal format (read by marshal.loads, which builds every
 * object in one C call): the tuple
 *     (method: bytes, target: bytes, http_version: str ("1.0" or "1.1"),
 *      fields: [(name: bytes, value: bytes), ...], flags: int, content_length: int)
 * with names lower-cased and values without leading and trailing SP/HTAB.
 *
 * Returns the length of the head including its final CRLF (> 0), 0 when more bytes are needed, or -1
 * on error (head->error, head->error_offset; tc_error_status gives the status hint). */
int tc_parse_head(tc_head *head, const char *buf, size_t len, size_t start, char *out);

/* Parse a trailer section (the field lines after the last chunk) in the same way; out then holds
 * the marshalled list [(name, value), ...]. Framing, routing, control, authentication and other
 * fields that may not be sent as trailers (RFC 9110 section 6.5.1) are refused. */
int tc_parse_trailers(tc_head *head, const char *buf, size_t len, size_t start, char *out);

/* --- chunked bodies -------------------------------------------------------------------------------- */

enum {
    TC_CHUNKS_MORE = 0,      /* all input consumed or out full; call again with more input */
    TC_CHUNKS_TRAILERS = 1,  /* last chunk seen: the trailer section starts at the consumed offset */
    TC_CHUNKS_ERROR = 2
};

typedef struct tc_chunked {
    /* set once by the caller */
    const tc_limits *limits;
    /* state: zero from here on for a new body (tc_chunked_reset) */
    uint32_t state;         /* internal decoder state */
    uint32_t error;         /* enum tc_error, with TC_CHUNKS_ERROR */
    uint64_t remaining;     /* bytes left in the current chunk */
    uint64_t total;         /* decoded body bytes so far */
    uint64_t size;          /* chunk-size being parsed */
    uint32_t line_len;      /* bytes of the current chunk-size line so far */
    uint32_t ext_total;     /* chunk-extension bytes in this message so far */
    size_t consumed;        /* out: input bytes consumed by the last call */
    size_t out_len;         /* out: decoded bytes written to out by the last call */
} tc_chunked;

void tc_chunked_reset(tc_chunked *st);

/* Decode chunked framing from buf[start:len], writing chunk data to out[0:out_cap]. Stops when the
 * input is used up, out is full, the last chunk's line has been read (TC_CHUNKS_TRAILERS), or on
 * error. st->consumed counts from start. */
int tc_decode_chunked(tc_chunked *st, const char *buf, size_t len, size_t start, char *out,
                      size_t out_cap);

/* --- WebSocket frames (RFC 6455), tricorn_ws.c ------------------------------------------------------ */

enum {
    TC_WS_MASK_REQUIRED = 1,  /* frames must be masked (we are the server) */
    TC_WS_RSV1_ALLOWED = 2,   /* RSV1 marks a compressed message (permessage-deflate negotiated) */
    /* flags or-ed with tc_ws_parse_marshal's count of items */
    TC_WS_ALL_PARSED = 0x40000000,  /* every input byte was parsed */
    TC_WS_DIRECT_ITEMS = 0x20000000 /* some items are (offset, length, mask key): see direct_min */
};

typedef struct tc_ws_frame {
    uint32_t opcode;          /* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    uint32_t fin;             /* 1 on the last frame of a message (always 1 for control frames) */
    uint32_t rsv1;            /* 1 on the first frame of a compressed message */
    uint32_t close_code;      /* close frames: the status code, or 1005 for an empty payload */
    uint64_t offset;          /* payload offset in buf (unmasked in place) */
    uint64_t length;          /* payload length */
} tc_ws_frame;

typedef struct tc_ws {
    /* set once by the caller */
    uint64_t max_size;        /* largest message (sum of its fragments); 0 = no limit; more: 1009 */
    uint32_t options;         /* TC_WS_* bits */
    uint32_t direct_min;      /* tc_ws_parse_marshal: a binary message in one frame of at least this
                                 many bytes (0: none) is not copied but written as the tuple
                                 (payload offset in buf, length, mask key as a signed 32-bit int),
                                 for the caller to unmask-copy (tc_ws_unmask_copy) into the object
                                 it makes for it: one pass over a large payload instead of two */
    /* state kept between calls: zero it (tc_ws_reset) for a new connection */
    uint32_t message;         /* opcode (1 or 2) of the fragmented message in progress, else 0 */
    uint32_t compressed;      /* the message in progress is compressed (its text is checked later) */
    uint32_t utf8;            /* incremental UTF-8 state of the text message in progress */
    uint64_t message_len;     /* bytes of the message in progress so far */
    /* results of the last call */
    uint32_t error;           /* a close code (1002, 1007, 1009) once an error was found; sticky */
    uint32_t nframes;         /* frames written to frames */
    size_t consumed;          /* input bytes taken by the frames written */
    size_t out_len;           /* tc_ws_parse_marshal: bytes of marshal data written to out */
    uint64_t need;            /* tc_ws_parse_marshal: out_cap the next complete frame needs, when it
                                 did not fit (it is then left for the next call); else 0 */
    uint64_t pending;         /* size (header + payload) of the incomplete frame the input ends
                                 with, once its header is complete; else 0 */
} tc_ws;

void tc_ws_reset(tc_ws *ws);

/* Parse every complete frame in buf[start:len] (at most max_frames), unmasking each payload in place
 * in buf, into frames[]. A frame's 64-bit length is checked against max_size (and control frames
 * against 125 bytes) as soon as its header is complete, before its payload is waited for. Text is
 * validated as UTF-8 across the fragments of a message (unless compressed), close payloads are
 * checked (code and UTF-8 reason). Incomplete frames are left for the next call (ws->consumed tells
 * where they begin). Returns the number of frames (>= 0); frames that precede an error are returned
 * first, and the next call returns -1 with ws->error set to the close code to send. */
int tc_ws_parse(tc_ws *ws, char *buf, size_t len, size_t start, tc_ws_frame *frames,
                uint32_t max_frames);

/* Like tc_ws_parse (the same rules, state and errors), but buf is left untouched: each complete
 * frame's payload is unmasked while it is copied into out, as Python marshal data (version 4) of
 * one list (ws->out_len bytes) with an item per frame:
 *   - a message in one frame (text or binary, FIN, not compressed): its str (text, validated UTF-8)
 *     or bytes;
 *   - any other frame: the tuple (opcode, fin, rsv1, payload bytes, close_code) as tc_ws_parse
 *     describes it.
 * A complete frame that does not fit in what is left of out_cap stops the call (ws->need: the
 * out_cap it needs alone); call again with start advanced by ws->consumed (and a larger out when
 * nothing fitted). Payloads must be under 2^31 - 64 bytes (a larger frame is error 1009).
 * Returns the number of items, or -1 (ws->error) when an error comes before any frame; the number
 * of items is or-ed with TC_WS_ALL_PARSED when the frames took the whole input (no error, no
 * incomplete frame, nothing left for a larger out): then ws->consumed, ->need and ->error need not
 * be read; and with TC_WS_DIRECT_ITEMS when an item is a direct_min tuple. */
int tc_ws_parse_marshal(tc_ws *ws, const char *buf, size_t len, size_t start, char *out,
                        size_t out_cap);

/* Write a server frame header (unmasked; mask_key != 0: masked with it, as a client would) for a
 * payload of `length` bytes into out (14 bytes at least). Returns the header length. */
int tc_ws_header(char *out, uint32_t opcode, uint32_t fin, uint32_t rsv1, uint64_t length,
                 uint32_t mask_key);

/* XOR buf[0:len] with the 4-byte mask key (network order), as if starting at mask offset `phase`. */
void tc_ws_mask(char *buf, size_t len, uint32_t mask_key, uint32_t phase);

/* dst[0:len] = src[0:len] unmasked with mask_key (0: a plain copy); the buffers must not overlap. */
void tc_ws_unmask_copy(char *dst, const char *src, size_t len, uint32_t mask_key);

/* 1 if buf[0:len] is complete and valid UTF-8, else 0. */
int tc_ws_utf8_valid(const char *buf, size_t len);
