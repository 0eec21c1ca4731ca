/* fuzz_prom_series.c: libFuzzer target for the streaming series parser.
 * Drives the real prom_series (prom.c) against a fake transport that
 * streams the fuzz input as the /api/v1/series body in small chunks
 * (fake_http.h), then checks the shapes it returns: sorted, distinct,
 * label lists sorted without __name__, counts adding up.
 * Uses: prom.h, log.h. Must never: reach the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "prom.h"
#include "fake_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One client for the whole run (immutable after creation). */
static struct prom_client *client;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct prom_options o;
    char err[256];

    (void)argc;
    (void)argv;
    memset(&o, 0, sizeof o);
    o.url = "http://prometheus.fuzz.invalid:9090/prefix";
    if (!(client = prom_client_new(&o, err, sizeof err)))
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prom_shapes *shapes = NULL;
    char err[512];
    size_t total = 0;

    fake_http_reset(data, size);
    if (prom_series(client, NULL, "{__name__=~\"^container_.*\"}", 1.5,
                    &shapes, err, sizeof err) != 0) {
        if (!err[0] || shapes)
            abort();    /* a failure must say why and return nothing */
        return 0;
    }
    for (size_t i = 0; i < shapes->n; i++) {
        const struct prom_shape *s = &shapes->v[i];
        if (!s->name)
            abort();
        for (size_t j = 0; j < s->nlabels; j++) {
            if (strcmp(s->labels[j], "__name__") == 0)
                abort();
            if (j && strcmp(s->labels[j - 1], s->labels[j]) >= 0)
                abort();
        }
        if (i && strcmp(shapes->v[i - 1].name, s->name) > 0)
            abort();
        total += s->count;
    }
    if (total != shapes->total_series)
        abort();
    prom_shapes_free(shapes);
    return 0;
}
