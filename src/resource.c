/* resource.c: metrics.k8s.io/v1beta1, the resource metrics API that
 * `kubectl top` and CPU/memory autoscaling read (spec-server.md §2.7,
 * spec-rules.md §7): discovery, NodeMetrics(List) and PodMetrics(List).
 * Uses: api.h (call state), kcache.h (Running pods and nodes with their
 * labels from the watch-fed caches: no Kubernetes call per request once
 * warm), selector.h (labelSelector), engine.h (this thread's engine renders
 * the containerQuery/nodeQuery), prom.h (instant queries on the thread's
 * own HTTP client: the CPU and memory queries of up to NS_WINDOW
 * namespaces go out together, prom_query_many, as PA's goroutines do),
 * quantity.h, jsonw.h, status.h, metrics.h (failures counted in
 * resource_query_failures_total).
 * Must never: fail a request because Prometheus failed (decisions #31: the
 * objects are left out, the failure is logged and counted), or report
 * containers in a random order (decisions #32: sorted by name).
 * Threads: handlers run on a server pool thread; the only shared state is
 * the metrics registry (locked inside metrics.c). */
#include "api.h"
#include "engine.h"
#include "jsonw.h"
#include "kcache.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "quantity.h"
#include "selector.h"
#include "status.h"
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP "metrics.k8s.io"
#define GROUP_VERSION "metrics.k8s.io/v1beta1"
/* Longest wait for the pod or node cache to fill on first use. */
#define KCACHE_FIRST_WAIT_MS 10000L

/* -- Discovery -------------------------------------------------------- */

static void
disc_resource(struct jsonw *w, const char *name, bool namespaced,
              const char *kind)
{
    jsonw_map_open(w);
    jsonw_kv_string(w, "name", name);
    jsonw_kv_string(w, "singularName", "");
    jsonw_kv_bool(w, "namespaced", namespaced);
    jsonw_kv_string(w, "kind", kind);
    jsonw_key(w, "verbs");
    jsonw_array_open(w);
    jsonw_string(w, "get");
    jsonw_string(w, "list");
    jsonw_array_close(w);
    jsonw_map_close(w);
}

void
resource_discovery(struct api_call *c)
{
    struct jsonw *w = jsonw_new(0);
    if (!w) {
        status_internal_error(c->resp, "out of memory");
        return;
    }
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "APIResourceList");
    jsonw_kv_string(w, "apiVersion", "v1");
    jsonw_kv_string(w, "groupVersion", GROUP_VERSION);
    jsonw_key(w, "resources");
    jsonw_array_open(w);
    disc_resource(w, "nodes", false, "NodeMetrics");
    disc_resource(w, "pods", true, "PodMetrics");
    jsonw_array_close(w);
    jsonw_map_close(w);
    api_send_json(c, 200, w);
}

/* -- Field selectors (k8s.io/apimachinery fields.ParseSelector) ----------- */

struct fterm {
    char *field, *value;           /* value unescaped */
    bool neq;
};

struct fsel {
    struct fterm *t;
    size_t n;
};

static void
fsel_free(struct fsel *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->t[i].field);
        free(f->t[i].value);
    }
    free(f->t);
    f->t = NULL;
    f->n = 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Unescapes a field selector value (\\ \, \= only), as UnescapeValue. */
static char *
unescape_value(const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    size_t k = 0;
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            if (i + 1 >= n || (s[i + 1] != '\\' && s[i + 1] != ',' &&
                               s[i + 1] != '=')) {
                snprintf(err, errlen, "invalid field selector: invalid escape "
                         "sequence: %.*s", i + 1 < n ? 2 : 1, s + i);
                free(out);
                return NULL;
            }
            out[k++] = s[++i];
        } else if (s[i] == ',' || s[i] == '=') {
            snprintf(err, errlen, "invalid field selector: unescaped "
                     "character %c", s[i]);
            free(out);
            return NULL;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

/* Parses raw into f (terms sorted as Go sorts the raw parts) and checks
 * each field against the metrics types' conversion (metadata.name and
 * metadata.namespace only). -1 with a client message (400) in err. */
static int
fsel_parse(const char *raw, struct fsel *f, char *err, size_t errlen)
{
    char **parts = NULL;
    size_t nparts = 0, len = strlen(raw);
    char *copy = strdup(raw);
    int rc = -1;
    memset(f, 0, sizeof *f);
    if (!copy)
        goto oom;
    parts = calloc(len + 2, sizeof *parts);
    f->t = calloc(len + 2, sizeof *f->t);
    if (!parts || !f->t)
        goto oom;
    /* split at commas not preceded by an escaping backslash */
    char *start = copy;
    for (size_t i = 0; i <= len; i++) {
        if (copy[i] == '\\' && i < len) {
            i++;
            continue;
        }
        if (copy[i] == ',' || copy[i] == '\0') {
            copy[i] = '\0';
            parts[nparts++] = start;
            start = copy + i + 1;
        }
    }
    qsort(parts, nparts, sizeof *parts, cmp_str);
    for (size_t i = 0; i < nparts; i++) {
        const char *p = parts[i];
        if (!*p)
            continue;
        size_t j = 0, oplen = 0;
        bool neq = false;
        for (; p[j]; j++) {
            if (!strncmp(p + j, "!=", 2)) {
                oplen = 2;
                neq = true;
                break;
            }
            if (!strncmp(p + j, "==", 2)) {
                oplen = 2;
                break;
            }
            if (p[j] == '=') {
                oplen = 1;
                break;
            }
        }
        if (!oplen) {
            snprintf(err, errlen, "invalid selector: '%s'; can't understand '%s'",
                     raw, p);
            goto done;
        }
        struct fterm *t = &f->t[f->n];
        t->neq = neq;
        t->field = strndup(p, j);
        if (!t->field)
            goto oom;
        f->n++;
        t->value = unescape_value(p + j + oplen, err, errlen);
        if (!t->value)
            goto done;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->t[i].field, "metadata.name") &&
            strcmp(f->t[i].field, "metadata.namespace")) {
            snprintf(err, errlen, "\"%s\" is not a known field selector: only "
                     "\"metadata.name\", \"metadata.namespace\"", f->t[i].field);
            goto done;
        }
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    free(parts);
    free(copy);
    if (rc != 0)
        fsel_free(f);
    return rc;
}

/* fields.Set{metadata.name, metadata.namespace (pods only)}; a field the
 * object lacks reads as "". */
static bool
fsel_matches(const struct fsel *f, const struct kcache_obj *o, bool pod)
{
    for (size_t i = 0; i < f->n; i++) {
        const char *have = "";
        if (!strcmp(f->t[i].field, "metadata.name"))
            have = o->name;
        else if (pod)
            have = o->namespace;
        bool eq = strcmp(have, f->t[i].value) == 0;
        if (eq == f->t[i].neq)
            return false;
    }
    return true;
}

/* -- Query results ------------------------------------------------------ */

/* One sample, keyed by the object it belongs to. */
struct hit {
    const char *obj;               /* pod or node label value */
    const char *container;         /* "" for nodes or when absent */
    double value, ts;
    size_t ix;                     /* position in the result */
};

static int
cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    int r = strcmp(x->obj, y->obj);
    return r ? r : (x->ix < y->ix ? -1 : x->ix > y->ix);
}

/* The samples of one query, grouped by object. Strings borrow res. */
struct hits {
    struct prom_result *res;       /* owned */
    struct hit *h;
    size_t n;
};

static void
hits_free(struct hits *h)
{
    prom_result_free(h->res);
    free(h->h);
    memset(h, 0, sizeof *h);
}

/* [*first, *last) of obj's samples, in result order. */
static size_t
hits_range(const struct hits *h, const char *obj, size_t *first)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(h->h[mid].obj, obj) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    size_t end = lo;
    while (end < h->n && !strcmp(h->h[end].obj, obj))
        end++;
    return end - lo;
}

/* One query of a resource request: rendered, sent together with the
 * others of its window (prom_query_many), then grouped by object. */
struct rquery {
    struct engine_resource_req rq;
    const char *obj_label;         /* pod or node label of the samples */
    const char *container_label;   /* or NULL */
    int rc;                        /* 0, or -1 with err in the words of PA's
                                    * log line ("unable to construct query:
                                    * ..." / "unable to execute query: ...") */
    char err[1024];
    struct hits hits;              /* rc 0: the samples by object */
};

#define RQ_ERRLEN 1024

/* Groups the samples of res (taken over) by object into out. */
static int
make_hits(struct prom_result *res, const char *obj_label,
          const char *container_label, struct hits *out, char *err,
          size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->res = res;
    if (res->type != PROM_VECTOR) {
        static const char *const names[] = { "vector", "scalar", "matrix", "string" };
        snprintf(err, errlen, "invalid or empty value of non-vector type (%s) "
                 "returned", names[res->type]);
        goto fail;
    }
    out->h = calloc(res->n + 1, sizeof *out->h);
    if (!out->h) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < res->n; i++) {
        const struct prom_sample *s = &res->samples[i];
        const char *o = prom_sample_label(s, obj_label);
        if (!o)      /* PA: a sample without the resource label is an error */
            continue;
        const char *ct = container_label ? prom_sample_label(s, container_label) : NULL;
        double v = s->value;
        if (isnan(v) || v < 0)          /* PA; +Inf saturates (#30) */
            v = 0;
        out->h[out->n++] = (struct hit){ o, ct ? ct : "", v, s->ts, i };
    }
    qsort(out->h, out->n, sizeof *out->h, cmp_hit);
    return 0;
fail:
    hits_free(out);
    return -1;
}

/* Renders q[0..n) on this thread's engine and runs them concurrently
 * within the request's Prometheus budget (PA runs them in goroutines);
 * sets each q[i].rc, err and hits. Out of memory fails the queries. */
static void
run_queries(struct api_call *c, struct rquery *q, size_t n, double now)
{
    struct buf *text = calloc(n + 1, sizeof *text);
    const char **qs = calloc(n + 1, sizeof *qs);
    size_t *ix = calloc(n + 1, sizeof *ix);
    struct prom_result **outs = calloc(n + 1, sizeof *outs);
    char *errs = malloc((n + 1) * RQ_ERRLEN);
    char msg[512];
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        q[i].rc = -1;
        memset(&q[i].hits, 0, sizeof q[i].hits);
        snprintf(q[i].err, sizeof q[i].err, "out of memory");
    }
    if (!text || !qs || !ix || !outs || !errs)
        goto done;
    for (size_t i = 0; i < n; i++) {
        buf_init(&text[i], 1 << 24);
        if (engine_render_resource(c->thread->engine, &q[i].rq, &text[i], msg,
                                   sizeof msg) != 0) {
            snprintf(q[i].err, sizeof q[i].err, "%s", msg);
            continue;
        }
        qs[m] = text[i].data ? text[i].data : "";
        ix[m++] = i;
    }
    int64_t left = api_remaining_ms(c);
    if (left > c->api->prom_timeout_ms)
        left = c->api->prom_timeout_ms;
    if (left <= 0) {
        for (size_t k = 0; k < m; k++)
            snprintf(q[ix[k]].err, sizeof q[ix[k]].err,
                     "unable to execute query: request deadline exceeded");
        goto done;
    }
    prom_query_many(c->api->prom, c->thread->http, m, qs, now,
                    (double)left / 1000.0, outs, errs, RQ_ERRLEN);
    for (size_t k = 0; k < m; k++) {
        struct rquery *r = &q[ix[k]];
        if (!outs[k]) {
            snprintf(r->err, sizeof r->err, "unable to execute query: %s",
                     errs + k * RQ_ERRLEN);
            continue;
        }
        r->rc = make_hits(outs[k], r->obj_label, r->container_label, &r->hits,
                          r->err, sizeof r->err);
        outs[k] = NULL;
    }
done:
    for (size_t i = 0; text && i < n; i++) {
        const struct resource_trace *t = c->api->resource_trace;
        if (t)           /* explain: what was sent and what came back */
            t->query(t->ctx, &q[i].rq, i == 0, text[i].data, q[i].rc,
                     q[i].err, q[i].hits.res);
        buf_free(&text[i]);
    }
    free(text);
    free(qs);
    free(ix);
    free(outs);
    free(errs);
}

/* -- Object output ----------------------------------------------------- */

static void
write_quantity(struct jsonw *w, struct buf *q, const char *key, double v,
               bool binary)
{
    buf_reset(q);
    int64_t m = quantity_milli(v);
    int rc = binary ? quantity_binary_si(q, m) : quantity_decimal_si(q, m);
    jsonw_kv_string(w, key, rc == 0 && q->data ? q->data : "0");
}

static void
write_usage(struct jsonw *w, struct buf *q, double cpu, double mem)
{
    jsonw_key(w, "usage");
    jsonw_map_open(w);
    write_quantity(w, q, "cpu", cpu, false);
    write_quantity(w, q, "memory", mem, true);
    jsonw_map_close(w);
}

/* RFC 3339 text of the last time formatted: the creation time is the same
 * for every object of a response and sample times nearly always are, so a
 * 5,000-pod answer formats each once instead of 10,000 times. */
struct stamp {
    double t;
    bool set;
    char text[40];
};

static const char *
stamp_text(struct stamp *st, struct buf *q, double t)
{
    if (st->set && st->t == t)
        return st->text;
    buf_reset(q);
    if (quantity_rfc3339(q, t) != 0 || !q->data)
        snprintf(st->text, sizeof st->text, "1970-01-01T00:00:00Z");
    else
        snprintf(st->text, sizeof st->text, "%s", q->data);
    st->t = t;
    st->set = true;
    return st->text;
}

/* Opens an object and writes TypeMeta (single GETs only), metadata,
 * timestamp and window; the caller adds usage or containers and closes.
 * created/sampled: per-response caches of the two timestamps. */
static void
write_head(struct jsonw *w, struct buf *q, const char *kind,
           const struct kcache_obj *o, bool pod, double now, double ts,
           const char *window, struct stamp *created, struct stamp *sampled)
{
    jsonw_map_open(w);
    if (kind) {
        jsonw_kv_string(w, "kind", kind);
        jsonw_kv_string(w, "apiVersion", GROUP_VERSION);
    }
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_kv_string(w, "name", o->name);
    if (pod && *o->namespace)
        jsonw_kv_string(w, "namespace", o->namespace);
    jsonw_kv_string(w, "creationTimestamp", stamp_text(created, q, now));
    if (o->nlabels) {
        jsonw_key(w, "labels");
        jsonw_map_open(w);
        for (size_t i = 0; i < o->nlabels; i++)
            jsonw_kv_string(w, o->label_keys[i], o->label_values[i]);
        jsonw_map_close(w);
    }
    jsonw_map_close(w);
    jsonw_kv_string(w, "timestamp", stamp_text(sampled, q, ts));
    jsonw_kv_string(w, "window", window);
}

struct container {
    const char *name;
    double cpu, mem;
};

static int
cmp_container(const void *a, const void *b)
{
    return strcmp(((const struct container *)a)->name,
                  ((const struct container *)b)->name);
}

static struct container *
container_slot(struct container *v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    v[*n] = (struct container){ name, 0, 0 };
    return &v[(*n)++];
}

/* -- Pods ---------------------------------------------------------------- */

struct rlabels {
    struct engine_resource_labels cpu, mem;
    char window[64];
};

static int
load_labels(struct api_call *c, struct rlabels *l, char *err, size_t errlen)
{
    if (engine_resource_labels(c->thread->engine, "cpu", &l->cpu, err, errlen) ||
        engine_resource_labels(c->thread->engine, "memory", &l->mem, err, errlen))
        return -1;
    struct buf b;
    buf_init(&b, sizeof l->window - 1);
    if (quantity_go_duration(&b, l->cpu.window_ms) != 0 || !b.data)
        snprintf(l->window, sizeof l->window, "0s");
    else
        snprintf(l->window, sizeof l->window, "%s", b.data);
    buf_free(&b);
    return 0;
}

/* Writes a PodMetrics for each pod of pods[0..n) (one namespace) that
 * has both CPU (cpu) and memory (mem) samples (spec-rules §7.4). Returns
 * the number written; a failed query skips the whole namespace (logged
 * and counted, never an error to the client). -1 only for out of memory. */
static long
pods_write(const struct rlabels *l, const struct kcache_obj *const *pods,
           size_t n, double now, struct jsonw *w, bool single,
           const struct rquery *cpuq, const struct rquery *memq)
{
    const char *ns = pods[0]->namespace;
    const struct hits *cpu = &cpuq->hits, *mem = &memq->hits;
    struct container *ct = NULL;
    struct stamp created = {0}, sampled = {0};
    struct buf q;
    long emitted = -1;
    buf_init(&q, 256);
    if (cpuq->rc != 0 || memq->rc != 0) {
        metrics_add(METRICS_RESOURCE_FAILURES, "pods", NULL, 1);
        LOGE("unable to fetch metrics for pods in namespace \"%s\", skipping: "
             "unable to fetch pod %s metrics: %s", ns,
             cpuq->rc != 0 ? "CPU" : "memory",
             cpuq->rc != 0 ? cpuq->err : memq->err);
        emitted = 0;
        goto done;
    }
    ct = calloc(cpu->n + mem->n + 1, sizeof *ct);
    if (!ct)
        goto done;
    emitted = 0;
    for (size_t i = 0; i < n; i++) {
        size_t cf, mf;
        size_t cn = hits_range(cpu, pods[i]->name, &cf);
        size_t mn = hits_range(mem, pods[i]->name, &mf);
        if (!cn || !mn) {
            LOGV(2, "missing %s for pod \"%s/%s\", skipping",
                 cn ? "memory" : "CPU", ns, pods[i]->name);
            continue;
        }
        size_t nct = 0;
        double ts = INFINITY;
        /* result order within each list: the last sample of a container wins */
        for (size_t k = cf; k < cf + cn; k++) {
            container_slot(ct, &nct, cpu->h[k].container)->cpu = cpu->h[k].value;
            if (cpu->h[k].ts < ts)
                ts = cpu->h[k].ts;
        }
        for (size_t k = mf; k < mf + mn; k++) {
            container_slot(ct, &nct, mem->h[k].container)->mem = mem->h[k].value;
            if (mem->h[k].ts < ts)
                ts = mem->h[k].ts;
        }
        qsort(ct, nct, sizeof *ct, cmp_container);     /* decisions #32 */
        write_head(w, &q, single ? "PodMetrics" : NULL, pods[i], true, now,
                   ts, l->window, &created, &sampled);
        jsonw_key(w, "containers");
        jsonw_array_open(w);
        for (size_t k = 0; k < nct; k++) {
            jsonw_map_open(w);
            jsonw_kv_string(w, "name", ct[k].name);
            write_usage(w, &q, ct[k].cpu, ct[k].mem);
            jsonw_map_close(w);
        }
        jsonw_array_close(w);
        jsonw_map_close(w);
        emitted++;
    }
done:
    buf_free(&q);
    free(ct);
    return emitted;
}

/* Namespaces whose queries go out together in a pod list: their CPU and
 * memory queries run concurrently; bounded so that a list of many
 * namespaces holds a window of answers, not all of them. */
#define NS_WINDOW 8

/* The CPU and memory queries of the pods names[0..n) of namespace ns. */
static void
pods_queries(const struct rlabels *l, const char *ns, const char **names,
             size_t n, struct rquery *q)
{
    memset(q, 0, 2 * sizeof *q);
    q[0].rq = (struct engine_resource_req){ "cpu", false, ns, names, n };
    q[0].obj_label = l->cpu.pod;
    q[0].container_label = l->cpu.container;
    q[1].rq = (struct engine_resource_req){ "memory", false, ns, names, n };
    q[1].obj_label = l->mem.pod;
    q[1].container_label = l->mem.container;
}

/* Queries and writes pods[0..n), sorted by namespace: NS_WINDOW
 * namespaces at a time. Returns the number written, -1 for out of
 * memory. */
static long
pods_list_write(struct api_call *c, const struct rlabels *l,
                const struct kcache_obj *const *pods, size_t n, double now,
                struct jsonw *w, bool single)
{
    const char **names = calloc(n + 1, sizeof *names);
    struct rquery *q = calloc(2 * NS_WINDOW, sizeof *q);
    size_t first[NS_WINDOW], count[NS_WINDOW];
    long emitted = -1, total = 0;

    if (!names || !q)
        goto done;
    for (size_t i = 0; i < n; i++)
        names[i] = pods[i]->name;
    for (size_t i = 0; i < n;) {
        size_t nw = 0;
        for (; nw < NS_WINDOW && i < n; nw++) {
            size_t j = i + 1;
            while (j < n && !strcmp(pods[j]->namespace, pods[i]->namespace))
                j++;
            first[nw] = i;
            count[nw] = j - i;
            pods_queries(l, pods[i]->namespace, names + i, j - i, &q[2 * nw]);
            i = j;
        }
        run_queries(c, q, 2 * nw, now);
        long got = 0;
        for (size_t k = 0; k < nw && got >= 0; k++) {
            got = pods_write(l, pods + first[k], count[k], now, w, single,
                             &q[2 * k], &q[2 * k + 1]);
            total += got;
        }
        for (size_t k = 0; k < 2 * nw; k++)
            hits_free(&q[k].hits);
        if (got < 0)
            goto done;
    }
    emitted = total;
done:
    free(names);
    free(q);
    return emitted;
}

static struct kcache_snap *
acquire(struct api_call *c, const char *resource, const char *fsel,
        char *err, size_t errlen)
{
    long wait = (long)api_remaining_ms(c);
    if (wait > KCACHE_FIRST_WAIT_MS)
        wait = KCACHE_FIRST_WAIT_MS;
    if (wait < 0)
        wait = 0;
    return kcache_acquire(c->api->kcache, "", "v1", resource, fsel, wait,
                          err, errlen);
}

static const char *
obj_label(void *ctx, const char *key)
{
    return kcache_obj_label(ctx, key);
}

static bool
watch_requested(struct api_call *c)
{
    const char *v = server_request_query(c->req, "watch");
    if (!v)
        return false;
    /* strconv.ParseBool's true spellings */
    return !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "T") ||
           !strcmp(v, "true") || !strcmp(v, "TRUE") || !strcmp(v, "True");
}

/* The list options of a LIST: labelSelector, then fieldSelector (Go
 * decodes them in that order), then watch. 0, or -1 with resp written. */
static int
list_options(struct api_call *c, const char *resource, struct selector **sel,
             struct fsel *fs)
{
    char err[1024];
    const char *ls = server_request_query(c->req, "labelSelector");
    const char *f = server_request_query(c->req, "fieldSelector");
    *sel = selector_parse(ls ? ls : "", ls ? strlen(ls) : 0, err, sizeof err);
    if (!*sel) {
        status_bad_request(c->resp, err);
        return -1;
    }
    if (fsel_parse(f ? f : "", fs, err, sizeof err) != 0) {
        selector_free(*sel);
        *sel = NULL;
        status_bad_request(c->resp, err);
        return -1;
    }
    if (watch_requested(c)) {
        char msg[256];
        snprintf(msg, sizeof msg, "watch is not supported on resources of kind "
                 "\"%s.%s\"", resource, GROUP);
        struct status_details d = { .group = GROUP, .kind = resource };
        status_write(c->resp, 405, "MethodNotAllowed", msg, &d);
        selector_free(*sel);
        *sel = NULL;
        fsel_free(fs);
        return -1;
    }
    return 0;
}

static struct jsonw *
open_list(const char *kind)
{
    struct jsonw *w = jsonw_new(0);
    if (!w)
        return NULL;
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", kind);
    jsonw_kv_string(w, "apiVersion", GROUP_VERSION);
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_map_close(w);
    jsonw_key(w, "items");
    jsonw_array_open(w);
    return w;
}

static void
close_list(struct api_call *c, struct jsonw *w)
{
    jsonw_array_close(w);
    jsonw_map_close(w);
    api_send_json(c, 200, w);
}

/* GET pods (ns NULL: all namespaces) or namespaces/<ns>/pods. */
static void
list_pods(struct api_call *c, const char *ns)
{
    struct selector *sel = NULL;
    struct fsel fs = {0};
    struct kcache_snap *snap = NULL;
    const struct kcache_obj **pods = NULL;
    struct jsonw *w = NULL;
    struct rlabels l;
    char err[1024];
    if (list_options(c, "pods", &sel, &fs) != 0)
        return;
    if (load_labels(c, &l, err, sizeof err) != 0) {
        status_internal_error(c->resp, err);
        goto done;
    }
    snap = acquire(c, "pods", "status.phase=Running", err, sizeof err);
    if (!snap) {
        LOGE("unable to list pods: %s", err);
        status_internal_error(c->resp, "unable to list pods");
        goto done;
    }
    size_t first = 0, last = snap->n, n = 0;
    if (ns)
        kcache_ns_range(snap, ns, &first, &last);
    pods = calloc(last - first + 1, sizeof *pods);
    w = open_list("PodMetricsList");
    if (!pods || !w)
        goto oom;
    for (size_t i = first; i < last; i++) {
        const struct kcache_obj *o = &snap->objs[i];
        if (selector_matches(sel, obj_label, (void *)o) && fsel_matches(&fs, o, true))
            pods[n++] = o;
    }
    /* one batch per namespace (the pods are sorted by namespace) */
    if (pods_list_write(c, &l, pods, n, prom_now(), w, false) < 0)
        goto oom;
    close_list(c, w);
    w = NULL;
    goto done;
oom:
    status_internal_error(c->resp, "out of memory");
done:
    jsonw_free(w);
    free(pods);
    kcache_release(snap);
    fsel_free(&fs);
    selector_free(sel);
}

/* GET namespaces/<ns>/pods/<name>. */
static void
get_pod(struct api_call *c, const char *ns, const char *name)
{
    struct kcache_snap *snap = NULL;
    struct jsonw *w = NULL;
    struct rlabels l;
    char err[1024], msg[1024];
    if (load_labels(c, &l, err, sizeof err) != 0) {
        status_internal_error(c->resp, err);
        goto done;
    }
    snap = acquire(c, "pods", "status.phase=Running", err, sizeof err);
    if (!snap) {
        LOGE("unable to list pods: %s", err);
        status_internal_error(c->resp, "unable to list pods");
        goto done;
    }
    long ix = kcache_find(snap, ns, name);
    if (ix < 0) {
        snprintf(msg, sizeof msg, "pods \"%s\" not found", name);
        struct status_details d = { .name = name, .kind = "pods" };
        status_not_found(c->resp, msg, &d);
        goto done;
    }
    const struct kcache_obj *pod = &snap->objs[ix];
    w = jsonw_new(0);
    if (!w) {
        status_internal_error(c->resp, "out of memory");
        goto done;
    }
    long got = pods_list_write(c, &l, &pod, 1, prom_now(), w, true);
    if (got < 0) {
        status_internal_error(c->resp, "out of memory");
        goto done;
    }
    if (got == 0) {
        char full[600];
        snprintf(full, sizeof full, "%s/%s", ns, name);
        snprintf(msg, sizeof msg, "podmetrics.metrics.k8s.io \"%s\" not found", full);
        struct status_details d = { .name = full, .group = GROUP,
                                    .kind = "podmetrics" };
        status_not_found(c->resp, msg, &d);
        goto done;
    }
    api_send_json(c, 200, w);
    w = NULL;
done:
    jsonw_free(w);
    kcache_release(snap);
}

/* -- Nodes ---------------------------------------------------------------- */

/* Queries CPU and memory for nodes[0..n) (concurrently) and writes a
 * NodeMetrics for each node with both; PA uses the first sample of each
 * (spec-rules §7.4). Returns the number written, -1 for out of memory. */
static long
nodes_batch(struct api_call *c, const struct rlabels *l,
            const struct kcache_obj *const *nodes, size_t n, struct jsonw *w,
            bool single)
{
    const char **names = calloc(n + 1, sizeof *names);
    struct rquery *q = calloc(2, sizeof *q);
    struct stamp created = {0}, sampled = {0};
    struct buf qb;
    long emitted = -1;
    double now = prom_now();
    buf_init(&qb, 256);
    if (!names || !q)
        goto done;
    emitted = 0;
    if (n == 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        names[i] = nodes[i]->name;
    q[0].rq = (struct engine_resource_req){ "cpu", true, "", names, n };
    q[0].obj_label = l->cpu.node;
    q[1].rq = (struct engine_resource_req){ "memory", true, "", names, n };
    q[1].obj_label = l->mem.node;
    run_queries(c, q, 2, now);
    if (q[0].rc != 0 || q[1].rc != 0) {
        metrics_add(METRICS_RESOURCE_FAILURES, "nodes", NULL, 1);
        LOGE("failed querying node metrics: unable to fetch node %s metrics: %s",
             q[0].rc != 0 ? "CPU" : "memory", q[0].rc != 0 ? q[0].err : q[1].err);
        goto done;
    }
    const struct hits *cpu = &q[0].hits, *mem = &q[1].hits;
    for (size_t i = 0; i < n; i++) {
        size_t cf, mf;
        size_t cn = hits_range(cpu, nodes[i]->name, &cf);
        size_t mn = hits_range(mem, nodes[i]->name, &mf);
        if (!cn || !mn) {
            LOGV(2, "missing %s for node \"%s\", skipping", cn ? "memory" : "CPU",
                 nodes[i]->name);
            continue;
        }
        const struct hit *hc = &cpu->h[cf], *hm = &mem->h[mf];
        double ts = hc->ts < hm->ts ? hc->ts : hm->ts;
        write_head(w, &qb, single ? "NodeMetrics" : NULL, nodes[i], false, now,
                   ts, l->window, &created, &sampled);
        write_usage(w, &qb, hc->value, hm->value);
        jsonw_map_close(w);
        emitted++;
    }
done:
    buf_free(&qb);
    if (q) {
        hits_free(&q[0].hits);
        hits_free(&q[1].hits);
    }
    free(q);
    free(names);
    return emitted;
}

static void
list_nodes(struct api_call *c)
{
    struct selector *sel = NULL;
    struct fsel fs = {0};
    struct kcache_snap *snap = NULL;
    const struct kcache_obj **nodes = NULL;
    struct jsonw *w = NULL;
    struct rlabels l;
    char err[1024];
    if (list_options(c, "nodes", &sel, &fs) != 0)
        return;
    if (load_labels(c, &l, err, sizeof err) != 0) {
        status_internal_error(c->resp, err);
        goto done;
    }
    snap = acquire(c, "nodes", NULL, err, sizeof err);
    if (!snap) {
        LOGE("unable to list nodes: %s", err);
        status_internal_error(c->resp, "unable to list nodes");
        goto done;
    }
    size_t n = 0;
    nodes = calloc(snap->n + 1, sizeof *nodes);
    w = open_list("NodeMetricsList");
    if (!nodes || !w)
        goto oom;
    for (size_t i = 0; i < snap->n; i++) {
        const struct kcache_obj *o = &snap->objs[i];
        if (selector_matches(sel, obj_label, (void *)o) && fsel_matches(&fs, o, false))
            nodes[n++] = o;
    }
    if (nodes_batch(c, &l, nodes, n, w, false) < 0)
        goto oom;
    close_list(c, w);
    w = NULL;
    goto done;
oom:
    status_internal_error(c->resp, "out of memory");
done:
    jsonw_free(w);
    free(nodes);
    kcache_release(snap);
    fsel_free(&fs);
    selector_free(sel);
}

static void
get_node(struct api_call *c, const char *name)
{
    struct kcache_snap *snap = NULL;
    struct jsonw *w = NULL;
    struct rlabels l;
    char err[1024], msg[1024];
    if (load_labels(c, &l, err, sizeof err) != 0) {
        status_internal_error(c->resp, err);
        goto done;
    }
    snap = acquire(c, "nodes", NULL, err, sizeof err);
    if (!snap) {
        LOGE("unable to list nodes: %s", err);
        status_internal_error(c->resp, "unable to list nodes");
        goto done;
    }
    long ix = kcache_find(snap, "", name);
    if (ix < 0) {
        snprintf(msg, sizeof msg, "node \"%s\" not found", name);
        struct status_details d = { .name = name, .kind = "node" };
        status_not_found(c->resp, msg, &d);
        goto done;
    }
    const struct kcache_obj *node = &snap->objs[ix];
    w = jsonw_new(0);
    if (!w) {
        status_internal_error(c->resp, "out of memory");
        goto done;
    }
    long got = nodes_batch(c, &l, &node, 1, w, true);
    if (got < 0) {
        status_internal_error(c->resp, "out of memory");
        goto done;
    }
    if (got == 0) {
        snprintf(msg, sizeof msg, "nodemetrics.metrics.k8s.io \"%s\" not found",
                 name);
        struct status_details d = { .name = name, .group = GROUP,
                                    .kind = "nodemetrics" };
        status_not_found(c->resp, msg, &d);
        goto done;
    }
    api_send_json(c, 200, w);
    w = NULL;
done:
    jsonw_free(w);
    kcache_release(snap);
}

/* -- Routing ---------------------------------------------------------------- */

void
resource_handle(struct api_call *c, const char *const *segs, size_t n)
{
    if (n == 1 && !strcmp(segs[0], "nodes"))
        list_nodes(c);
    else if (n == 2 && !strcmp(segs[0], "nodes"))
        get_node(c, segs[1]);
    else if (n == 1 && !strcmp(segs[0], "pods"))
        list_pods(c, NULL);
    else if (n == 3 && !strcmp(segs[0], "namespaces") && !strcmp(segs[2], "pods"))
        list_pods(c, segs[1]);
    else if (n == 4 && !strcmp(segs[0], "namespaces") && !strcmp(segs[2], "pods"))
        get_pod(c, segs[1], segs[3]);
    else
        status_route_not_found(c->resp);
}
