/* tricorn_http.c -- strict, incremental HTTP/1.1 request parsing (RFC 9110 / RFC 9112).
 *
 * Theory of operation
 *   A request head is parsed line by line. tc_parse_head keeps, in the caller's tc_head, the offset of
 *   the first line it has not parsed yet and how far it has searched that line for its LF. A line is
 *   validated once, when its LF has arrived; bytes of an incomplete line are only scanned for bytes that
 *   are invalid anywhere in a head (so garbage fails fast) and counted against the limits. Hence every
 *   byte is touched a bounded number of times however the input is split.
 *
 *   The error is split-independent too: within a line, a byte past a limit, a CTL/DEL or a bare CR is
 *   reported in byte order before anything a complete line's syntax check finds (line_bytes serves
 *   the incomplete-line scan and the error path of complete lines alike), so a client gets the same
 *   status and reason whether its bytes came in one piece or one at a time.
 *
 *   Framing is decided here, in the same pass, with a closed set of outcomes: no body, Content-Length,
 *   chunked, or an error. Nothing ambiguous is repaired.
 *
 *   tc_decode_chunked is a byte-level state machine over the chunk-size lines, with bulk copies of the
 *   chunk data, so it needs no buffering of its own and accepts any split of its input.
 */

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "tricorn_http.h"

/* ---------------------------------------------------------------------------------------------- */
/* character classes                                                                              */

enum {
    C_TCHAR = 1,    /* token: ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~ */
    C_VALUE = 2,    /* field-vchar, obs-text, SP, HTAB */
    C_TARGET = 4,   /* request-target bytes: VCHAR and obs-text */
    C_HOST = 8,     /* reg-name: unreserved, pct-encoded, sub-delims */
    C_METHOD = 16,  /* conventional method: A-Z 0-9 - _ */
    C_BAD = 32,     /* invalid anywhere in a head: CTLs other than HTAB, CR, LF; and DEL */
    C_HEX = 64
};

static const char TOKEN_PUNCT[] = "!#$%&'*+-.^_`|~";
static const char HOST_PUNCT[] = "-._~%!$&'()*+,;=";

static uint8_t cls[256];
static uint8_t lower[256];
static uint8_t name_lower[256]; /* lower-case of a token byte, 0 for any other byte */
static int tables_ready;

static void build_tables(void)
{
    for (int c = 0; c < 256; c++) {
        uint8_t k = 0;
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        int digit = c >= '0' && c <= '9';
        if (alpha || digit || (c && strchr(TOKEN_PUNCT, c)))
            k |= C_TCHAR;
        if ((c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t')
            k |= C_VALUE;
        if (c >= 0x21 && c != 0x7f)
            k |= C_TARGET;
        if (alpha || digit || (c && strchr(HOST_PUNCT, c)))
            k |= C_HOST;
        if ((c >= 'A' && c <= 'Z') || digit || c == '-' || c == '_')
            k |= C_METHOD;
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
            k |= C_BAD;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            k |= C_HEX;
        cls[c] = k;
        lower[c] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        name_lower[c] = (k & C_TCHAR) ? lower[c] : 0;
    }
    tables_ready = 1;
}

#define IS(c, k) (cls[(uint8_t)(c)] & (k))
#define OWS(c) ((c) == ' ' || (c) == '\t')

/* Word-at-a-time helpers: with ONES = 0x0101...01, a word has a byte < n (n <= 128) iff
 * (x - ONES*n) & ~x & ONES*0x80 is not zero; it has a byte equal to b iff the same holds for
 * x ^ ONES*b with n = 1. */
#define ONES ((uint64_t)0x0101010101010101ull)
#define HAS_LESS(x, n) (((x) - ONES * (n)) & ~(x) & (ONES * 0x80))
#define HAS_BYTE(x, b) HAS_LESS((x) ^ (ONES * (b)), 1)

/* Length of the longest prefix of p[0:n] whose bytes all have class k. Words of eight bytes in
 * which no byte is below `low` or equal to DEL are accepted without a table lookup; the class k
 * must admit every such byte (true for field values and request-targets). */
static size_t span(const char *p, size_t n, uint8_t k, unsigned low)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (HAS_LESS(x, low) | HAS_BYTE(x, 0x7f))
            break;
    }
    while (i < n && IS(p[i], k))
        i++;
    return i;
}

/* ---------------------------------------------------------------------------------------------- */
/* errors                                                                                         */

static const struct { const char *name; int status; } ERRORS[TC_E__COUNT] = {
    [TC_OK] = {"ok", 200},
    [TC_E_REQUEST_LINE] = {"bad_request_line", 400},
    [TC_E_METHOD] = {"bad_method", 400},
    [TC_E_TARGET] = {"bad_request_target", 400},
    [TC_E_VERSION] = {"bad_http_version", 400},
    [TC_E_VERSION_UNSUPPORTED] = {"http_version_not_supported", 505},
    [TC_E_REQUEST_LINE_TOO_LONG] = {"request_line_too_long", 414},
    [TC_E_BARE_LF] = {"bare_lf", 400},
    [TC_E_BARE_CR] = {"bare_cr", 400},
    [TC_E_CTL] = {"control_byte", 400},
    [TC_E_FIELD_NAME] = {"bad_field_name", 400},
    [TC_E_FIELD_VALUE] = {"bad_field_value", 400},
    [TC_E_NO_COLON] = {"field_without_colon", 400},
    [TC_E_LEADING_WHITESPACE] = {"whitespace_before_first_field", 400},
    [TC_E_OBS_FOLD] = {"obsolete_line_folding", 400},
    [TC_E_TOO_MANY_FIELDS] = {"too_many_fields", 431},
    [TC_E_FIELD_TOO_LARGE] = {"field_too_large", 431},
    [TC_E_HEAD_TOO_LARGE] = {"head_too_large", 431},
    [TC_E_HOST_MISSING] = {"missing_host", 400},
    [TC_E_HOST_DUPLICATE] = {"duplicate_host", 400},
    [TC_E_HOST_INVALID] = {"bad_host", 400},
    [TC_E_DUPLICATE_FIELD] = {"duplicate_singleton_field", 400},
    [TC_E_CONTENT_LENGTH] = {"bad_content_length", 400},
    [TC_E_CL_AND_TE] = {"content_length_with_transfer_encoding", 400},
    [TC_E_TE_NOT_CHUNKED] = {"transfer_encoding_not_chunked", 400},
    [TC_E_TE_CHUNKED_TWICE] = {"chunked_applied_twice", 400},
    [TC_E_TE_UNKNOWN] = {"unknown_transfer_coding", 501},
    [TC_E_TE_INVALID] = {"bad_transfer_encoding", 400},
    [TC_E_TE_HTTP10] = {"transfer_encoding_in_http10", 400},
    [TC_E_EXPECT] = {"unsupported_expectation", 417},
    [TC_E_BODY_TOO_LARGE] = {"body_too_large", 413},
    [TC_E_CHUNK_SIZE] = {"bad_chunk_size", 400},
    [TC_E_CHUNK_EXT] = {"bad_chunk_extension", 400},
    [TC_E_CHUNK_EXT_TOO_LONG] = {"chunk_extension_too_long", 400},
    [TC_E_CHUNK_DATA_END] = {"bad_chunk_data_end", 400},
    [TC_E_TRAILER_FORBIDDEN] = {"forbidden_trailer_field", 400},
    [TC_E_CONNECT_BODY] = {"connect_with_body", 400},
};

const char *tc_error_name(int code)
{
    return (code >= 0 && code < TC_E__COUNT) ? ERRORS[code].name : "unknown_error";
}

int tc_error_status(int code)
{
    return (code > 0 && code < TC_E__COUNT) ? ERRORS[code].status : 400;
}

/* ---------------------------------------------------------------------------------------------- */
/* small helpers                                                                                  */

/* Case-insensitive comparison of p[0:n] with a lower-case literal. */
static int ieq(const char *p, size_t n, const char *lit, size_t litn)
{
    if (n != litn)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower[(uint8_t)p[i]] != (uint8_t)lit[i])
            return 0;
    return 1;
}
#define IEQ(p, n, lit) ieq((p), (n), lit, sizeof(lit) - 1)

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static int scheme_char(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '+' ||
           c == '-' || c == '.';
}

/* host [":" port] with host = IP-literal / reg-name; no userinfo. Empty is valid unless need_port. */
static int valid_authority(const char *p, size_t n, int need_port)
{
    size_t i = 0;
    if (n && p[0] == '[') {
        i = 1;
        while (i < n && (IS(p[i], C_HEX) || p[i] == ':' || p[i] == '.'))
            i++;
        if (i >= n || p[i] != ']' || i == 1)
            return 0;
        i++;
    } else {
        while (i < n && IS(p[i], C_HOST))
            i++;
        if (need_port && i == 0)
            return 0;
    }
    if (i == n)
        return !need_port;
    if (p[i] != ':')
        return 0;
    size_t port = ++i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i != n)
        return 0;
    return !need_port || i > port;
}

/* ---------------------------------------------------------------------------------------------- */
/* request heads                                                                                  */

enum { STAGE_NEW = 0, STAGE_REQUEST_LINE, STAGE_FIELDS, STAGE_TRAILERS, STAGE_DONE };

/* tc_head.seen bits */
enum {
    SEEN_CONN_UPGRADE = 1,
    SEEN_CONTENT_TYPE = 2,
    SEEN_LAST_SPECIAL = 4,   /* the last field line was one whose folding we never accept */
    SEEN_METHOD_CONNECT = 8,
    SEEN_CL_VALUE = 16
};

/* tc_head.te_state bits */
enum { TE_CHUNKED_LAST = 1, TE_CHUNKED_TWICE = 2, TE_UNKNOWN = 4, TE_CHUNKED_SEEN = 8 };

typedef struct {
    tc_head *h;
    const tc_limits *lim;
    const char *buf;
    char *out;
    size_t cap;
} ctx;

static int fail(ctx *c, int code, size_t offset)
{
    c->h->stage = STAGE_DONE;
    c->h->error = (uint32_t)code;
    c->h->error_offset = (uint32_t)offset;
    return -1;
}

/* --- the output, in Python's marshal format ----------------------------------------------------
 * The type codes used: ')' small tuple (1-byte count), '[' list (4-byte count), 's' bytes (4-byte
 * length), 'Z' interned short ASCII str (1-byte length), 'i' int32 and 'l' long (15-bit digits).
 * Integers are little-endian. All are read by every Python 3 since 3.4 (marshal version 4). */

static void put_u32(char *o, uint32_t v)
{
    o[0] = (char)(v & 0xff);
    o[1] = (char)((v >> 8) & 0xff);
    o[2] = (char)((v >> 16) & 0xff);
    o[3] = (char)(v >> 24);
}

static uint32_t get_u32(const char *o)
{
    const uint8_t *u = (const uint8_t *)o;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* Room for n more bytes of out? */
static int room(ctx *c, size_t n)
{
    return (size_t)c->h->out_len + n <= c->cap;
}

static void put_byte(ctx *c, char b)
{
    c->out[c->h->out_len++] = b;
}

/* A '[' list whose count is patched by close_list. */
static void open_list(ctx *c)
{
    put_byte(c, '[');
    c->h->list_at = c->h->out_len;
    c->h->out_len += 4;
}

static void close_list(ctx *c)
{
    put_u32(c->out + c->h->list_at, c->h->nfields);
}

/* A bytes object. */
static int emit(ctx *c, const char *p, size_t n)
{
    if (!room(c, n + 5))
        return 0;
    char *o = c->out + c->h->out_len;
    o[0] = 's';
    put_u32(o + 1, (uint32_t)n);
    memcpy(o + 5, p, n);
    c->h->out_len += (uint32_t)(n + 5);
    return 1;
}

/* An int: 'i' when it fits in 31 bits, else 'l' with 15-bit digits. */
static void emit_int(ctx *c, uint64_t v)
{
    char *o = c->out + c->h->out_len;
    if (v < 0x80000000u) {
        o[0] = 'i';
        put_u32(o + 1, (uint32_t)v);
        c->h->out_len += 5;
        return;
    }
    uint32_t nd = 0;
    for (uint64_t x = v; x; x >>= 15)
        nd++;
    o[0] = 'l';
    put_u32(o + 1, nd);
    for (uint32_t i = 0; i < nd; i++, v >>= 15) {
        o[5 + 2 * i] = (char)(v & 0xff);
        o[6 + 2 * i] = (char)((v >> 8) & 0x7f);
    }
    c->h->out_len += 5 + 2 * nd;
}

static int request_line(ctx *c, size_t ls, size_t n)
{
    tc_head *h = c->h;
    const char *b = c->buf;
    size_t end = ls + n, p = ls;

    while (p < end && IS(b[p], C_TCHAR))
        p++;
    size_t mlen = p - ls;
    if (mlen == 0)
        return fail(c, TC_E_REQUEST_LINE, ls);
    if (p == end || b[p] != ' ')
        return fail(c, (p == end || OWS(b[p])) ? TC_E_REQUEST_LINE : TC_E_METHOD, p);
    if (!(c->lim->options & TC_OPT_ANY_METHOD)) {
        if (!(b[ls] >= 'A' && b[ls] <= 'Z'))
            return fail(c, TC_E_METHOD, ls);
        for (size_t i = ls; i < p; i++)
            if (!IS(b[i], C_METHOD))
                return fail(c, TC_E_METHOD, i);
    }

    size_t ts = ++p;
    p += span(b + p, end - p, C_TARGET, 0x21);
    size_t tlen = p - ts;
    if (tlen == 0 || p == end)
        return fail(c, TC_E_REQUEST_LINE, p);
    if (b[p] != ' ')
        return fail(c, OWS(b[p]) ? TC_E_REQUEST_LINE : TC_E_TARGET, p);

    size_t vs = p + 1, vlen = end - vs;
    if (vlen != 8 || memcmp(b + vs, "HTTP/", 5) != 0 || b[vs + 6] != '.' ||
        !(b[vs + 5] >= '0' && b[vs + 5] <= '9') || !(b[vs + 7] >= '0' && b[vs + 7] <= '9'))
        return fail(c, TC_E_VERSION, vs);
    if (b[vs + 5] != '1')
        return fail(c, TC_E_VERSION_UNSUPPORTED, vs);
    if (b[vs + 7] != '0')
        h->flags |= TC_F_HTTP11;

    const char *t = b + ts;
    if (mlen == 7 && memcmp(b + ls, "CONNECT", 7) == 0) {
        h->seen |= SEEN_METHOD_CONNECT;
        if (!valid_authority(t, tlen, 1))
            return fail(c, TC_E_TARGET, ts);
        h->flags |= TC_F_AUTHORITY_FORM;
    } else if (t[0] == '/') {
        /* origin-form */
    } else if (tlen == 1 && t[0] == '*') {
        if (!(mlen == 7 && memcmp(b + ls, "OPTIONS", 7) == 0))
            return fail(c, TC_E_TARGET, ts);
        h->flags |= TC_F_ASTERISK_FORM;
    } else {
        /* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
        size_t i = 0;
        if (!((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')))
            return fail(c, TC_E_TARGET, ts);
        while (i < tlen && scheme_char(t[i]))
            i++;
        if (i + 3 > tlen || memcmp(t + i, "://", 3) != 0)
            return fail(c, TC_E_TARGET, ts + i);
        size_t as = i + 3, ae = as;
        while (ae < tlen && t[ae] != '/' && t[ae] != '?' && t[ae] != '#')
            ae++;
        if (ae == as || !valid_authority(t + as, ae - as, 0))
            return fail(c, TC_E_TARGET, ts + as);
        h->flags |= TC_F_ABSOLUTE_FORM;
    }

    /* (method, target, http_version, [fields...], flags, content_length) */
    if (!room(c, 2))
        return fail(c, TC_E_HEAD_TOO_LARGE, ls);
    put_byte(c, ')');
    put_byte(c, 6);
    if (!emit(c, b + ls, mlen) || !emit(c, t, tlen) || !room(c, 5 + 5))
        return fail(c, TC_E_HEAD_TOO_LARGE, ls);
    /* the version as an interned str: 'Z' (short ASCII, interned), length, "1.x" */
    put_byte(c, 'Z');
    put_byte(c, 3);
    put_byte(c, '1');
    put_byte(c, '.');
    put_byte(c, (h->flags & TC_F_HTTP11) ? '1' : '0');
    open_list(c);
    return 0;
}

static int content_length(ctx *c, const char *v, size_t n, size_t off)
{
    tc_head *h = c->h;
    if (++h->cl_count > 1)
        return fail(c, TC_E_CONTENT_LENGTH, off);
    if (n == 0)
        return fail(c, TC_E_CONTENT_LENGTH, off);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)((uint8_t)v[i] - '0');
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return fail(c, TC_E_CONTENT_LENGTH, off + i);
        x = x * 10 + d;
    }
    h->content_length = x;
    return 0;
}

/* Transfer-Encoding = #transfer-coding; several field lines form one list. */
static int transfer_encoding(ctx *c, const char *v, size_t n, size_t off)
{
    tc_head *h = c->h;
    size_t i = 0;
    h->flags |= TC_F_TE_FIELD;
    for (;;) {
        size_t s = i;
        while (i < n && IS(v[i], C_TCHAR))
            i++;
        size_t e = i;
        while (i < n && OWS(v[i]))
            i++;
        if (e == s || (i < n && v[i] != ','))
            return fail(c, TC_E_TE_INVALID, off + i);
        const char *t = v + s;
        size_t tn = e - s;
        if (IEQ(t, tn, "chunked")) {
            if (h->te_state & TE_CHUNKED_SEEN)
                h->te_state |= TE_CHUNKED_TWICE;
            h->te_state |= TE_CHUNKED_SEEN | TE_CHUNKED_LAST;
        } else {
            /* Only chunked is decoded. "identity" (no coding) is harmless; any other coding,
             * gzip included, would reach the application still coded: 501 (RFC 9112 section 6.1). */
            h->te_state &= ~(uint32_t)TE_CHUNKED_LAST;
            if (!IEQ(t, tn, "identity"))
                h->te_state |= TE_UNKNOWN;
        }
        if (i == n)
            return 0;
        i++; /* the comma */
        while (i < n && OWS(v[i]))
            i++;
    }
}

/* Connection = #connection-option: only close, keep-alive and upgrade matter; others are ignored. */
static void connection_options(tc_head *h, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (OWS(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && !OWS(v[i]))
            i++;
        const char *t = v + s;
        size_t tn = i - s;
        if (IEQ(t, tn, "close"))
            h->flags |= TC_F_CONN_CLOSE;
        else if (IEQ(t, tn, "keep-alive"))
            h->flags |= TC_F_CONN_KEEP_ALIVE;
        else if (IEQ(t, tn, "upgrade"))
            h->seen |= SEEN_CONN_UPGRADE;
    }
}

static int forbidden_trailer(const char *nm, size_t n)
{
    static const char *const NAMES[] = {
        "content-length", "transfer-encoding", "trailer", "host", "connection", "keep-alive",
        "upgrade", "te", "expect", "max-forwards", "cache-control", "authorization",
        "proxy-authorization", "proxy-authenticate", "www-authenticate", "cookie", "set-cookie",
        "content-type", "content-encoding", "content-range", "range", "if-match", "if-none-match",
        "if-modified-since", "if-unmodified-since", "if-range", "age", "expires", "date",
        "location", "retry-after", "vary", "warning", "pragma", NULL};
    for (const char *const *p = NAMES; *p; p++)
        if (strlen(*p) == n && memcmp(*p, nm, n) == 0)
            return 1;
    return 0;
}

/* One field line b[ls:ls+n] (no CRLF, does not start with whitespace). */
static int field_line(ctx *c, size_t ls, size_t n, int trailers)
{
    tc_head *h = c->h;
    const char *b = c->buf;
    size_t end = ls + n, p = ls;

    /* (name, value): the name is lower-cased into out while it is scanned. */
    if (!room(c, n + 12))
        return fail(c, TC_E_HEAD_TOO_LARGE, ls);
    char *pair = c->out + h->out_len;
    char *nm = pair + 7;
    /* The line ends in CR (b[end]), which is no token byte, so the scan stops by itself. */
    const uint8_t *ub = (const uint8_t *)b + ls;
    size_t nlen = 0;
    for (uint8_t lc; (lc = name_lower[ub[nlen]]) != 0; nlen++)
        nm[nlen] = (char)lc;
    p = ls + nlen;
    if (p == end)
        return fail(c, nlen ? TC_E_NO_COLON : TC_E_FIELD_NAME, p);
    if (b[p] != ':' || nlen == 0)
        return fail(c, b[p] == '\r' ? TC_E_BARE_CR : TC_E_FIELD_NAME, p);

    size_t vs = p + 1;
    while (vs < end && OWS(b[vs]))
        vs++;
    size_t ve = vs + span(b + vs, end - vs, C_VALUE, 0x20);
    if (ve != end)
        return fail(c, b[ve] == '\r' ? TC_E_BARE_CR : TC_E_FIELD_VALUE, ve);
    while (ve > vs && OWS(b[ve - 1]))
        ve--;
    const char *v = b + vs;
    size_t vn = ve - vs;

    pair[0] = ')';
    pair[1] = 2;
    pair[2] = 's';
    put_u32(pair + 3, (uint32_t)nlen);
    h->out_len += (uint32_t)(7 + nlen);
    h->last_field = h->out_len;
    if (!emit(c, v, vn))
        return fail(c, TC_E_HEAD_TOO_LARGE, vs);
    h->nfields++;
    if (memchr(nm, '_', nlen))
        h->flags |= TC_F_UNDERSCORE_NAME;

    h->seen &= ~(uint32_t)SEEN_LAST_SPECIAL;
    if (trailers) {
        if (forbidden_trailer(nm, nlen))
            return fail(c, TC_E_TRAILER_FORBIDDEN, ls);
        return 0;
    }
    switch (nlen) {
    case 4:
        if (memcmp(nm, "host", 4) == 0) {
            h->seen |= SEEN_LAST_SPECIAL;
            if (h->flags & TC_F_HOST)
                return fail(c, TC_E_HOST_DUPLICATE, ls);
            h->flags |= TC_F_HOST;
            if (!valid_authority(v, vn, 0))
                return fail(c, TC_E_HOST_INVALID, vs);
        }
        break;
    case 6:
        if (memcmp(nm, "expect", 6) == 0 && (h->flags & TC_F_HTTP11)) {
            h->seen |= SEEN_LAST_SPECIAL;
            if (!IEQ(v, vn, "100-continue"))
                return fail(c, TC_E_EXPECT, vs);
            h->flags |= TC_F_EXPECT_CONTINUE;
        }
        break;
    case 7:
        if (memcmp(nm, "upgrade", 7) == 0) {
            h->seen |= SEEN_LAST_SPECIAL;
            h->flags |= TC_F_UPGRADE_FIELD;
        }
        break;
    case 10:
        if (memcmp(nm, "connection", 10) == 0) {
            h->seen |= SEEN_LAST_SPECIAL;
            connection_options(h, v, vn);
        }
        break;
    case 12:
        if (memcmp(nm, "content-type", 12) == 0) {
            if (h->seen & SEEN_CONTENT_TYPE)
                return fail(c, TC_E_DUPLICATE_FIELD, ls);
            h->seen |= SEEN_CONTENT_TYPE;
        }
        break;
    case 14:
        if (memcmp(nm, "content-length", 14) == 0) {
            h->seen |= SEEN_LAST_SPECIAL;
            return content_length(c, v, vn, vs);
        }
        break;
    case 17:
        if (memcmp(nm, "transfer-encoding", 17) == 0) {
            h->seen |= SEEN_LAST_SPECIAL;
            return transfer_encoding(c, v, vn, vs);
        }
        break;
    }
    return 0;
}

/* A line starting with SP/HTAB after a field line: obsolete folding. */
static int folded_line(ctx *c, size_t ls, size_t n)
{
    tc_head *h = c->h;
    const char *b = c->buf;
    if (h->nfields == 0)
        return fail(c, TC_E_LEADING_WHITESPACE, ls);
    if (!(c->lim->options & TC_OPT_UNFOLD) || (h->seen & SEEN_LAST_SPECIAL))
        return fail(c, TC_E_OBS_FOLD, ls);
    size_t s = ls, e = ls + n;
    while (s < e && OWS(b[s]))
        s++;
    while (e > s && OWS(b[e - 1]))
        e--;
    for (size_t i = s; i < e; i++)
        if (!IS(b[i], C_VALUE))
            return fail(c, b[i] == '\r' ? TC_E_BARE_CR : TC_E_FIELD_VALUE, i);
    if (e == s)
        return 0;
    /* Append to the last value: its length is at last_field + 1. */
    uint32_t vlen = get_u32(c->out + h->last_field + 1);
    size_t sep = vlen > 0;
    if (!room(c, sep + (e - s)))
        return fail(c, TC_E_HEAD_TOO_LARGE, ls);
    if (sep)
        put_byte(c, ' ');
    memcpy(c->out + h->out_len, b + s, e - s);
    h->out_len += (uint32_t)(e - s);
    put_u32(c->out + h->last_field + 1, (uint32_t)(vlen + sep + (e - s)));
    return 0;
}

/* All field lines are in: decide framing and persistence. */
static int finish_head(ctx *c, size_t at)
{
    tc_head *h = c->h;
    uint32_t f = h->flags;
    if ((f & TC_F_HTTP11) && !(f & TC_F_HOST) && !(c->lim->options & TC_OPT_HOST_OPTIONAL))
        return fail(c, TC_E_HOST_MISSING, at);
    /* A CONNECT request has no content (RFC 9110 section 9.3.6): framing on one is a smuggling
     * attempt or a broken client. */
    if ((h->seen & SEEN_METHOD_CONNECT) && (h->cl_count || (f & TC_F_TE_FIELD)))
        return fail(c, TC_E_CONNECT_BODY, at);
    if (f & TC_F_TE_FIELD) {
        if (!(f & TC_F_HTTP11))
            return fail(c, TC_E_TE_HTTP10, at);
        if (h->cl_count)
            return fail(c, TC_E_CL_AND_TE, at);
        if (h->te_state & TE_CHUNKED_TWICE)
            return fail(c, TC_E_TE_CHUNKED_TWICE, at);
        if (!(h->te_state & TE_CHUNKED_LAST))
            return fail(c, TC_E_TE_NOT_CHUNKED, at);
        if (h->te_state & TE_UNKNOWN)
            return fail(c, TC_E_TE_UNKNOWN, at);
        f |= TC_F_CHUNKED;
    } else if (h->cl_count) {
        if (c->lim->max_body_size && h->content_length > c->lim->max_body_size)
            return fail(c, TC_E_BODY_TOO_LARGE, at);
        f |= TC_F_LENGTH;
    }
    if (!(f & TC_F_CONN_CLOSE) && ((f & TC_F_HTTP11) || (f & TC_F_CONN_KEEP_ALIVE)))
        f |= TC_F_KEEP_ALIVE;
    if ((f & TC_F_UPGRADE_FIELD) && (h->seen & SEEN_CONN_UPGRADE))
        f |= TC_F_UPGRADE;
    h->flags = f;
    if (!room(c, 5 + 5 + 2 * 5))
        return fail(c, TC_E_HEAD_TOO_LARGE, at);
    close_list(c);
    emit_int(c, f);
    emit_int(c, h->content_length);
    return 0;
}

size_t tc_head_out_size(const tc_limits *limits)
{
    /* A field line of k bytes (with its colon and CRLF) becomes at most k + 9 bytes. */
    return (size_t)limits->max_head_size + 9 * (size_t)limits->max_fields + 80;
}

static void begin(ctx *c, size_t start, uint32_t first_stage)
{
    tc_head *h = c->h;
    memset(&h->flags, 0, sizeof *h - offsetof(tc_head, flags));
    h->stage = first_stage;
    h->start = h->pos = h->scan = (uint32_t)start;
    if (first_stage == STAGE_TRAILERS)
        open_list(c);
}

/* The bytes of the line that begins at ls, from buf[from] to buf[end] (end: the line's LF or the end
 * of the input), in the order a byte-at-a-time parser meets them: the first byte that does not fit a
 * size limit, is invalid anywhere in a head (a CTL, DEL), or is a CR not followed by LF. Fails at the
 * first and returns -1; returns 0 when there is none. The incomplete-line scan and the error path of
 * a complete line both report through here, so the same bytes give the same error (code and offset)
 * however they were split; a line that passes its syntax check has none of these bytes, so a valid
 * line is never scanned twice. */
static int line_bytes(ctx *c, uint32_t stage, size_t ls, size_t from, size_t end, size_t len)
{
    const tc_head *h = c->h;
    const tc_limits *lim = c->lim;
    const char *b = c->buf;
    /* the first index that does not fit: the line's LF is not counted against the line limit */
    size_t head_max = (size_t)h->start + lim->max_head_size;
    size_t line_max;
    int line_code, head_code;
    if (stage == STAGE_REQUEST_LINE) {
        /* empty lines before the request line count against its limit */
        line_max = (size_t)h->start + lim->max_request_line + 1;
        line_code = head_code = TC_E_REQUEST_LINE_TOO_LONG;
    } else {
        line_max = ls + lim->max_field_size + 1;
        line_code = TC_E_FIELD_TOO_LARGE;
        head_code = TC_E_HEAD_TOO_LARGE;
    }
    for (size_t i = from; i < end; i++) {
        uint8_t ch = (uint8_t)b[i];
        if (i >= line_max)
            return fail(c, line_code, i);
        if (i >= head_max)
            return fail(c, head_code, i);
        if (IS(ch, C_BAD))
            return fail(c, TC_E_CTL, i);
        if (ch == '\r' && i + 1 < len && b[i + 1] != '\n')
            return fail(c, TC_E_BARE_CR, i);
    }
    return 0;
}

/* A complete line b[ls:e+1] (e: its LF), read in `stage`, failed its checks or broke a limit: fail at
 * its first bad byte if it has one (see line_bytes), else with `code` at `offset`, or (code 0) with
 * the error its check has set. */
static int line_error(ctx *c, uint32_t stage, size_t ls, size_t e, int code, size_t offset)
{
    tc_head *h = c->h;
    uint32_t error = h->error, error_offset = h->error_offset;
    if (line_bytes(c, stage, ls, ls, e, e + 1) < 0)
        return -1;
    if (code)
        return fail(c, code, offset);
    h->error = error;
    h->error_offset = error_offset;
    return -1;
}

static int parse_lines(tc_head *h, const char *buf, size_t len, size_t start, char *out,
                       uint32_t first_stage)
{
    const tc_limits *lim = h->limits;
    ctx c = {h, lim, buf, out, tc_head_out_size(lim)};

    if (!tables_ready)
        build_tables();
    if (len > UINT32_MAX)
        return fail(&c, TC_E_HEAD_TOO_LARGE, start);
    if (h->stage == STAGE_NEW || h->stage == STAGE_DONE) {
        begin(&c, start, first_stage);
    } else if (h->stage != STAGE_REQUEST_LINE) {
        /* A continuation: what earlier calls wrote to out may be gone (out is shared scratch). If
         * the head is complete now (an empty line follows), parse it again from its start in one
         * pass; otherwise go on validating the new lines. Only the new bytes are searched. */
        size_t ls = h->pos;
        const char *lf = h->scan < len ? memchr(buf + h->scan, '\n', len - h->scan) : NULL;
        while (lf) {
            size_t e = (size_t)(lf - buf);
            if (e == ls + 1 && buf[ls] == '\r') {
                begin(&c, h->start, h->stage == STAGE_TRAILERS ? STAGE_TRAILERS : STAGE_REQUEST_LINE);
                break;
            }
            ls = e + 1;
            lf = ls < len ? memchr(buf + ls, '\n', len - ls) : NULL;
        }
    }
    const int trailers = h->stage == STAGE_TRAILERS;

    for (;;) {
        size_t ls = h->pos;
        size_t from = h->scan > ls ? h->scan : ls;
        const char *lf = from < len ? memchr(buf + from, '\n', len - from) : NULL;

        if (!lf) {
            /* An incomplete line: fail fast on bytes that can never appear and on the limits. */
            if (line_bytes(&c, h->stage, ls, from, len, len) < 0)
                return -1;
            /* A CR at the end is looked at again with the byte after it, which must be LF. */
            h->scan = (uint32_t)(len > from && buf[len - 1] == '\r' ? len - 1 : len);
            return 0;
        }

        /* A complete line. Its bad bytes and broken limits come first (line_error), in byte order,
         * then a bare LF, then what its syntax check finds. */
        size_t e = (size_t)(lf - buf);
        size_t n = e > ls ? e - 1 - ls : 0;
        const uint32_t stage = h->stage;
        if (e + 1 - h->start > (size_t)lim->max_head_size)
            return line_error(&c, stage, ls, e, stage == STAGE_REQUEST_LINE
                              ? TC_E_REQUEST_LINE_TOO_LONG : TC_E_HEAD_TOO_LARGE, e);
        if (e == ls || buf[e - 1] != '\r')
            return line_error(&c, stage, ls, e, TC_E_BARE_LF, e);
        if (stage == STAGE_REQUEST_LINE) {
            /* Empty lines before the request line are skipped (RFC 9112 section 2.2), but count
             * against its limit. */
            if (e + 1 - h->start > (size_t)lim->max_request_line + 2)
                return line_error(&c, stage, ls, e, TC_E_REQUEST_LINE_TOO_LONG, e);
            if (n > 0) {
                if (request_line(&c, ls, n) < 0)
                    return line_error(&c, stage, ls, e, 0, 0);
                h->stage = STAGE_FIELDS;
            }
        } else if (n == 0) {
            if (trailers)
                close_list(&c);
            else if (finish_head(&c, e) < 0)
                return -1;
            h->pos = h->scan = (uint32_t)(e + 1);
            h->stage = STAGE_DONE;
            return (int)(e + 1 - h->start);
        } else {
            if (n > lim->max_field_size)
                return line_error(&c, stage, ls, e, TC_E_FIELD_TOO_LARGE, ls);
            if (OWS(buf[ls])) {
                if (folded_line(&c, ls, n) < 0)
                    return line_error(&c, stage, ls, e, 0, 0);
            } else {
                if (h->nfields >= lim->max_fields)
                    return line_error(&c, stage, ls, e, TC_E_TOO_MANY_FIELDS, ls);
                if (field_line(&c, ls, n, trailers) < 0)
                    return line_error(&c, stage, ls, e, 0, 0);
            }
        }
        h->pos = h->scan = (uint32_t)(e + 1);
    }
}

int tc_parse_head(tc_head *head, const char *buf, size_t len, size_t start, char *out)
{
    return parse_lines(head, buf, len, start, out, STAGE_REQUEST_LINE);
}

int tc_parse_trailers(tc_head *head, const char *buf, size_t len, size_t start, char *out)
{
    return parse_lines(head, buf, len, start, out, STAGE_TRAILERS);
}

/* ---------------------------------------------------------------------------------------------- */
/* chunked bodies                                                                                 */

enum {
    CH_SIZE_START = 0, /* first hex digit of a chunk-size */
    CH_SIZE,           /* more hex digits */
    CH_SIZE_WS,        /* BWS after the size: only ";" may follow */
    CH_EXT_PRE_NAME,   /* after ";" (BWS) */
    CH_EXT_NAME,
    CH_EXT_POST_NAME,  /* BWS after a name: "=", ";" or CR */
    CH_EXT_PRE_VALUE,  /* after "=" (BWS) */
    CH_EXT_TOKEN,
    CH_EXT_QUOTED,
    CH_EXT_QUOTED_ESC,
    CH_EXT_POST_VALUE, /* BWS after a value: ";" or CR */
    CH_LINE_LF,        /* CR seen, LF must follow */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_END             /* last chunk read; trailers are the caller's */
};

static int chunk_fail(tc_chunked *st, int code, size_t consumed, size_t out_len)
{
    st->error = (uint32_t)code;
    st->consumed = consumed;
    st->out_len = out_len;
    return TC_CHUNKS_ERROR;
}

void tc_chunked_reset(tc_chunked *st)
{
    memset(&st->state, 0, sizeof *st - offsetof(tc_chunked, state));
}

int tc_decode_chunked(tc_chunked *st, const char *buf, size_t len, size_t start, char *out,
                      size_t out_cap)
{
    const tc_limits *lim = st->limits;
    if (start > len)
        start = len;
    buf += start;
    len -= start;

    size_t i = 0, o = 0;
    uint32_t s = st->state;
    uint8_t ch = 0;

    if (!tables_ready)
        build_tables();
    if (st->error)
        return chunk_fail(st, (int)st->error, 0, 0);
    if (s == CH_END) {
        st->consumed = st->out_len = 0;
        return TC_CHUNKS_TRAILERS;
    }

    while (i < len) {
        if (s == CH_DATA) {
            size_t n = len - i;
            if (n > st->remaining)
                n = (size_t)st->remaining;
            if (n > out_cap - o)
                n = out_cap - o;
            if (n == 0)
                break; /* out is full */
            memcpy(out + o, buf + i, n);
            o += n;
            i += n;
            st->remaining -= n;
            if (st->remaining == 0)
                s = CH_DATA_CR;
            continue;
        }
        ch = (uint8_t)buf[i];
        if (s == CH_DATA_CR) {
            if (ch != '\r')
                goto data_end;
            s = CH_DATA_LF;
            i++;
            continue;
        }
        if (s == CH_DATA_LF) {
            if (ch != '\n')
                goto data_end;
            s = CH_SIZE_START;
            st->size = 0;
            st->line_len = 0;
            i++;
            continue;
        }

        /* A chunk-size line: count it against the limits first (its CRLF is not counted). */
        if (s != CH_LINE_LF && ch != '\r') {
            if (++st->line_len > lim->max_chunk_line) {
                st->state = s;
                return chunk_fail(st, TC_E_CHUNK_EXT_TOO_LONG, i, o);
            }
            /* the ";" or BWS that ends the size is the first extension byte */
            if ((s >= CH_SIZE_WS || (s == CH_SIZE && (ch == ';' || OWS(ch)))) &&
                ++st->ext_total > lim->max_chunk_ext) {
                st->state = s;
                return chunk_fail(st, TC_E_CHUNK_EXT_TOO_LONG, i, o);
            }
        }
        switch (s) {
        case CH_SIZE_START:
        case CH_SIZE:
            if (IS(ch, C_HEX)) {
                unsigned d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
                if (st->size > (UINT64_MAX >> 4))
                    goto size_error;
                st->size = (st->size << 4) | d;
                s = CH_SIZE;
            } else if (s == CH_SIZE_START) {
                goto size_error;
            } else if (ch == ';') {
                s = CH_EXT_PRE_NAME;
            } else if (OWS(ch)) {
                s = CH_SIZE_WS;
            } else if (ch == '\r') {
                s = CH_LINE_LF;
            } else {
                goto size_error;
            }
            break;
        case CH_SIZE_WS:
            if (ch == ';')
                s = CH_EXT_PRE_NAME;
            else if (!OWS(ch))
                goto size_error;
            break;
        case CH_EXT_PRE_NAME:
            if (IS(ch, C_TCHAR))
                s = CH_EXT_NAME;
            else if (!OWS(ch))
                goto ext_error;
            break;
        case CH_EXT_NAME:
        case CH_EXT_POST_NAME:
            if (IS(ch, C_TCHAR) && s == CH_EXT_NAME)
                break;
            if (OWS(ch))
                s = CH_EXT_POST_NAME;
            else if (ch == '=')
                s = CH_EXT_PRE_VALUE;
            else if (ch == ';')
                s = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                s = CH_LINE_LF;
            else
                goto ext_error;
            break;
        case CH_EXT_PRE_VALUE:
            if (IS(ch, C_TCHAR))
                s = CH_EXT_TOKEN;
            else if (ch == '"')
                s = CH_EXT_QUOTED;
            else if (!OWS(ch))
                goto ext_error;
            break;
        case CH_EXT_TOKEN:
        case CH_EXT_POST_VALUE:
            if (IS(ch, C_TCHAR) && s == CH_EXT_TOKEN)
                break;
            if (OWS(ch))
                s = CH_EXT_POST_VALUE;
            else if (ch == ';')
                s = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                s = CH_LINE_LF;
            else
                goto ext_error;
            break;
        case CH_EXT_QUOTED:
            if (ch == '"')
                s = CH_EXT_POST_VALUE;
            else if (ch == '\\')
                s = CH_EXT_QUOTED_ESC;
            else if (!IS(ch, C_VALUE))
                goto ext_error;
            break;
        case CH_EXT_QUOTED_ESC:
            if (!IS(ch, C_VALUE))
                goto ext_error;
            s = CH_EXT_QUOTED;
            break;
        case CH_LINE_LF:
            if (ch != '\n') {
                st->state = s;
                return chunk_fail(st, TC_E_BARE_CR, i, o);
            }
            if (st->size == 0) {
                st->state = CH_END;
                st->consumed = i + 1;
                st->out_len = o;
                return TC_CHUNKS_TRAILERS;
            }
            if (lim->max_body_size && st->size > lim->max_body_size - st->total) {
                st->state = s;
                return chunk_fail(st, TC_E_BODY_TOO_LARGE, i, o);
            }
            st->total += st->size;
            st->remaining = st->size;
            s = CH_DATA;
            break;
        }
        i++;
    }
    st->state = s;
    st->consumed = i;
    st->out_len = o;
    return TC_CHUNKS_MORE;

size_error:
    st->state = s;
    return chunk_fail(st, TC_E_CHUNK_SIZE, i, o);
ext_error:
    /* A CR here ends the line too early (`5;\r\n`) or stands inside a quoted string: either way the
     * extension is malformed, whatever byte follows (a bare CR after a complete extension is caught
     * in CH_LINE_LF). */
    st->state = s;
    return chunk_fail(st, TC_E_CHUNK_EXT, i, o);
data_end:
    st->state = s;
    return chunk_fail(st, TC_E_CHUNK_DATA_END, i, o);
}
