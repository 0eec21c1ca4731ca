/* fuzz_kube_list.c: libFuzzer target for the Kubernetes LIST and WATCH
 * parsers of the metadata caches (kcache.c). kcache.c is compiled into
 * this file so that its LIST (paginated, yajl tree) and WATCH (streamed
 * JSON lines) steps can be driven synchronously on the fuzz thread, with
 * no cache thread: the documents of the input ("\n--\n"-separated,
 * fake_http.h) are the LIST pages (following metadata.continue) and then
 * the WATCH stream. The published snapshot is then read in full and
 * checked sorted by (namespace, name), labels sorted by key.
 * Uses: kcache.c (included), kube.h. Must never: reach the network. */
#include "../../../src/kcache.c"
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

static void
check_snap(const struct kcache_snap *snap)
{
    for (size_t i = 0; i < snap->n; i++) {
        const struct kcache_obj *o = &snap->objs[i];
        size_t first, last;
        if (!o->namespace || !o->name)
            abort();
        if (i && cmp_key(snap->objs[i - 1].namespace, snap->objs[i - 1].name,
                         o->namespace, o->name) >= 0)
            abort();
        /* strictly increasing: a key repeated in the JSON object is kept
         * once, with the last value (Go's decoder) */
        for (size_t j = 0; j < o->nlabels; j++) {
            if (j && strcmp(o->label_keys[j - 1], o->label_keys[j]) >= 0)
                abort();
            if (kcache_obj_label(o, o->label_keys[j]) != o->label_values[j])
                abort();
        }
        if (kcache_find(snap, o->namespace, o->name) != (long)i)
            abort();
        if (kcache_ns_range(snap, o->namespace, &first, &last) == 0
            || i < first || i >= last)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kcache_set set;
    struct kcache *c;
    char err[512];

    fake_http_reset(data, size);
    memset(&set, 0, sizeof set);
    set.kc = client;
    atomic_init(&set.requests, 0);
    if (!(c = calloc(1, sizeof *c)))
        abort();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->set = &set;
    if (!(c->group = strdup("")) || !(c->version = strdup("v1"))
        || !(c->resource = strdup("pods")) || !(c->fsel = strdup(""))
        || !(c->base = strdup("/api/v1/pods")))
        abort();
    err[0] = '\0';
    if (do_list(c, NULL, err, sizeof err) == 0) {
        publish(c);
        check_snap(c->snap);
        (void)do_watch(c, NULL, err, sizeof err);
        publish(c);
        check_snap(c->snap);
    } else if (!err[0]) {
        abort();
    }
    cache_free(c);
    return 0;
}
