/* fuzz_prom_query.c: libFuzzer target for the instant-query result parser.
 * Drives the real prom_query (prom.c: coalescing, yajl tree, vector /
 * scalar / matrix mapping) with the fuzz input as the /api/v1/query body
 * (fake_http.h), and reads every sample it returns: keys strictly sorted,
 * strings present. Uses: prom.h. Must never: reach the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "prom.h"
#include "fake_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct prom_client *client;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct prom_options o;
    char err[256];

    (void)argc;
    (void)argv;
    memset(&o, 0, sizeof o);
    o.url = "http://prometheus.fuzz.invalid:9090";
    /* no query cache: every input must reach the parser */
    if (!(client = prom_client_new(&o, err, sizeof err)))
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prom_result *r = NULL;
    char err[512];
    volatile double sink = 0;

    fake_http_reset(data, size);
    if (prom_query(client, NULL, "sum(rate(x[1m])) by (pod)", 1715851267.5,
                   2.0, &r, err, sizeof err) != 0) {
        if (!err[0] || r)
            abort();
        return 0;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct prom_sample *s = &r->samples[i];
        for (size_t j = 0; j < s->nlabels; j++) {
            if (!s->keys[j] || !s->values[j])
                abort();
            /* strictly increasing: a repeated key keeps its last value */
            if (j && strcmp(s->keys[j - 1], s->keys[j]) >= 0)
                abort();
        }
        sink += s->value + s->ts;
    }
    (void)sink;
    prom_result_free(r);
    return 0;
}
