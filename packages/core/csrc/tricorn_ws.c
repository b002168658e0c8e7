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

int tc_ws_parse(tc_ws *ws, char *buf, size_t len, size_t start, tc_ws_frame *frames,
                uint32_t max_frames)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = start;
    uint32_t n = 0;

    ws->nframes = 0;
    ws->consumed = 0;
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
        if (avail - hlen < plen)
            break; /* the payload is incomplete: wait (its size is within the limit) */
        if (masked)
            key = ((uint32_t)p[pos + hlen - 4] << 24) | ((uint32_t)p[pos + hlen - 3] << 16)
                  | ((uint32_t)p[pos + hlen - 2] << 8) | p[pos + hlen - 1];
        {
            size_t off = pos + hlen;
            tc_ws_frame *f = &frames[n];
            if (masked && plen)
                tc_ws_mask(buf + off, (size_t)plen, key, 0);
            f->opcode = opcode;
            f->fin = fin;
            f->rsv1 = rsv1;
            f->close_code = 0;
            f->offset = off;
            f->length = plen;
            if (opcode >= 8) {
                if (opcode == 8) {
                    if (plen == 1)
                        goto protocol_error;
                    if (plen == 0) {
                        f->close_code = 1005;
                    } else {
                        unsigned code = ((unsigned)p[off] << 8) | p[off + 1];
                        if (!close_code_valid(code))
                            goto protocol_error;
                        if (utf8_step(0, p + off + 2, (size_t)plen - 2) != 0) {
                            ws->error = 1007;
                            break;
                        }
                        f->close_code = code;
                    }
                }
            } else {
                if (opcode != 0) {
                    ws->message = opcode;
                    ws->compressed = rsv1;
                    ws->utf8 = 0;
                    ws->message_len = 0;
                }
                ws->message_len += plen;
                if (ws->message == 1 && !ws->compressed) {
                    ws->utf8 = utf8_step(ws->utf8, p + off, (size_t)plen);
                    if (ws->utf8 == UTF8_BAD || (fin && ws->utf8 != 0)) {
                        ws->error = 1007;
                        break;
                    }
                }
                if (fin) {
                    ws->message = 0;
                    ws->compressed = 0;
                    ws->message_len = 0;
                }
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
