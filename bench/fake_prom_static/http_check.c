#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "http_client.h"
#include "prom.h"

static int fails, checks;
#define CHECK(c) do { checks++; if (!(c)) { fails++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); } } while (0)

static double t_start;
static int cancel_after(void *ctx) { (void)ctx; return prom_now() - t_start > 0.25; }
static int stop_now(void *ctx, const char *p, size_t n_) { int *n = ctx; (void)p; (void)n_; return ++*n > 2; }

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb"); static char b[3][1 << 16]; static int k;
    char *o = b[k++ % 3]; size_t n = fread(o, 1, (1 << 16) - 1, f); o[n] = 0; fclose(f); return o;
}

static int
get(struct http_client *c, const char *url, const char *mode, const struct http_tls *tls, char *err, size_t errlen, long *status, char *body, size_t blen)
{
    char mh[64]; snprintf(mh, sizeof mh, "X-Mode: %s", mode);
    const char *hh[] = {mh, NULL};
    struct http_req r = {0};
    struct http_resp resp;
    r.method = "GET"; r.url = url; r.headers = hh; r.timeout_ms = 3000; r.tls = tls;
    int rc = http_client_do(c, &r, &resp, err, errlen);
    *status = resp.status;
    if (body) snprintf(body, blen, "%s", resp.body.data ? resp.body.data : "");
    buf_free(&resp.body);
    return rc;
}

int
main(void)
{
    char err[512], body[512];
    long st;
    http_client_global_init();
    struct http_client *c = http_client_new(err, sizeof err);
    http_client_free(NULL);

    /* gzip */
    CHECK(get(c, "http://127.0.0.1:18091/q", "gzip", NULL, err, sizeof err, &st, body, sizeof body) == 0);
    CHECK(st == 200); CHECK(strstr(body, "\"resultType\":\"scalar\"") != NULL);

    /* content type + max_body */
    {
        const char *hh[] = {"X-Mode: bigbody", NULL};
        struct http_req r = {0}; struct http_resp resp;
        r.method = "GET"; r.url = "http://127.0.0.1:18091/q"; r.headers = hh; r.timeout_ms = 3000; r.max_body = 1000;
        CHECK(http_client_do(c, &r, &resp, err, sizeof err) == -1);
        printf("# max_body: %s\n", err);
        CHECK(strstr(err, "exceeds 1000") != NULL);
        CHECK(resp.status == 200);
        CHECK(strcmp(resp.content_type, "application/json") == 0);
        buf_free(&resp.body);
        /* streaming consumer abort */
        int n = 0;
        r.max_body = 0; r.on_data = NULL; r.cancelled = NULL;
        r.on_data = stop_now; r.ctx = &n;
        CHECK(http_client_do(c, &r, &resp, err, sizeof err) == -1);
        CHECK(strcmp(err, "aborted") == 0);
        buf_free(&resp.body);
    }
    /* cancellation against a server that never answers: noticed within ~100 ms */
    {
        const char *hh[] = {"X-Mode: hang", NULL};
        struct http_req r = {0}; struct http_resp resp;
        r.method = "GET"; r.url = "http://127.0.0.1:18091/q"; r.headers = hh; r.timeout_ms = 10000;
        r.cancelled = cancel_after;
        t_start = prom_now();
        CHECK(http_client_do(c, &r, &resp, err, sizeof err) == -1);
        double dt = prom_now() - t_start;
        printf("# cancel after 0.25 s: returned at %.3f s: %s\n", dt, err);
        CHECK(dt < 0.40); CHECK(strcmp(err, "cancelled") == 0);
        buf_free(&resp.body);
    }
    /* keep-alive: two calls on one client share a connection */
    {
        CHECK(get(c, "http://127.0.0.1:18091/a", "scalar", NULL, err, sizeof err, &st, NULL, 0) == 0);
        FILE *f = fopen("/tmp/ptest/req.log", "r"); char line[1 << 16], prev[1 << 16] = "", last[1 << 16] = "";
        CHECK(get(c, "http://127.0.0.1:18091/b", "scalar", NULL, err, sizeof err, &st, NULL, 0) == 0);
        while (fgets(line, sizeof line, f)) { strcpy(prev, last); strcpy(last, line); }
        fclose(f);
        char *p1 = strstr(prev, "\"port\": "), *p2 = strstr(last, "\"port\": ");
        CHECK(p1 && p2 && atoi(p1 + 8) == atoi(p2 + 8));
        printf("# keep-alive ports %d %d\n", p1 ? atoi(p1 + 8) : -1, p2 ? atoi(p2 + 8) : -1);
    }
    /* TLS: server cert is for prom.example; we connect to 127.0.0.1 */
    {
        struct http_tls t = {0};
        const char *u = "https://127.0.0.1:18092/q";
        t.ca_file = "/tmp/ptest/pki/ca.crt"; t.cert_file = "/tmp/ptest/pki/cli.crt"; t.key_file = "/tmp/ptest/pki/cli.key";
        CHECK(get(c, u, "scalar", &t, err, sizeof err, &st, NULL, 0) == -1);
        printf("# tls without server_name: %s\n", err);
        t.server_name = "prom.example";
        CHECK(get(c, u, "scalar", &t, err, sizeof err, &st, body, sizeof body) == 0);
        if (st != 200) printf("# tls server_name: %s\n", err);
        CHECK(st == 200 && strstr(body, "scalar"));
        {
            FILE *f = fopen("/tmp/ptest/req.log", "r"); static char line[1 << 16], last[1 << 16];
            while (fgets(line, sizeof line, f)) strcpy(last, line);
            fclose(f);
            CHECK(strstr(last, "[\"Host\", \"127.0.0.1:18092\"]") != NULL);
        }
        /* in-memory CA and client cert/key */
        struct http_tls t2 = {0};
        t2.ca_pem = slurp("/tmp/ptest/pki/ca.crt"); t2.cert_pem = slurp("/tmp/ptest/pki/cli.crt"); t2.key_pem = slurp("/tmp/ptest/pki/cli.key");
        t2.server_name = "prom.example"; t2.min_tls = 12;
        CHECK(get(c, u, "scalar", &t2, err, sizeof err, &st, NULL, 0) == 0);
        if (st != 200) printf("# tls blobs: %s\n", err);
        CHECK(st == 200);
        /* no client cert: the server requires one */
        struct http_tls t3 = {0};
        t3.ca_file = "/tmp/ptest/pki/ca.crt"; t3.server_name = "prom.example";
        CHECK(get(c, u, "scalar", &t3, err, sizeof err, &st, NULL, 0) == -1 || st != 200);
        printf("# tls without client cert: %s\n", err);
        /* insecure */
        struct http_tls t4 = {0};
        t4.insecure = true; t4.cert_file = "/tmp/ptest/pki/cli.crt"; t4.key_file = "/tmp/ptest/pki/cli.key";
        CHECK(get(c, u, "scalar", &t4, err, sizeof err, &st, NULL, 0) == 0 && st == 200);
        /* wrong CA */
        struct http_tls t5 = t4; t5.insecure = false; t5.ca_file = "/tmp/ptest/pki/other.crt"; t5.server_name = "prom.example";
        CHECK(get(c, u, "scalar", &t5, err, sizeof err, &st, NULL, 0) == -1);
        printf("# wrong CA: %s\n", err);
    }
    http_client_free(c);
    printf("%d/%d checks passed\n", checks - fails, checks);
    return fails != 0;
}
