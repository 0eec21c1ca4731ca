/* fuzz_kube_discovery.c: libFuzzer target for the Kubernetes discovery
 * parsers. Drives the real kube_discover (kube.c) with a fake transport
 * (fake_http.h) that answers /api, /apis and then each group-version with
 * the successive "\n--\n"-separated documents of the fuzz input, and
 * checks every resource it returns has its strings.
 * Uses: kube.h. Must never: reach the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kube.h"
#include "fake_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kube_client *client;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct kube_config cfg;
    char err[256];

    (void)argc;
    (void)argv;
    memset(&cfg, 0, sizeof cfg);
    if (!(cfg.server = strdup("https://kube.fuzz.invalid:6443")))
        abort();
    if (!(client = kube_client_new(&cfg, 1000, err, sizeof err)))
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_resource *r = NULL;
    size_t n = 0;
    char err[512];

    fake_http_reset(data, size);
    err[0] = '\0';
    if (kube_discover(client, &r, &n, err, sizeof err) != 0) {
        if (!err[0] || r || n)
            abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!r[i].group || !r[i].version || !r[i].resource || !r[i].kind
            || !r[i].singular || !r[i].resource[0]
            || strchr(r[i].resource, '/'))
            abort();
    }
    kube_resources_free(r, n);
    return 0;
}
