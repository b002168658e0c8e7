/* tricorn_ws.c -- WebSocket frame codec (RFC 6455) for tricorn-core.
 *
 * Theory of operation
 *   tc_ws_parse walks buf from start, frame by frame. For each frame it needs the header (2..14
 *   bytes): once complete, every header rule is checked (reserved bits, opcodes, masking, control
 *   frame size and fragmentation, continuation order, the message size limit against the 64-bit
 *   length) before the payload has arrived, so a client announcing 2^63 bytes fails at once and
 *   nothing is buffered for it. A frame whose payload is complete is unmasked in place, validated
 *   (UTF-8 of text, incrementally across fragments; close code and reason) and recorded as
 *   (opcode, flags, offset, length) in the caller's array: no callbacks, no allocation, no copies
 *   beyond the in-place XOR. An incomplete frame is left untouched, so any split of the input gives
 *   the same frames and errors; each call re-reads at most one header of an incomplete frame.
 *   tc_ws_parse_marshal runs the same loop (ws_parse) over a read-only buffer: each payload is
 *   unmasked while it is copied (one pass) into Python marshal data -- a str or bytes per message
 *   in one frame, a tuple per other frame -- that one marshal.loads turns into objects.
 */

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "tricorn_http.h"

/* UTF-8 incremental state: bits 0-7 continuation bytes still needed, 8-15 lowest allowed next byte,
 * 16-23 highest allowed next byte. 0 = at a character boundary. UTF8_BAD marks an invalid sequence. */
#define UTF8_BAD 0xFFFFFFFFu

static uint32_t utf8_step(uint32_t st, const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (st == UTF8_BAD)
        return st;
    while (i < n) {
        unsigned c = p[i];
        if (st == 0) {
            /* fast path: ASCII runs, 8 bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i >= n)
                break;
            c = p[i++];
            if (c < 0x80)
                continue;
            if (c >= 0xC2 && c <= 0xDF)
                st = 1 | (0x80u << 8) | (0xBFu << 16);
            else if (c == 0xE0)
                st = 2 | (0xA0u << 8) | (0xBFu << 16);
            else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
                st = 2 | (0x80u << 8) | (0xBFu << 16);
            else if (c == 0xED)
                st = 2 | (0x80u << 8) | (0x9Fu << 16);
            else if (c == 0xF0)
                st = 3 | (0x90u << 8) | (0xBFu << 16);
            else if (c >= 0xF1 && c <= 0xF3)
                st = 3 | (0x80u << 8) | (0xBFu << 16);
            else if (c == 0xF4)
                st = 3 | (0x80u << 8) | (0x8Fu << 16);
            else
                return UTF8_BAD;
        } else {
            unsigned lo = (st >> 8) & 0xFF, hi = (st >> 16) & 0xFF, need = st & 0xFF;
            i++;
            if (c < lo || c > hi)
                return UTF8_BAD;
            need--;
            st = need ? (need | (0x80u << 8) | (0xBFu << 16)) : 0;
        }
    }
    return st;
}

int tc_ws_utf8_valid(const char *buf, size_t len)
{
    return utf8_step(0, (const unsigned char *)buf, len) == 0;
}

void tc_ws_reset(tc_ws *ws)
{
    ws->message = 0;
    ws->compressed = 0;
    ws->utf8 = 0;
    ws->message_len = 0;
    ws->error = 0;
    ws->nframes = 0;
    ws->consumed = 0;
}

void tc_ws_mask(char *buf, size_t len, uint32_t mask_key, uint32_t phase)
{
    unsigned char key[4];
    unsigned char *p = (unsigned char *)buf;
    size_t i = 0;
    key[0] = (unsigned char)(mask_key >> 24);
    key[1] = (unsigned char)(mask_key >> 16);
    key[2] = (unsigned char)(mask_key >> 8);
    key[3] = (unsigned char)mask_key;
    phase &= 3;
    if (len >= 16) {
        /* a 64-bit word of the key, rotated to the phase, for the bulk of the payload */
        unsigned char k8[8];
        uint64_t kw;
        int j;
        for (j = 0; j < 8; j++)
            k8[j] = key[(phase + j) & 3];
        memcpy(&kw, k8, 8);
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= kw;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < len; i++)
        p[i] ^= key[(phase + i) & 3];
}

int tc_ws_header(char *out, uint32_t opcode, uint32_t fin, uint32_t rsv1, uint64_t length,
                 uint32_t mask_key)
{
    unsigned char *o = (unsigned char *)out;
    int n;
    unsigned char mask_bit = mask_key ? 0x80 : 0;
    o[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (length < 126) {
        o[1] = (unsigned char)(mask_bit | length);
        n = 2;
    } else if (length <= 0xFFFF) {
        o[1] = mask_bit | 126;
        o[2] = (unsigned char)(length >> 8);
        o[3] = (unsigned char)length;
        n = 4;
    } else {
        int j;
        o[1] = mask_bit | 127;
        for (j = 0; j < 8; j++)
            o[2 + j] = (unsigned char)(length >> (56 - 8 * j));
        n = 10;
    }
    if (mask_key) {
        o[n] = (unsigned char)(mask_key >> 24);
        o[n + 1] = (unsigned char)(mask_key >> 16);
        o[n + 2] = (unsigned char)(mask_key >> 8);
        o[n + 3] = (unsigned char)mask_key;
        n += 4;
    }
    return n;
}

static int close_code_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1011)
        return 1;
    return code >= 3000 && code <= 4999;
}

/* XOR-copy src[0:len] into dst with the mask key (phase 0): tc_ws_parse_marshal's single pass. */
static void mask_copy(unsigned char *restrict dst, const unsigned char *restrict src, size_t len,
                      uint32_t mask_key)
{
    unsigned char key[4];
    size_t i = 0;
    key[0] = (unsigned char)(mask_key >> 24);
    key[1] = (unsigned char)(mask_key >> 16);
    key[2] = (unsigned char)(mask_key >> 8);
    key[3] = (unsigned char)mask_key;
    if (len >= 8) {
        unsigned char k8[8];
        uint64_t kw;
        int j;
        for (j = 0; j < 8; j++)
            k8[j] = key[j & 3];
        memcpy(&kw, k8, 8);
        /* 32 bytes a step (the buffers do not overlap: the compiler may use vector registers) */
        for (; i + 32 <= len; i += 32) {
            uint64_t w[4];
            memcpy(w, src + i, 32);
            w[0] ^= kw;
            w[1] ^= kw;
            w[2] ^= kw;
            w[3] ^= kw;
            memcpy(dst + i, w, 32);
        }
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= kw;
            memcpy(dst + i, &w, 8);
        }
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ key[i & 3];
}

static void put_le32(unsigned char *o, uint32_t v)
{
    o[0] = (unsigned char)v;
    o[1] = (unsigned char)(v >> 8);
    o[2] = (unsigned char)(v >> 16);
    o[3] = (unsigned char)(v >> 24);
}

void tc_ws_unmask_copy(char *dst, const char *src, size_t len, uint32_t mask_key)
{
    if (mask_key)
        mask_copy((unsigned char *)dst, (const unsigned char *)src, len, mask_key);
    else if (len)
        memcpy(dst, src, len);
}

/* marshal output of tc_ws_parse_marshal: '[' count, then the items */
typedef struct {
    unsigned char *out;
    size_t cap;
    size_t at;
    uint32_t direct; /* (offset, length, mask key) items written */
} mout;

#define MARSHAL_MAX_PAYLOAD (0x7FFFFFFFu - 64u)
#define TUPLE_OVERHEAD 27 /* ')' 5, 'i' op, 'i' fin, 'i' rsv1, 's' len ... , 'i' close code */
#define DIRECT_ITEM 17    /* ')' 3, 'i' offset, 'i' length, 'i' mask key */

/* The frame loop of tc_ws_parse (m == NULL: unmask in place, record frames) and
 * tc_ws_parse_marshal (m != NULL: unmask into m as marshal items; buf is not written). */
static int ws_parse(tc_ws *ws, char *buf, size_t len, size_t start, tc_ws_frame *frames,
                    uint32_t max_frames, mout *m)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = start;
    uint32_t n = 0;

    ws->nframes = 0;
    ws->consumed = 0;
    ws->need = 0;
    ws->pending = 0;
    if (ws->error)
        return -1;
    while (n < max_frames) {
        size_t avail = len - pos, hlen = 2;
        unsigned b0, b1, opcode, fin, rsv1, masked;
        uint64_t plen;
        uint32_t key = 0;
        if (avail < 2)
            break;
        b0 = p[pos];
        b1 = p[pos + 1];
        fin = b0 >> 7;
        rsv1 = (b0 >> 6) & 1;
        opcode = b0 & 0x0F;
        masked = b1 >> 7;
        plen = b1 & 0x7F;
        /* header rules that the first two bytes decide */
        if ((b0 & 0x30) || (rsv1 && !(ws->options & TC_WS_RSV1_ALLOWED)))
            goto protocol_error;
        if ((opcode >= 3 && opcode <= 7) || opcode > 10)
            goto protocol_error;
        if ((ws->options & TC_WS_MASK_REQUIRED) && !masked)
            goto protocol_error;
        if (opcode >= 8) {
            if (!fin || plen > 125 || rsv1)
                goto protocol_error;
        } else if (opcode == 0) {
            if (!ws->message || rsv1)
                goto protocol_error;
        } else if (ws->message) {
            goto protocol_error; /* a new data frame inside a fragmented message */
        }
        if (plen == 126)
            hlen = 4;
        else if (plen == 127)
            hlen = 10;
        if (masked)
            hlen += 4;
        if (avail < hlen)
            break;
        if (plen == 126) {
            plen = ((uint64_t)p[pos + 2] << 8) | p[pos + 3];
            if (plen < 126)
                goto protocol_error; /* not the minimal encoding */
        } else if (plen == 127) {
            int j;
            plen = 0;
            for (j = 0; j < 8; j++)
                plen = (plen << 8) | p[pos + 2 + j];
            if (plen >> 63 || plen <= 0xFFFF)
                goto protocol_error;
        }
        if (opcode < 8 && ws->max_size) {
            uint64_t so_far = opcode == 0 ? ws->message_len : 0;
            if (plen > ws->max_size || so_far + plen > ws->max_size) {
                ws->error = 1009;
                break;
            }
        }
        if (m && plen > MARSHAL_MAX_PAYLOAD) {
            ws->error = 1009;
            break;
        }
        if (avail - hlen < plen) {
            ws->pending = hlen + plen; /* the payload is incomplete: wait (within the limit) */
            break;
        }
        if (masked)
            key = ((uint32_t)p[pos + hlen - 4] << 24) | ((uint32_t)p[pos + hlen - 3] << 16)
                  | ((uint32_t)p[pos + hlen - 2] << 8) | p[pos + hlen - 1];
        {
            size_t off = pos + hlen;
            const unsigned char *payload = p + off; /* unmasked payload, once unmasked */
            unsigned close_code = 0;
            /* a message in one frame: one str/bytes item (marshal output) */
            int simple = (opcode == 1 || opcode == 2) && fin && !rsv1;
            /* a large binary message in one frame: where it is, for the caller to copy */
            int direct = m && simple && opcode == 2 && ws->direct_min && plen >= ws->direct_min;
            unsigned char *item = NULL;
            if (m) {
                size_t need = direct ? DIRECT_ITEM : (simple ? 5 : TUPLE_OVERHEAD) + (size_t)plen;
                unsigned char *dst;
                if (m->at + need > m->cap) {
                    ws->need = 5 + need; /* the list header + this item */
                    break;
                }
                item = m->out + m->at;
                if (!direct) {
                    dst = item + (simple ? 5 : 22);
                    if (masked && plen)
                        mask_copy(dst, p + off, (size_t)plen, key);
                    else if (plen)
                        memcpy(dst, p + off, (size_t)plen);
                    payload = dst;
                }
            } else if (masked && plen) {
                tc_ws_mask(buf + off, (size_t)plen, key, 0);
            }
            if (opcode >= 8) {
                if (opcode == 8) {
                    if (plen == 1)
                        goto protocol_error;
                    if (plen == 0) {
                        close_code = 1005;
                    } else {
                        unsigned code = ((unsigned)payload[0] << 8) | payload[1];
                        if (!close_code_valid(code))
                            goto protocol_error;
                        if (utf8_step(0, payload + 2, (size_t)plen - 2) != 0) {
                            ws->error = 1007;
                            break;
                        }
                        close_code = code;
                    }
                }
            } else {
                uint32_t message = ws->message, compressed = ws->compressed, utf8 = ws->utf8;
                uint64_t message_len = ws->message_len;
                if (opcode != 0) {
                    message = opcode;
                    compressed = rsv1;
                    utf8 = 0;
                    message_len = 0;
                }
                message_len += plen;
                if (message == 1 && !compressed) {
                    utf8 = utf8_step(utf8, payload, (size_t)plen);
                    if (utf8 == UTF8_BAD || (fin && utf8 != 0)) {
                        ws->error = 1007;
                        break;
                    }
                }
                if (fin) {
                    message = 0;
                    compressed = 0;
                    message_len = 0;
                }
                ws->message = message;
                ws->compressed = compressed;
                ws->utf8 = utf8;
                ws->message_len = message_len;
            }
            if (m) {
                if (direct) {
                    item[0] = ')';
                    item[1] = 3;
                    item[2] = 'i';
                    put_le32(item + 3, (uint32_t)off);
                    item[7] = 'i';
                    put_le32(item + 8, (uint32_t)plen);
                    item[12] = 'i';
                    put_le32(item + 13, key);
                    m->at += DIRECT_ITEM;
                    m->direct++;
                } else if (simple) {
                    item[0] = opcode == 1 ? 'u' : 's';
                    put_le32(item + 1, (uint32_t)plen);
                    m->at += 5 + (size_t)plen;
                } else {
                    unsigned char *o = item;
                    o[0] = ')';
                    o[1] = 5;
                    o[2] = 'i';
                    put_le32(o + 3, opcode);
                    o[7] = 'i';
                    put_le32(o + 8, fin);
                    o[12] = 'i';
                    put_le32(o + 13, rsv1);
                    o[17] = 's';
                    put_le32(o + 18, (uint32_t)plen);
                    o += 22 + (size_t)plen;
                    o[0] = 'i';
                    put_le32(o + 1, close_code);
                    m->at += TUPLE_OVERHEAD + (size_t)plen;
                }
            } else {
                tc_ws_frame *f = &frames[n];
                f->opcode = opcode;
                f->fin = fin;
                f->rsv1 = rsv1;
                f->close_code = close_code;
                f->offset = off;
                f->length = plen;
            }
            pos = off + (size_t)plen;
            n++;
        }
    }
    ws->nframes = n;
    ws->consumed = pos - start;
    if (ws->error && n == 0)
        return -1;
    return (int)n;

protocol_error:
    ws->error = 1002;
    ws->nframes = n;
    ws->consumed = pos - start;
    return n ? (int)n : -1;
}

int tc_ws_parse(tc_ws *ws, char *buf, size_t len, size_t start, tc_ws_frame *frames,
                uint32_t max_frames)
{
    return ws_parse(ws, buf, len, start, frames, max_frames, NULL);
}

int tc_ws_parse_marshal(tc_ws *ws, const char *buf, size_t len, size_t start, char *out,
                        size_t out_cap)
{
    mout m;
    int n;
    ws->out_len = 0;
    if (out_cap < 5) {
        ws->nframes = 0;
        ws->consumed = 0;
        ws->need = 5;
        return ws->error ? -1 : 0;
    }
    m.out = (unsigned char *)out;
    m.cap = out_cap;
    m.at = 5;
    m.direct = 0;
    /* buf is only read when m is given */
    n = ws_parse(ws, (char *)(uintptr_t)buf, len, start, NULL, 0xFFFFFFFFu, &m);
    m.out[0] = '[';
    put_le32(m.out + 1, n > 0 ? (uint32_t)n : 0);
    ws->out_len = m.at;
    if (m.direct)
        n |= TC_WS_DIRECT_ITEMS;
    if (n >= 0 && !ws->error && !ws->need && ws->consumed == len - start)
        return n | TC_WS_ALL_PARSED;
    return n;
}
