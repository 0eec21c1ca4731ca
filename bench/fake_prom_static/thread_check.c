#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "prom.h"
static struct prom_client *P;
static int bad;
static void *run(void *arg) {
    char err[256]; (void)arg;
    struct http_client *hc = http_client_new(err, sizeof err);
    for (int i = 0; i < 40; i++) {
        struct prom_result *r = NULL; struct prom_shapes *s = NULL;
        if (i % 2) { if (prom_query(P, hc, "up", prom_now(), 5, &r, err, sizeof err) != 0 || r->n != 1 || r->samples[0].value != 42) __atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST); }
        else if (prom_series(P, hc, "x", 1, &s, err, sizeof err) == 0) { __atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST); } /* scalar body is not a series list */
        prom_result_free(r); prom_shapes_free(s);
    }
    http_client_free(hc);
    return NULL;
}
int main(void) {
    char err[256];
    http_client_global_init();
    FILE *f = fopen("/tmp/ptest/ttok", "w"); fputs("T0\n", f); fclose(f);
    const char *hh[] = {"X-Mode=scalar", NULL};
    struct prom_options o = {0}; o.url = "http://127.0.0.1:18091"; o.headers = hh; o.token_file = "/tmp/ptest/ttok";
    P = prom_client_new(&o, err, sizeof err);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, run, NULL);
    for (int k = 1; k < 20; k++) {
        char name[64]; snprintf(name, sizeof name, "/tmp/ptest/ttok.%d", k);
        f = fopen(name, "w"); fprintf(f, "T%d-rotated\n", k); fclose(f);
        rename(name, "/tmp/ptest/ttok");
        usleep(20000);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    struct prom_stats st;
    prom_stats(P, &st);
    printf("# coalescing: %llu queries, %llu requests, %llu shared\n", st.queries, st.requests, st.coalesced);
    if (st.queries != st.requests + st.coalesced) bad++;
    prom_client_free(P);
    /* again with the query cache on (20 ms), so TSan sees cache traffic */
    o.query_cache_ttl_ms = 20; o.query_cache_max = 2;
    P = prom_client_new(&o, err, sizeof err);
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    prom_stats(P, &st);
    printf("# cache: %llu queries, %llu requests, %llu shared, %llu cache hits\n", st.queries, st.requests, st.coalesced, st.cache_hits);
    if (st.queries != st.requests + st.coalesced + st.cache_hits || st.cache_hits == 0) bad++;
    prom_client_free(P);
    printf("bad=%d\n", bad);
    return bad != 0;
}
