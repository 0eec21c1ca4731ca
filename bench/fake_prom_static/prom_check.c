#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "prom.h"
#include "log.h"

static int fails, checks;
#define CHECK(c) do { checks++; if (!(c)) { fails++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); checks++; \
    if (!_a || strcmp(_a, _b)) { fails++; printf("FAIL %s:%d: got [%s] want [%s]\n", __FILE__, __LINE__, _a ? _a : "(null)", _b); } } while (0)

static const char *PORT;
static char LOGF_[256];

static struct prom_client *
mk(const char *url, const char *verb, const char *const *headers, const char *token_file, size_t maxget, long tmo)
{
    char err[512];
    struct prom_options o = {0};
    o.url = url; o.verb = verb; o.headers = headers; o.token_file = token_file;
    o.max_get_length = maxget; o.timeout_ms = tmo;
    struct prom_client *p = prom_client_new(&o, err, sizeof err);
    if (!p) printf("client error: %s\n", err);
    return p;
}

static void
wire(const char *url, const char *verb, size_t maxget, const char *ep, const char *const *kv,
     const char *want_method, const char *want_url, const char *want_body)
{
    char err[256];
    struct prom_wire w;
    struct prom_client *p = mk(url, verb, NULL, NULL, maxget, 0);
    CHECK(p != NULL);
    if (!p) return;
    CHECK(prom_build_request(p, ep, kv, &w, err, sizeof err) == 0);
    CHECK_STR(w.method, want_method);
    CHECK_STR(w.url, want_url);
    if (want_body) CHECK_STR(w.body, want_body); else CHECK(w.body == NULL);
    prom_wire_free(&w);
    prom_client_free(p);
}

/* last logged request */
static char *
last_req(void)
{
    static char line[1 << 16];
    FILE *f = fopen(LOGF_, "r");
    line[0] = 0;
    if (!f) return line;
    while (fgets(line, sizeof line, f)) ;
    fclose(f);
    return line;
}

int
main(int argc, char **argv)
{
    char err[512], u[256], t[64];
    PORT = argv[1]; if (getenv("V6")) log_set_verbosity(6);
    snprintf(LOGF_, sizeof LOGF_, "%s", argv[2]);
    http_client_global_init();

    /* -- formatting */
    prom_format_time(1715851267.123, t, sizeof t); CHECK_STR(t, "1715851267.123");
    prom_format_time(1715851267.1, t, sizeof t); CHECK_STR(t, "1715851267.1");
    prom_format_time(1715851267.0, t, sizeof t); CHECK_STR(t, "1715851267");
    prom_format_time(1715851267.12, t, sizeof t); CHECK_STR(t, "1715851267.12");
    prom_format_time(1715851267.02, t, sizeof t); CHECK_STR(t, "1715851267.02");
    prom_format_time(1715851267.001, t, sizeof t); CHECK_STR(t, "1715851267.001");
    prom_format_duration(59, t, sizeof t); CHECK_STR(t, "59s");
    prom_format_duration(59.5, t, sizeof t); CHECK_STR(t, "59500ms");
    prom_format_duration(0.0001, t, sizeof t); CHECK_STR(t, "1ms");
    double now = prom_now();
    CHECK(fabs(now * 1000 - llround(now * 1000)) < 1e-3);
    CHECK(fabs(now - (double)time(NULL)) < 2);
    char h[64];
    prom_canonical_header("x-scope-orgid", 13, h, sizeof h); CHECK_STR(h, "X-Scope-Orgid");
    prom_canonical_header("AUTHORIZATION", 13, h, sizeof h); CHECK_STR(h, "Authorization");
    prom_canonical_header("x_y-z", 5, h, sizeof h); CHECK_STR(h, "X_y-Z");
    prom_canonical_header("bad name", 8, h, sizeof h); CHECK_STR(h, "bad name");

    /* -- URLs */
    const char *q1[] = {"query", "up", "time", "1715851267.123", NULL};
    wire("http://p/prom", NULL, 0, "/api/v1/query", q1, "GET",
         "http://p/prom/api/v1/query?query=up&time=1715851267.123", NULL);
    const char *s1[] = {"start", "1715851267", "match[]", "{__name__=~\"^container_.*\"}", NULL};
    wire("https://p:9090/", "GET", 0, "/api/v1/series", s1, "GET",
         "https://p:9090/api/v1/series?match%5B%5D=%7B__name__%3D~%22%5Econtainer_.%2A%22%7D&start=1715851267", NULL);
    wire("http://p", NULL, 0, "/api/v1/series", s1, "GET",
         "http://p/api/v1/series?match%5B%5D=%7B__name__%3D~%22%5Econtainer_.%2A%22%7D&start=1715851267", NULL);
    const char *q2[] = {"timeout", "59s", "query", "sum(rate(x{a=\"b c\"}[5m]))", "time", "1.5", NULL};
    wire("http://thanos:10902/prefix/?dedup=true&x=%20", NULL, 0, "/api/v1/query", q2, "GET",
         "http://thanos:10902/prefix/api/v1/query?dedup=true&x=%20&query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29%29&time=1.5&timeout=59s", NULL);
    wire("http://thanos:10902/prefix/?dedup=true#frag", "POST", 0, "/api/v1/query", q1, "POST",
         "http://thanos:10902/prefix/api/v1/query?dedup=true", "query=up&time=1715851267.123");
    wire("http://u:p%40ss@h:1/a/../b//c/./", NULL, 0, "/api/v1/query", q1, "GET",
         "http://h:1/b/c/api/v1/query?query=up&time=1715851267.123", NULL);
    wire("http://h/../..", NULL, 0, "/api/v1/query", q1, "GET",
         "http://h/api/v1/query?query=up&time=1715851267.123", NULL);
    /* GET -> POST at the length limit: URL "http://p/api/v1/query?query=up&time=1715851267.123" is 50 chars */
    wire("http://p", NULL, 50, "/api/v1/query", q1, "GET",
         "http://p/api/v1/query?query=up&time=1715851267.123", NULL);
    wire("http://p", NULL, 49, "/api/v1/query", q1, "POST",
         "http://p/api/v1/query", "query=up&time=1715851267.123");

    /* -- construction errors */
    struct prom_options o = {0};
    o.url = "http://p"; o.verb = "PUT";
    CHECK(prom_client_new(&o, err, sizeof err) == NULL);
    CHECK_STR(err, "unsupported Prometheus HTTP verb \"PUT\"; supported verbs: \"GET\" and \"POST\"");
    o.verb = "get";
    CHECK(prom_client_new(&o, err, sizeof err) == NULL);
    o.verb = NULL; o.token_file = "/nonexistent/tok";
    CHECK(prom_client_new(&o, err, sizeof err) == NULL);
    CHECK(strncmp(err, "failed to read prometheus-token-file: ", 38) == 0);
    printf("# token error: %s\n", err);
    o.token_file = NULL; o.url = "nohost";
    CHECK(prom_client_new(&o, err, sizeof err) == NULL);
    prom_client_free(NULL);
    prom_shapes_free(NULL);
    prom_result_free(NULL);

    /* -- against the fake server */
    struct http_client *hc = http_client_new(err, sizeof err);
    struct prom_shapes *sh;
    struct prom_result *r;
    snprintf(u, sizeof u, "http://127.0.0.1:%s/prom/", PORT);
    const char *hdr1[] = {"x-scope-orgid=t1", "bad name=v", "=novalue", "X-SCOPE-ORGID=t2", "x-empty", "X-Mode=series_ok", NULL};
    FILE *tf = fopen("/tmp/ptest/token", "w"); fputs("  tok-one\n\n", tf); fclose(tf);
    struct prom_client *p = mk(u, NULL, hdr1, "/tmp/ptest/token", 0, 0);
    CHECK(prom_series(p, hc, "{__name__=~\"^.*_metric$\"}", 1715851267.1, &sh, err, sizeof err) == 0);
    if (sh) {
        CHECK(sh->n == 3); CHECK(sh->total_series == 4);
        CHECK_STR(sh->v[0].name, ""); CHECK(sh->v[0].nlabels == 1); CHECK_STR(sh->v[0].labels[0], "pod");
        CHECK_STR(sh->v[1].name, "a_metric"); CHECK(sh->v[1].nlabels == 2);
        CHECK_STR(sh->v[1].labels[0], "a"); CHECK_STR(sh->v[1].labels[1], "z");
        CHECK_STR(sh->v[2].name, "b_metric"); CHECK(sh->v[2].count == 2); CHECK(sh->v[2].nlabels == 2);
        CHECK_STR(sh->v[2].labels[0], "namespace"); CHECK_STR(sh->v[2].labels[1], "pod");
        prom_shapes_free(sh);
    }
    char *L = last_req();
    printf("# %s", L);
    CHECK(strstr(L, "\"path\": \"/prom/api/v1/series?match%5B%5D=%7B__name__%3D~%22%5E.%2A_metric%24%22%7D&start=1715851267.1\"") != NULL);
    CHECK(strstr(L, "[\"X-Scope-Orgid\", \"t1\"], [\"X-Scope-Orgid\", \"t2\"]") != NULL);
    CHECK(strstr(L, "[\"X-Empty\", \"\"]") != NULL);
    CHECK(strstr(L, "bad name") == NULL && strstr(L, "novalue") == NULL);
    CHECK(strstr(L, "[\"Authorization\", \"Bearer tok-one\"]") != NULL);
    CHECK(strstr(L, "promlua-adapter/") != NULL);
    CHECK(strstr(L, "[\"Accept-Encoding\", \"gzip\"]") != NULL);
    CHECK(strstr(L, "\"Accept\"") == NULL);
    /* rotation */
    usleep(20000);
    tf = fopen("/tmp/ptest/token", "w"); fputs("tok-two-rotated\n", tf); fclose(tf);
    CHECK(prom_series(p, hc, "x", 1, &sh, err, sizeof err) == 0);
    prom_shapes_free(sh);
    L = last_req();
    CHECK(strstr(L, "[\"Authorization\", \"Bearer tok-two-rotated\"]") != NULL);
    prom_client_free(p);

    /* explicit Authorization header wins; basic auth from URL; POST forces content type */
    snprintf(u, sizeof u, "http://us%%40r:pa%%3Ass@127.0.0.1:%s?k=v", PORT);
    const char *hdr2[] = {"content-type=text/plain", "X-Mode=vector", NULL};
    p = mk(u, "POST", hdr2, NULL, 0, 0);
    CHECK(prom_query(p, hc, "sum(x) by (pod)", 1715851267.123, 59.5, &r, err, sizeof err) == 0);
    L = last_req();
    printf("# %s", L);
    CHECK(strstr(L, "\"method\": \"POST\"") != NULL);
    CHECK(strstr(L, "\"path\": \"/api/v1/query?k=v\"") != NULL);
    CHECK(strstr(L, "\"body\": \"query=sum%28x%29+by+%28pod%29&time=1715851267.123&timeout=59500ms\"") != NULL);
    CHECK(strstr(L, "[\"Content-Type\", \"application/x-www-form-urlencoded\"]") != NULL);
    CHECK(strstr(L, "text/plain") == NULL);
    CHECK(strstr(L, "[\"Authorization\", \"Basic dXNAcjpwYTpzcw==\"]") != NULL); /* us@r:pa:ss */
    if (r) {
        CHECK(r->type == PROM_VECTOR); CHECK(r->n == 5);
        CHECK(r->samples[0].nlabels == 3);
        CHECK_STR(r->samples[0].keys[0], "__name__"); CHECK_STR(r->samples[0].keys[1], "namespace");
        CHECK_STR(r->samples[0].keys[2], "pod"); CHECK_STR(r->samples[0].values[2], "p1");
        CHECK(r->samples[0].value == 1.5); CHECK(fabs(r->samples[0].ts - 1715851267.123) < 1e-6);
        CHECK(isnan(r->samples[1].value)); CHECK(r->samples[1].nlabels == 0);
        CHECK(fabs(r->samples[1].ts - 1715851267.1) < 1e-6);
        CHECK(isinf(r->samples[2].value) && r->samples[2].value > 0);
        CHECK(isinf(r->samples[3].value) && r->samples[3].value < 0);
        CHECK(fabs(r->samples[3].ts - 1715851267.123) < 1e-6);
        CHECK(r->samples[4].value == 0); CHECK(fabs(r->samples[4].ts - 1715851267.5) < 1e-6);
        prom_result_free(r);
    }
    prom_client_free(p);

    /* token file vs explicit header */
    tf = fopen("/tmp/ptest/token", "w"); fputs("tok3", tf); fclose(tf);
    snprintf(u, sizeof u, "http://127.0.0.1:%s", PORT);
    const char *hdr3[] = {"authorization=Bearer explicit", "X-Mode=scalar", NULL};
    p = mk(u, NULL, hdr3, "/tmp/ptest/token", 0, 0);
    CHECK(prom_query(p, hc, "1", 5, 0, &r, err, sizeof err) == 0);
    L = last_req();
    CHECK(strstr(L, "Bearer explicit") != NULL); CHECK(strstr(L, "tok3") == NULL);
    CHECK(strstr(L, "timeout") == NULL);
    CHECK(strstr(L, "\"path\": \"/api/v1/query?query=1&time=5\"") != NULL);
    if (r) { CHECK(r->type == PROM_SCALAR); CHECK(r->n == 1); CHECK(r->samples[0].value == 42);
             CHECK(r->samples[0].ts == 1715851267.5); CHECK(r->samples[0].nlabels == 0); prom_result_free(r); }
    prom_client_free(p);

    /* URL user-info beats the token file; kubeconfig token used last */
    {
        snprintf(u, sizeof u, "http://a:b@127.0.0.1:%s", PORT);
        const char *hh[] = {"X-Mode=scalar", NULL};
        p = mk(u, NULL, hh, "/tmp/ptest/token", 0, 0);
        CHECK(prom_query(p, hc, "1", 5, 0, &r, err, sizeof err) == 0);
        prom_result_free(r);
        L = last_req();
        CHECK(strstr(L, "[\"Authorization\", \"Basic YTpi\"]") != NULL);
        prom_client_free(p);
        snprintf(u, sizeof u, "http://127.0.0.1:%s", PORT);
        struct prom_options ko = {0};
        ko.url = u; ko.headers = hh; ko.auth_token = "kube-tok";
        p = prom_client_new(&ko, err, sizeof err);
        CHECK(prom_query(p, hc, "1", 5, 0, &r, err, sizeof err) == 0);
        prom_result_free(r);
        CHECK(strstr(last_req(), "[\"Authorization\", \"Bearer kube-tok\"]") != NULL);
        prom_client_free(p);
        ko.token_file = "/tmp/ptest/token";
        p = prom_client_new(&ko, err, sizeof err);
        CHECK(prom_query(p, hc, "1", 5, 0, &r, err, sizeof err) == 0);
        prom_result_free(r);
        CHECK(strstr(last_req(), "[\"Authorization\", \"Bearer tok3\"]") != NULL);
        prom_client_free(p);
        ko.token_file = NULL; ko.auth_token = NULL; ko.auth_basic_user = "ku"; ko.auth_basic_pass = "kp";
        p = prom_client_new(&ko, err, sizeof err);
        CHECK(prom_query(p, hc, "1", 5, 0, &r, err, sizeof err) == 0);
        prom_result_free(r);
        CHECK(strstr(last_req(), "[\"Authorization\", \"Basic a3U6a3A=\"]") != NULL);
        prom_client_free(p);
    }
    /* error cases */
    struct { const char *mode; int series; const char *want; } cases[] = {
        {"error", 0, "bad_data: invalid parameter \"query\": boom"},
        {"error", 1, "bad_data: invalid parameter \"query\": boom"},
        {"error422", 0, "execution: exec failed"},
        {"s500", 0, "bad_response: unknown response code 500"},
        {"s500", 1, "bad_response: unknown response code 500"},
        {"s404", 1, "bad_response: unknown response code 404"},
        {"html", 0, "bad_response: "},
        {"html", 1, "bad_response: "},
        {"truncated", 1, "bad_response: "},
        {"string", 0, "unexpected value type \"string\""},
        {"badnum", 0, "bad_response: "},
        {"vector", 1, "bad_response: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char mh[64];
        snprintf(mh, sizeof mh, "X-Mode=%s", cases[i].mode);
        const char *hh[] = {mh, NULL};
        p = mk(u, NULL, hh, NULL, 0, 0);
        err[0] = 0;
        int rc = cases[i].series ? prom_series(p, hc, "x", 1, &sh, err, sizeof err)
                                 : prom_query(p, hc, "x", 1, 0, &r, err, sizeof err);
        CHECK(rc == -1);
        checks++;
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) { fails++; printf("FAIL case %s/%d: [%s]\n", cases[i].mode, cases[i].series, err); }
        printf("# %s/%s: %s\n", cases[i].mode, cases[i].series ? "series" : "query", err);
        prom_client_free(p);
    }
    /* null series, status after data, matrix */
    {
        const char *hh[] = {"X-Mode=series_null", NULL};
        p = mk(u, NULL, hh, NULL, 0, 0);
        CHECK(prom_series(p, hc, "x", 1, &sh, err, sizeof err) == 0);
        if (sh) { CHECK(sh->n == 0 && sh->total_series == 0); prom_shapes_free(sh); }
        prom_client_free(p);
        const char *hh2[] = {"X-Mode=series_trailing_status", NULL};
        p = mk(u, NULL, hh2, NULL, 0, 0);
        CHECK(prom_series(p, hc, "x", 1, &sh, err, sizeof err) == 0);
        if (sh) { CHECK(sh->n == 1); CHECK_STR(sh->v[0].name, "x"); prom_shapes_free(sh); }
        prom_client_free(p);
        const char *hh3[] = {"X-Mode=matrix", NULL};
        p = mk(u, NULL, hh3, NULL, 0, 0);
        CHECK(prom_query(p, hc, "x", 1, 0, &r, err, sizeof err) == 0);
        if (r) { CHECK(r->type == PROM_MATRIX); prom_result_free(r); }
        prom_client_free(p);
    }
    /* timeout against a server that never answers: bounded */
    {
        const char *hh[] = {"X-Mode=hang", NULL};
        p = mk(u, NULL, hh, NULL, 0, 400);
        double t0 = prom_now();
        CHECK(prom_series(p, hc, "x", 1, &sh, err, sizeof err) == -1);
        double dt = prom_now() - t0;
        printf("# hang series: %.3fs: %s\n", dt, err);
        CHECK(dt < 1.0);
        t0 = prom_now();
        CHECK(prom_query(p, hc, "x", 1, 0.3, &r, err, sizeof err) == -1);
        dt = prom_now() - t0;
        printf("# hang query (timeout_s 0.3): %.3fs: %s\n", dt, err);
        CHECK(dt < 0.6);
        prom_client_free(p);
    }
    /* connection refused */
    {
        p = mk("http://127.0.0.1:1/", NULL, NULL, NULL, 0, 1000);
        CHECK(prom_query(p, hc, "x", 1, 0, &r, err, sizeof err) == -1);
        printf("# refused: %s\n", err);
        prom_client_free(p);
    }
    /* big series measurement */
    if (argc > 3) {
        const char *hh[] = {"X-Mode=big", NULL};
        p = mk(u, NULL, hh, NULL, 0, 60000);
        double t0 = prom_now();
        int rc = prom_series(p, hc, "x", 1, &sh, err, sizeof err);
        double dt = prom_now() - t0;
        CHECK(rc == 0);
        if (rc) printf("# big: %s\n", err);
        if (sh) {
            printf("# big: %zu series, %zu shapes in %.3f s\n", sh->total_series, sh->n, dt);
            CHECK(sh->total_series == (size_t)atol(argv[3]));
            prom_shapes_free(sh);
        }
        prom_client_free(p);
    }
    http_client_free(hc);
    printf("%d/%d checks passed\n", checks - fails, checks);
    return fails != 0;
}
