/* fuzz_http.c -- libFuzzer harness over the C entry points of tricorn-core (csrc/tricorn_http.c).
 *
 * Built and run by run.py beside this file (see docs/fuzzing.md):
 *     clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         fuzz_http.c tricorn_http.c
 *
 * Input layout: CFG_LEN configuration bytes, then the bytes D that are parsed.
 *   cfg[0]  bits 0-2: TC_OPT_* options; bit 3: small limits (cfg[4..7]) instead of the defaults;
 *           bit 4: a small max_body_size; bit 5: a huge max_body_size (near UINT64_MAX)
 *   cfg[1], cfg[2]: the split point of the two-call parse (little-endian u16, modulo the length)
 *   cfg[3]  the out capacity of the piecewise chunked decode (1 + cfg[3] % 64) and the class of
 *           the piece sizes
 *   cfg[4..7]: the small limits (see limits_from)
 *   all cfg bytes also seed the generator of piece sizes.
 * Inputs shorter than CFG_LEN are padded with zero configuration bytes (defaults, no split).
 *
 * Every buffer handed to the parser is exactly as long as the length passed with it (the bytes come
 * from a fresh malloc or end where libFuzzer's input ends), so ASan reports any read past len, and
 * every out buffer is exactly as large as the capacity promised, so it reports any write past it.
 *
 * Invariants checked (abort() on violation, so libFuzzer saves the input as a crash):
 *   heads and trailer sections (tc_parse_head, tc_parse_trailers)
 *     - single shot vs. two calls (split at a fuzzer-chosen point, growing buffer) vs. many calls
 *       (fuzzer-chosen piece sizes): same result class; for a complete head the same length,
 *       flags, nfields, content_length, out_len and out bytes; for an error the same error code
 *       and offset. Between calls the out buffer is poisoned, as out is only scratch space shared
 *       with other heads. A prefix that already fails must belong to an input that fails.
 *     - a complete head ends in CRLF, its out is well-formed marshal data of the documented shape
 *       (walked byte by byte) and fits in tc_head_out_size; names are lower-case tokens, values
 *       carry no surrounding OWS and no CR, LF or other controls but HTAB; flags and
 *       content_length in out equal the struct's; framing flags are consistent with each other
 *       and with the limits.
 *     - an incomplete head (0) never holds more than max_head_size bytes; an error has a known
 *       code, a status hint from the documented set and an offset inside the buffer;
 *       head_too_large is only reported past max_head_size bytes (so out, tc_head_out_size bytes,
 *       never runs out of room).
 *     - pipelining: after a complete head (and its Content-Length or chunked body and trailers)
 *       the same struct parses the next head from the following offset ("forgotten by the next
 *       call").
 *   chunked bodies (tc_decode_chunked)
 *     - one-shot decode vs. a decode fed in fuzzer-chosen pieces with a small out buffer and a
 *       fuzzer-chosen `start` offset: same result, same decoded bytes, same consumed offset, same
 *       error; every call makes progress; MORE with input left means out is full.
 *     - decoded bytes never exceed max_body_size; the chunk-line and extension limits hold; an
 *       error and the end state are sticky; a start beyond len consumes nothing.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tricorn_http.h"

#define CFG_LEN 8
#define MAX_PIECES 64
#define MAX_PIPELINE 4

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_http: invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                              \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* ---------------------------------------------------------------------------------------------- */
/* small utilities                                                                                */

typedef struct {
    uint64_t s;
} rng;

static uint64_t next(rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char *xmalloc(size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

/* A fresh buffer holding exactly src[0:n]. */
static char *dup_exact(const char *src, size_t n)
{
    char *p = xmalloc(n);
    if (n)
        memcpy(p, src, n);
    return p;
}

/* The size of the next piece of a piecewise feed: at least `floor` so that at most MAX_PIECES
 * calls are made. */
static size_t piece(rng *r, unsigned cls, size_t floor)
{
    static const size_t MAXP[4] = {1, 4, 16, 256};
    size_t p = 1 + (size_t)(next(r) % MAXP[cls & 3]);
    return p < floor ? floor : p;
}

static int known_status(int s)
{
    return s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505;
}

static int is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* ---------------------------------------------------------------------------------------------- */
/* limits                                                                                         */

static void limits_from(const uint8_t *cfg, tc_limits *lim)
{
    if (cfg[0] & 8) {
        lim->max_request_line = cfg[4];           /* 0..255 */
        lim->max_fields = cfg[5] & 15;            /* 0..15 */
        lim->max_field_size = cfg[6];             /* 0..255 */
        lim->max_head_size = 4u * cfg[7];         /* 0..1020 */
        lim->max_chunk_line = cfg[4] >> 2;        /* 0..63 */
        lim->max_chunk_ext = 4u * (cfg[5] >> 4);  /* 0..60 */
    } else {
        /* ParserLimits' defaults */
        lim->max_request_line = 4094;
        lim->max_fields = 100;
        lim->max_field_size = 8190;
        lim->max_head_size = 65536;
        lim->max_chunk_line = 4096;
        lim->max_chunk_ext = 65536;
    }
    lim->max_body_size = 0;
    if (cfg[0] & 16)
        lim->max_body_size = 1 + (uint64_t)cfg[7] * 3;
    else if (cfg[0] & 32)
        lim->max_body_size = UINT64_MAX - cfg[7];
    lim->options = cfg[0] & 7;
}

/* ---------------------------------------------------------------------------------------------- */
/* the marshal output of a complete head or trailer section                                       */

typedef struct {
    const uint8_t *o;
    size_t len, pos;
} reader;

static uint8_t rd_byte(reader *r)
{
    CHECK(r->pos + 1 <= r->len);
    return r->o[r->pos++];
}

static uint32_t rd_u32(reader *r)
{
    CHECK(r->pos + 4 <= r->len);
    const uint8_t *u = r->o + r->pos;
    r->pos += 4;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* 's' bytes: returns a pointer to them and their length. */
static const uint8_t *rd_bytes(reader *r, uint32_t *n)
{
    CHECK(rd_byte(r) == 's');
    *n = rd_u32(r);
    CHECK(*n <= r->len - r->pos);
    const uint8_t *p = r->o + r->pos;
    r->pos += *n;
    return p;
}

/* 'i' int32 or 'l' long with 15-bit digits, always non-negative and in canonical form. */
static uint64_t rd_int(reader *r)
{
    uint8_t t = rd_byte(r);
    if (t == 'i') {
        uint32_t v = rd_u32(r);
        CHECK(v < 0x80000000u);
        return v;
    }
    CHECK(t == 'l');
    uint32_t nd = rd_u32(r);
    CHECK(nd >= 1 && nd <= 5); /* 64 bits need at most 5 digits of 15 bits */
    uint64_t v = 0;
    uint32_t d = 0;
    for (uint32_t i = 0; i < nd; i++) {
        d = (uint32_t)rd_byte(r);
        d |= (uint32_t)rd_byte(r) << 8;
        CHECK(d < 0x8000);
        CHECK(i < 4 || d < 16); /* the fifth digit holds bits 60..63 */
        v |= (uint64_t)d << (15 * i);
    }
    CHECK(d != 0);              /* no leading zero digit */
    CHECK(v >= 0x80000000u);    /* else it would be an 'i' */
    return v;
}

static void check_fields(reader *r, uint32_t nfields)
{
    CHECK(rd_byte(r) == '[');
    CHECK(rd_u32(r) == nfields);
    for (uint32_t k = 0; k < nfields; k++) {
        uint32_t nn, vn;
        CHECK(rd_byte(r) == ')');
        CHECK(rd_byte(r) == 2);
        const uint8_t *nm = rd_bytes(r, &nn);
        CHECK(nn > 0);
        for (uint32_t i = 0; i < nn; i++)
            CHECK(is_tchar(nm[i]) && !(nm[i] >= 'A' && nm[i] <= 'Z'));
        const uint8_t *v = rd_bytes(r, &vn);
        if (vn) {
            CHECK(v[0] != ' ' && v[0] != '\t');
            CHECK(v[vn - 1] != ' ' && v[vn - 1] != '\t');
        }
        for (uint32_t i = 0; i < vn; i++)
            CHECK((v[i] >= 0x20 && v[i] != 0x7f) || v[i] == '\t');
    }
}

static void check_out(const char *out, size_t out_len, const tc_head *h, const tc_limits *lim,
                      int trailers)
{
    reader r = {(const uint8_t *)out, out_len, 0};
    CHECK(out_len <= tc_head_out_size(lim));
    CHECK(h->nfields <= lim->max_fields);
    if (!trailers) {
        uint32_t mn, tn;
        /* (method, target, http_version, [fields...], flags, content_length) */
        CHECK(rd_byte(&r) == ')');
        CHECK(rd_byte(&r) == 6);
        const uint8_t *m = rd_bytes(&r, &mn);
        CHECK(mn > 0);
        for (uint32_t i = 0; i < mn; i++)
            CHECK(is_tchar(m[i]));
        const uint8_t *t = rd_bytes(&r, &tn);
        CHECK(tn > 0);
        for (uint32_t i = 0; i < tn; i++)
            CHECK(t[i] > 0x20 && t[i] != 0x7f);
        /* 'Z' short interned ASCII str: "1.0" or "1.1" */
        CHECK(rd_byte(&r) == 'Z');
        CHECK(rd_byte(&r) == 3);
        CHECK(rd_byte(&r) == '1');
        CHECK(rd_byte(&r) == '.');
        CHECK(rd_byte(&r) == ((h->flags & TC_F_HTTP11) ? '1' : '0'));
        check_fields(&r, h->nfields);
        CHECK(rd_int(&r) == h->flags);
        CHECK(rd_int(&r) == h->content_length);
    } else {
        check_fields(&r, h->nfields);
    }
    CHECK(r.pos == out_len);
}

/* Framing and persistence flags of a complete head agree with each other and with the limits. */
static void check_flags(const tc_head *h, const tc_limits *lim)
{
    uint32_t f = h->flags;
    CHECK(!((f & TC_F_CHUNKED) && (f & TC_F_LENGTH)));
    CHECK(!((f & TC_F_KEEP_ALIVE) && (f & TC_F_CONN_CLOSE)));
    if (f & TC_F_CHUNKED)
        CHECK((f & TC_F_HTTP11) && (f & TC_F_TE_FIELD));
    if (f & TC_F_TE_FIELD)
        CHECK(f & TC_F_CHUNKED);
    if (!(f & TC_F_LENGTH))
        CHECK(h->content_length == 0);
    else if (lim->max_body_size)
        CHECK(h->content_length <= lim->max_body_size);
    if (f & TC_F_UPGRADE)
        CHECK(f & TC_F_UPGRADE_FIELD);
    if ((f & TC_F_HTTP11) && !(lim->options & TC_OPT_HOST_OPTIONAL))
        CHECK(f & TC_F_HOST);
    if (f & TC_F_EXPECT_CONTINUE)
        CHECK(f & TC_F_HTTP11);
    CHECK(!!(f & TC_F_ABSOLUTE_FORM) + !!(f & TC_F_ASTERISK_FORM) + !!(f & TC_F_AUTHORITY_FORM) <=
          1);
    CHECK(f < 32768);
}

/* ---------------------------------------------------------------------------------------------- */
/* heads and trailer sections                                                                     */

typedef int (*parse_fn)(tc_head *, const char *, size_t, size_t, char *);

/* The parts of a result that must not depend on how the input was split. */
typedef struct {
    int r;
    uint32_t flags, nfields, out_len;
    uint64_t content_length;
    uint32_t error, error_offset; /* not compared: see feed_pieces */
} summary;

static summary summarize(int r, const tc_head *h)
{
    summary s = {r, 0, 0, 0, 0, 0, 0};
    if (r < 0) {
        s.error = h->error;
        s.error_offset = h->error_offset;
    } else if (r > 0) {
        s.flags = h->flags;
        s.nfields = h->nfields;
        s.out_len = h->out_len;
        s.content_length = h->content_length;
    }
    return s;
}

static int same_class(int a, int b)
{
    return (a > 0 && b > 0) || (a == 0 && b == 0) || (a < 0 && b < 0);
}

static void check_error(const tc_head *h, size_t len, size_t start, const tc_limits *lim)
{
    CHECK(h->error > 0 && h->error < TC_E__COUNT);
    CHECK(h->error_offset <= len);
    CHECK(known_status(tc_error_status((int)h->error)));
    CHECK(strcmp(tc_error_name((int)h->error), "unknown_error") != 0);
    /* 431 head_too_large only past max_head_size bytes: out (tc_head_out_size) never runs out of
     * room, which the parser would also report as head_too_large */
    if (h->error == TC_E_HEAD_TOO_LARGE)
        CHECK(h->error_offset >= start + lim->max_head_size);
}

/* Feeds D[0:n] to a fresh head struct as a growing buffer whose lengths are the offsets in cuts[]
 * (the last is n), poisoning out between calls; compares the result with the single-shot one. */
static void feed_pieces(parse_fn parse, const char *D, size_t start, const size_t *cuts,
                        int ncuts, const tc_limits *lim, const summary *ref, const char *ref_out)
{
    size_t cap = tc_head_out_size(lim);
    char *out = xmalloc(cap);
    tc_head h;
    memset(&h, 0, sizeof h);
    h.limits = lim;
    int r = 0;
    for (int k = 0; k < ncuts && r == 0; k++) {
        size_t len = cuts[k];
        char *buf = dup_exact(D, len);
        r = parse(&h, buf, len, start, out);
        free(buf);
        if (r < 0) {
            check_error(&h, len, start, lim);
            /* a prefix that fails belongs to an input that fails */
            CHECK(ref->r < 0);
        } else if (r == 0) {
            CHECK(len - start <= lim->max_head_size);
            if (k + 1 < ncuts && h.out_len <= cap)
                memset(out, 0xA5, h.out_len); /* out is scratch: later calls may not rely on it */
        } else {
            CHECK(r == ref->r && h.flags == ref->flags && h.nfields == ref->nfields);
            CHECK(h.out_len == ref->out_len && h.content_length == ref->content_length);
            CHECK(memcmp(out, ref_out, ref->out_len) == 0);
        }
    }
    CHECK(same_class(r, ref->r));
    if (r < 0 && (h.error != ref->error || h.error_offset != ref->error_offset)) {
        fprintf(stderr, "error differs: one shot %s@%u, pieces %s@%u\n",
                tc_error_name((int)ref->error), ref->error_offset, tc_error_name((int)h.error),
                h.error_offset);
        abort();
    }
    free(out);
}

/* Parses the head (or trailer section) at D[start:n] in one call with h (which may hold a finished
 * earlier head), checks the result, then checks that split feeds give the same. Returns the result;
 * h keeps the head's details. */
static int check_head(int trailers, tc_head *h, const char *D, size_t n, size_t start,
                      const tc_limits *lim, const uint8_t *cfg, rng *rg)
{
    parse_fn parse = trailers ? tc_parse_trailers : tc_parse_head;
    size_t cap = tc_head_out_size(lim);
    char *out = xmalloc(cap);

    int r = parse(h, D, n, start, out);
    summary ref = summarize(r, h);
    if (r > 0) {
        CHECK((size_t)r <= n - start);
        CHECK((size_t)r >= 2 && D[start + r - 2] == '\r' && D[start + r - 1] == '\n');
        CHECK(r <= (int)lim->max_head_size);
        CHECK(h->out_len <= cap);
        check_out(out, h->out_len, h, lim, trailers);
        if (!trailers)
            check_flags(h, lim);
    } else if (r == 0) {
        CHECK(n - start <= lim->max_head_size);
    } else {
        CHECK(r == -1);
        check_error(h, n, start, lim);
    }

    size_t rest = n - start;
    size_t cuts[MAX_PIECES + 1];

    /* two calls, split at a fuzzer-chosen point */
    size_t split = (size_t)(cfg[1] | cfg[2] << 8) % (rest + 1);
    cuts[0] = start + split;
    cuts[1] = n;
    feed_pieces(parse, D, start, cuts, split < rest ? 2 : 1, lim, &ref, out);

    /* many calls, fuzzer-chosen piece sizes */
    int ncuts = 0;
    size_t at = start, floor = rest / MAX_PIECES + 1;
    while (at < n && ncuts < MAX_PIECES) {
        size_t p = piece(rg, cfg[3] >> 6, floor);
        at = p < n - at ? at + p : n;
        cuts[ncuts++] = at;
    }
    if (ncuts == 0 || cuts[ncuts - 1] != n)
        cuts[ncuts++] = n;
    feed_pieces(parse, D, start, cuts, ncuts, lim, &ref, out);

    free(out);
    return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* chunked bodies                                                                                 */

static int chunk_error(uint32_t e)
{
    return e == TC_E_CHUNK_SIZE || e == TC_E_CHUNK_EXT || e == TC_E_CHUNK_EXT_TOO_LONG ||
           e == TC_E_CHUNK_DATA_END || e == TC_E_BARE_CR || e == TC_E_BODY_TOO_LARGE;
}

/* The limits hold for every byte accepted; after an error the counters may include the byte that
 * was refused. */
static void check_chunk_state(const tc_chunked *st, const tc_limits *lim, int r)
{
    if (lim->max_body_size)
        CHECK(st->total <= lim->max_body_size);
    CHECK(st->remaining <= st->total);
    if (r != TC_CHUNKS_ERROR) {
        CHECK(st->ext_total <= lim->max_chunk_ext);
        CHECK(st->line_len <= lim->max_chunk_line);
    }
}

/* Decodes D[0:n] in one call and piecewise; returns the one-shot result, *consumed its offset. */
static int check_chunked(const char *D, size_t n, const tc_limits *lim, const uint8_t *cfg,
                         rng *rg, size_t *consumed)
{
    /* one shot, out large enough for any body in n bytes */
    tc_chunked a;
    memset(&a, 0, sizeof a);
    a.limits = lim;
    tc_chunked_reset(&a);
    char *ref = xmalloc(n + 1);
    int ra = tc_decode_chunked(&a, D, n, 0, ref, n + 1);
    size_t ref_len = a.out_len, ref_consumed = a.consumed;
    CHECK(ra == TC_CHUNKS_MORE || ra == TC_CHUNKS_TRAILERS || ra == TC_CHUNKS_ERROR);
    CHECK(ref_consumed <= n && ref_len <= ref_consumed);
    check_chunk_state(&a, lim, ra);
    if (ra == TC_CHUNKS_MORE) {
        CHECK(ref_consumed == n);
        CHECK(a.total == ref_len + a.remaining);
    } else if (ra == TC_CHUNKS_TRAILERS) {
        CHECK(a.total == ref_len && a.remaining == 0);
        CHECK(ref_consumed >= 3); /* at least "0\r\n" */
        /* sticky: the end stays the end */
        CHECK(tc_decode_chunked(&a, D, n, ref_consumed, ref, n + 1) == TC_CHUNKS_TRAILERS);
        CHECK(a.consumed == 0 && a.out_len == 0);
    } else {
        uint32_t e = a.error;
        CHECK(chunk_error(e));
        CHECK(ref_consumed < n); /* the offending byte is in the input */
        /* sticky: an error stays an error */
        CHECK(tc_decode_chunked(&a, D, n, ref_consumed, ref + ref_len, n + 1 - ref_len) ==
              TC_CHUNKS_ERROR);
        CHECK(a.error == e && a.consumed == 0 && a.out_len == 0);
    }

    /* start beyond len: nothing is consumed */
    tc_chunked z;
    memset(&z, 0, sizeof z);
    z.limits = lim;
    tc_chunked_reset(&z);
    CHECK(tc_decode_chunked(&z, D, n, n + 1 + cfg[1], ref, n + 1) == TC_CHUNKS_MORE);
    CHECK(z.consumed == 0 && z.out_len == 0 && z.state == 0);

    /* piecewise: pieces of input arrive one by one; out holds 1..64 bytes; each call sees a
     * window of exactly the unconsumed bytes plus up to 3 consumed ones before `start` */
    tc_chunked b;
    memset(&b, 0, sizeof b);
    b.limits = lim;
    tc_chunked_reset(&b);
    size_t cap = 1 + cfg[3] % 64;
    char *acc = xmalloc(n + 1);
    size_t acc_len = 0, pos = 0, have = 0, floor = n / MAX_PIECES + 1;
    int rb = TC_CHUNKS_MORE;
    for (int calls = 0;; calls++) {
        CHECK(calls < 4 * MAX_PIECES + (int)(n + 1)); /* progress: see below */
        if (pos == have) {
            if (have == n)
                break;
            size_t p = piece(rg, cfg[3] >> 6, floor);
            have = p < n - have ? have + p : n;
        }
        size_t back = (size_t)(next(rg) % 4);
        if (back > pos)
            back = pos;
        size_t len = have - pos + back;
        char *win = dup_exact(D + pos - back, len);
        char *out = xmalloc(cap);
        rb = tc_decode_chunked(&b, win, len, back, out, cap);
        CHECK(b.consumed <= have - pos && b.out_len <= cap && b.out_len <= b.consumed);
        CHECK(acc_len + b.out_len <= n);
        memcpy(acc + acc_len, out, b.out_len);
        acc_len += b.out_len;
        pos += b.consumed;
        free(win);
        free(out);
        check_chunk_state(&b, lim, rb);
        if (rb != TC_CHUNKS_MORE)
            break;
        if (pos < have)
            CHECK(b.out_len == cap); /* MORE with input left: only when out is full */
    }
    CHECK(rb == ra);
    CHECK(pos == ref_consumed);
    CHECK(acc_len == ref_len && memcmp(acc, ref, ref_len) == 0);
    CHECK(b.total == a.total && b.remaining == a.remaining);
    if (ra == TC_CHUNKS_ERROR)
        CHECK(b.error == a.error);

    free(acc);
    free(ref);
    *consumed = ref_consumed;
    return ra;
}

/* ---------------------------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t cfg[CFG_LEN] = {0};
    size_t nc = size < CFG_LEN ? size : CFG_LEN;
    memcpy(cfg, data, nc);
    const char *D = (const char *)data + nc;
    size_t n = size - nc;

    rng rg = {0};
    for (size_t i = 0; i < CFG_LEN; i++)
        rg.s = rg.s << 8 | cfg[i];

    /* error helpers over every code and a few outside the range */
    int code = (int)(int8_t)cfg[2];
    CHECK(tc_error_name(code) != NULL);
    CHECK(known_status(tc_error_status(code)));

    tc_limits lim;
    limits_from(cfg, &lim);
    CHECK(tc_head_out_size(&lim) >= (size_t)lim.max_head_size);

    /* a chunked body and a trailer section starting at the first byte */
    size_t consumed;
    if (check_chunked(D, n, &lim, cfg, &rg, &consumed) == TC_CHUNKS_TRAILERS) {
        tc_head t;
        memset(&t, 0, sizeof t);
        t.limits = &lim;
        check_head(1, &t, D, n, consumed, &lim, cfg, &rg);
    }
    {
        tc_head t;
        memset(&t, 0, sizeof t);
        t.limits = &lim;
        check_head(1, &t, D, n, 0, &lim, cfg, &rg);
    }

    /* requests, pipelined: head, body (Content-Length or chunked plus trailers), next head, ...;
     * the same struct is reused, as a connection does */
    tc_head h;
    memset(&h, 0, sizeof h);
    h.limits = &lim;
    size_t start = 0;
    for (int k = 0; k < MAX_PIPELINE && start <= n; k++) {
        int r = check_head(0, &h, D, n, start, &lim, cfg, &rg);
        if (r <= 0)
            break;
        size_t body = start + (size_t)r;
        if (h.flags & TC_F_CHUNKED) {
            if (check_chunked(D + body, n - body, &lim, cfg, &rg, &consumed) !=
                TC_CHUNKS_TRAILERS)
                break;
            int t = check_head(1, &h, D, n, body + consumed, &lim, cfg, &rg);
            if (t <= 0)
                break;
            start = body + consumed + (size_t)t;
        } else if (h.flags & TC_F_LENGTH) {
            if (h.content_length > n - body)
                break;
            start = body + (size_t)h.content_length;
        } else {
            start = body;
        }
    }
    return 0;
}
