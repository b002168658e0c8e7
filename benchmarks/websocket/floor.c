/* The "speed of light" WebSocket echo server of benchmarks/websocket/run.py (--floor).
 *
 *     gcc -O2 -Wall -Wextra -o floor floor.c && ./floor --host 127.0.0.1 --port 8000
 *
 * One thread, libc only, level-triggered epoll: the fewest system calls an echo server can make.
 * Per connection: one read(), then every complete frame in it is unmasked in place (8 bytes at a
 * time) and its unmasked server header is written in place just before its payload (the server
 * header is always at least 4 bytes shorter than the masked client header, so it fits), and all
 * the echoes of that read leave in ONE writev() whose iovecs point into the read buffer: no copy.
 * Only what the kernel does not take is copied (to a per-connection output buffer); the
 * connection then stops reading until EPOLLOUT drained it (backpressure).
 *
 * HTTP: a request head with a Sec-WebSocket-Key header (any case) is answered 101 with the
 * Sec-WebSocket-Accept of RFC 6455 (SHA-1 and base64 below); any other request gets
 * "200 websocket echo" and the connection is closed (the readiness probe of benchmarks/common.py).
 * WebSocket: opcodes 0/1/2 are echoed with the same FIN/opcode bits, a ping is answered with a
 * pong, a pong is ignored, a close is echoed and the connection closed; an unmasked frame, an
 * unknown opcode or a frame over 16 MiB (the read buffer's limit) closes the connection. No extensions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HEAD_MAX (16 * 1024)         /* largest HTTP request head */
#define BUF_INIT (256 * 1024)        /* initial read buffer (a 64 KiB message frame fits) */
#define BUF_MAX (16 * 1024 * 1024)   /* the read buffer never grows further: a bigger frame closes */
#define IOV_BATCH 1024               /* IOV_MAX on Linux */
#define MAX_EVENTS 256

enum { ST_HTTP, ST_WS };
enum { GO_ON = 0, BLOCKED = 1, CLOSE = -1 };

struct conn {
    int fd;
    int state;
    int want_out;      /* registered for EPOLLOUT (reading paused) */
    int close_after;   /* close once the output buffer drained */
    unsigned char *buf; /* read buffer: unprocessed bytes in [0, len) */
    size_t len, cap;
    unsigned char *out; /* what writev did not take: [off, olen) */
    size_t off, olen, ocap;
};

static int epfd = -1;
static struct conn **conns; /* indexed by fd */
static size_t nconns;

/* ------------------------------------------------------------------------------- SHA-1, base64 */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e, f, k, t;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8
               | p[4 * i + 3];
    for (; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (i = 0; i < 80; i++) {
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *data, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char block[64];
    uint64_t bits = (uint64_t)n * 8;
    size_t i, rest;
    for (i = 0; i + 64 <= n; i += 64)
        sha1_block(h, data + i);
    rest = n - i;
    memset(block, 0, sizeof block);
    memcpy(block, data + i, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, sizeof block);
    }
    for (i = 0; i < 8; i++)
        block[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, block);
    for (i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static size_t base64(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63], out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63], out[o++] = '=', out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63], out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* ---------------------------------------------------------------------------------- connections */

static void set_events(struct conn *c, int out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.fd = c->fd};
    c->want_out = out;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->buf);
    free(c->out);
    free(c);
}

/* Append bytes writev did not take to the output buffer. */
static int out_append(struct conn *c, const void *p, size_t n)
{
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 4096;
        unsigned char *q;
        while (cap < c->olen + n)
            cap *= 2;
        q = realloc(c->out, cap);
        if (!q)
            return -1;
        c->out = q, c->ocap = cap;
    }
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    return 0;
}

/* One writev of these iovecs; the rest (if any) is copied to the output buffer and the connection
 * waits for EPOLLOUT. */
static int send_iov(struct conn *c, struct iovec *iov, int niov, size_t total)
{
    ssize_t w = writev(c->fd, iov, niov);
    size_t done;
    int i;
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return CLOSE;
        w = 0;
    }
    if ((size_t)w == total)
        return GO_ON;
    done = (size_t)w;
    for (i = 0; i < niov; i++) {
        if (done >= iov[i].iov_len) {
            done -= iov[i].iov_len;
            continue;
        }
        if (out_append(c, (unsigned char *)iov[i].iov_base + done, iov[i].iov_len - done) < 0)
            return CLOSE;
        done = 0;
    }
    set_events(c, 1);
    return BLOCKED;
}

static int send_bytes(struct conn *c, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return send_iov(c, &iov, 1, n);
}

/* XOR the payload with the 4-byte masking key, 8 bytes at a time. */
static void unmask(unsigned char *p, uint64_t n, const unsigned char key[4])
{
    uint32_t k32;
    uint64_t k64, v;
    uint64_t i = 0;
    memcpy(&k32, key, 4);
    k64 = (uint64_t)k32 << 32 | k32;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, p + i, 8);
        v ^= k64;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* Grow the read buffer to hold `need` bytes. */
static int reserve(struct conn *c, size_t need)
{
    size_t cap = c->cap;
    unsigned char *q;
    if (need <= cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > BUF_MAX)
        cap = BUF_MAX;
    q = realloc(c->buf, cap);
    if (!q)
        return -1;
    c->buf = q, c->cap = cap;
    return 0;
}

/* Echo every complete frame in the read buffer: one writev per IOV_BATCH frames (per read, in
 * practice); compact the incomplete tail to the front. */
static int ws_process(struct conn *c)
{
    for (;;) {
        struct iovec iov[IOV_BATCH];
        int niov = 0, closing = 0, full = 0, rc = GO_ON;
        size_t p = 0, total = 0, need = 0;
        while (c->len - p >= 2) {
            unsigned char *f = c->buf + p, *pl, *h;
            size_t avail = c->len - p, hl = 6, sh;
            uint64_t n = f[1] & 0x7f;
            unsigned b0 = f[0], op = b0 & 0x0f, out0;
            if (niov == IOV_BATCH) {
                full = 1;
                break;
            }
            if (!(f[1] & 0x80))
                return CLOSE; /* client frames must be masked */
            if (n == 126) {
                if (avail < 4)
                    break;
                n = (uint64_t)f[2] << 8 | f[3];
                hl = 8;
            } else if (n == 127) {
                int i;
                if (avail < 10)
                    break;
                for (n = 0, i = 2; i < 10; i++)
                    n = n << 8 | f[i];
                hl = 14;
            }
            if (n > BUF_MAX - hl)
                return CLOSE;
            if (avail < hl || avail - hl < n) {
                need = hl + (size_t)n;
                break;
            }
            if (op >= 8 && (!(b0 & 0x80) || n > 125))
                return CLOSE; /* control frames: FIN, at most 125 bytes */
            switch (op) {
            case 0: case 1: case 2:
                out0 = b0 & 0x8f; /* same FIN and opcode (continuations echoed as they came) */
                break;
            case 8:
                out0 = 0x88;
                closing = 1;
                break;
            case 9:
                out0 = 0x8a;
                break;
            case 10:
                p += hl + (size_t)n;
                continue;
            default:
                return CLOSE;
            }
            pl = f + hl;
            unmask(pl, n, pl - 4);
            /* the unmasked header, in place just before the payload (over the masking key) */
            sh = n < 126 ? 2 : n < 65536 ? 4 : 10;
            h = pl - sh;
            h[0] = (unsigned char)out0;
            if (sh == 2) {
                h[1] = (unsigned char)n;
            } else if (sh == 4) {
                h[1] = 126, h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n;
            } else {
                int i;
                h[1] = 127;
                for (i = 0; i < 8; i++)
                    h[2 + i] = (unsigned char)(n >> (56 - 8 * i));
            }
            iov[niov].iov_base = h;
            iov[niov].iov_len = sh + (size_t)n;
            total += sh + (size_t)n;
            niov++;
            p += hl + (size_t)n;
            if (closing)
                break;
        }
        if (niov)
            rc = send_iov(c, iov, niov, total);
        if (rc == CLOSE)
            return CLOSE;
        if (p) {
            memmove(c->buf, c->buf + p, c->len - p);
            c->len -= p;
        }
        if (closing) {
            if (rc == GO_ON)
                return CLOSE;
            c->close_after = 1;
            return BLOCKED;
        }
        if (need && reserve(c, need) < 0)
            return CLOSE;
        if (rc == BLOCKED || !full)
            return rc;
    }
}

static const char RESPONSE_200[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
                                   "Connection: close\r\n\r\nwebsocket echo\n";
static const char RESPONSE_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* A plain answer, then close (once written). */
static int http_answer_close(struct conn *c, const char *text, size_t n)
{
    int rc = send_bytes(c, text, n);
    if (rc != BLOCKED)
        return CLOSE;
    c->close_after = 1;
    return BLOCKED;
}

static int http_process(struct conn *c, size_t searched_from)
{
    unsigned char *end = memmem(c->buf + searched_from, c->len - searched_from, "\r\n\r\n", 4);
    const char *line, *stop, *key = NULL;
    size_t head, keylen = 0;
    if (!end)
        return c->len >= HEAD_MAX ? CLOSE : GO_ON;
    head = (size_t)(end - c->buf) + 4;
    if (head > HEAD_MAX)
        return CLOSE;
    stop = (const char *)c->buf + head - 2;
    line = memmem(c->buf, head, "\r\n", 2);
    while (line && (line += 2) < stop) {
        const char *eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
        const char *colon;
        if (!eol)
            eol = stop;
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && colon - line == 17 && strncasecmp(line, "Sec-WebSocket-Key", 17) == 0) {
            const char *v = colon + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            key = v, keylen = (size_t)(e - v);
        }
        line = eol;
    }
    if (!key)
        return http_answer_close(c, RESPONSE_200, sizeof RESPONSE_200 - 1);
    if (keylen == 0 || keylen > 128)
        return http_answer_close(c, RESPONSE_400, sizeof RESPONSE_400 - 1);
    {
        unsigned char input[128 + sizeof GUID], digest[20];
        char accept[32], resp[160];
        int n, rc;
        memcpy(input, key, keylen);
        memcpy(input + keylen, GUID, sizeof GUID - 1);
        sha1(input, keylen + sizeof GUID - 1, digest);
        base64(digest, 20, accept);
        n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
        memmove(c->buf, c->buf + head, c->len - head); /* frames sent right behind the head */
        c->len -= head;
        c->state = ST_WS;
        rc = send_bytes(c, resp, (size_t)n);
        if (rc != GO_ON)
            return rc;
        return c->len ? ws_process(c) : GO_ON;
    }
}

static void on_readable(struct conn *c)
{
    size_t before = c->len;
    ssize_t r;
    int rc;
    if (c->len == c->cap && reserve(c, c->cap * 2) < 0) { /* not reached: frames are processed */
        conn_close(c);
        return;
    }
    r = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(c);
        return;
    }
    c->len += (size_t)r;
    if (c->state == ST_WS)
        rc = ws_process(c);
    else
        rc = http_process(c, before > 3 ? before - 3 : 0);
    if (rc == CLOSE)
        conn_close(c);
}

static void on_writable(struct conn *c)
{
    ssize_t w = write(c->fd, c->out + c->off, c->olen - c->off);
    int rc = GO_ON;
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_close(c);
        return;
    }
    c->off += (size_t)w;
    if (c->off < c->olen)
        return;
    c->off = c->olen = 0;
    if (c->close_after) {
        conn_close(c);
        return;
    }
    set_events(c, 0);
    if (c->state == ST_WS && c->len >= 2) /* frames left unprocessed while blocked */
        rc = ws_process(c);
    if (rc == CLOSE)
        conn_close(c);
}

static void on_accept(int lfd)
{
    for (;;) {
        int one = 1;
        struct conn *c;
        struct epoll_event ev;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((size_t)fd >= nconns) {
            size_t n = nconns ? nconns : 1024;
            struct conn **q;
            while (n <= (size_t)fd)
                n *= 2;
            q = realloc(conns, n * sizeof *q);
            if (!q) {
                close(fd);
                continue;
            }
            memset(q + nconns, 0, (n - nconns) * sizeof *q);
            conns = q, nconns = n;
        }
        c = calloc(1, sizeof *c);
        if (!c || !(c->buf = malloc(BUF_INIT))) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd, c->cap = BUF_INIT, c->state = ST_HTTP;
        conns[fd] = c;
        ev.events = EPOLLIN, ev.data.fd = fd;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(c);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8000, lfd, one = 1, i;
    struct sockaddr_in addr;
    struct epoll_event ev, events[MAX_EVENTS];
    struct sigaction sa;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --host HOST --port PORT\n", argv[0]);
            return 2;
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad --host/--port (an IPv4 address and a port)\n");
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0) {
        perror("listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 1;
    }
    ev.events = EPOLLIN, ev.data.fd = lfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            struct conn *c;
            if (fd == lfd) {
                on_accept(lfd);
                continue;
            }
            c = (size_t)fd < nconns ? conns[fd] : NULL;
            if (!c)
                continue; /* closed earlier in this batch */
            if (c->want_out) {
                if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    on_writable(c);
            } else if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(c);
            }
        }
    }
}
