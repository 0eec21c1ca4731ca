/* fake_http.h: the transport the fuzz targets put under the real
 * Prometheus and Kubernetes clients.
 * Provides __wrap_http_client_do (the binaries link with
 * -Wl,--wrap=http_client_do, see CMakeLists.txt), which answers each call
 * with the next "document" of the fuzz input: the input is split at every
 * "\n--\n" separator, documents are served in order, and a call made after
 * the last one fails as a refused connection would. Streaming callers
 * (req->on_data) get the body in chunks whose size depends on the input
 * length, so chunk boundaries fall everywhere across the corpus.
 * Uses: http_client.h's structs, buf.h. Never touches the network.
 * Threads: one fuzz thread only (the state is a file-scope static). */
#ifndef FUZZ_FAKE_HTTP_H
#define FUZZ_FAKE_HTTP_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "buf.h"
#include "http_client.h"

#define FAKE_HTTP_SEP "\n--\n"

struct fake_http {
    const uint8_t *data;
    size_t size;
    size_t pos;         /* start of the next document */
    bool done;          /* every document served */
    size_t chunk;       /* streaming chunk size */
    unsigned calls;     /* http_client_do calls so far */
    char last_url[512]; /* URL of the latest call (for path-aware targets) */
};

static struct fake_http fake_http;

/* memmem without _GNU_SOURCE: first sep[0..m) in p[0..n), or NULL. */
static const uint8_t *
fake_http_find(const uint8_t *p, size_t n, const char *sep, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (memcmp(p + i, sep, m) == 0)
            return p + i;
    return NULL;
}

static void __attribute__((unused))
fake_http_reset(const uint8_t *data, size_t size)
{
    memset(&fake_http, 0, sizeof fake_http);
    fake_http.data = data;
    fake_http.size = size;
    fake_http.chunk = 1 + size % 61;
}

/* The next document of the input, or false once all were served. */
static bool
fake_http_next(const uint8_t **doc, size_t *len)
{
    const uint8_t *start, *end;

    if (fake_http.done)
        return false;
    start = fake_http.data + fake_http.pos;
    end = fake_http_find(start, fake_http.size - fake_http.pos,
                         FAKE_HTTP_SEP, 4);
    if (!end) {
        *doc = start;
        *len = fake_http.size - fake_http.pos;
        fake_http.done = true;
        return true;
    }
    *doc = start;
    *len = (size_t)(end - start);
    fake_http.pos = (size_t)(end - fake_http.data) + 4;
    return true;
}

int __wrap_http_client_do(struct http_client *c, const struct http_req *req,
                          struct http_resp *resp, char *err, size_t errlen);

int
__wrap_http_client_do(struct http_client *c, const struct http_req *req,
                      struct http_resp *resp, char *err, size_t errlen)
{
    const uint8_t *doc;
    size_t len, max = req->max_body ? req->max_body : (size_t)64 << 20;

    (void)c;
    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body, max);
    fake_http.calls++;
    snprintf(fake_http.last_url, sizeof fake_http.last_url, "%s",
             req->url ? req->url : "");
    if (!fake_http_next(&doc, &len)) {
        snprintf(err, errlen, "fuzz: connection refused");
        return -1;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type,
             "application/json");
    if (len > max) {
        snprintf(err, errlen, "response body exceeds %zu bytes", max);
        return -1;
    }
    if (req->on_data) {
        for (size_t off = 0; off < len; off += fake_http.chunk) {
            size_t n = len - off < fake_http.chunk ? len - off
                                                   : fake_http.chunk;
            if (req->on_data(req->ctx, (const char *)doc + off, n) != 0) {
                snprintf(err, errlen, "aborted");
                return -1;
            }
        }
        return 0;
    }
    if (len && buf_add(&resp->body, doc, len) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}
#endif
