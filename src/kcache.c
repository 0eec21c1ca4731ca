/* kcache.c: metadata-only LIST+WATCH caches (see kcache.h).
 * Uses kube.h (kube_json_parse: yajl's tree parser, invalid UTF-8
 * repaired as Go reads it), http_client.h, pthreads.
 * Ownership: each cache thread owns its working store (a sorted array of
 * heap objects) and its http_client; nobody else touches them. Published
 * snapshots are single allocations (one arena), refcounted atomically; the
 * cache holds one reference to its current snapshot, each reader one more.
 * Locking: set->mu guards the list of caches; cache->mu guards snap,
 * synced, last_err and stop (cond `cv` wakes waiting readers and the
 * thread's back-off sleeps). Never lock set->mu while holding cache->mu. */
#include "kcache.h"
#include "log.h"
#include "metrics.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#ifndef PAGE_LIMIT
#define PAGE_LIMIT 500   /* what client-go reflectors ask for */
#endif
#define WATCH_TIMEOUT_S 300
#define PUBLISH_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define LINE_MAX_BYTES (16u << 20)

static const char *const list_headers[] = {
    "Accept: application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json",
    NULL
};
static const char *const watch_headers[] = {
    "Accept: application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json",
    NULL
};

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- Working store (thread-private) ----------------------------------------- */

struct wobj {
    char *ns, *name;
    size_t nl;
    char **keys, **vals;    /* sorted by key */
};

struct store {
    struct wobj **v;
    size_t n, cap;
};

static void
wobj_free(struct wobj *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nl; i++) {
        free(o->keys[i]);
        free(o->vals[i]);
    }
    free(o->keys);
    free(o->vals);
    free(o->ns);
    free(o->name);
    free(o);
}

static void
store_clear(struct store *s)
{
    for (size_t i = 0; i < s->n; i++)
        wobj_free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int
cmp_key(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
    int c = strcmp(ns1, ns2);
    return c ? c : strcmp(n1, n2);
}

/* Index of (ns, name) if present (returns 1), else the insertion point. */
static int
store_find(const struct store *s, const char *ns, const char *name, size_t *at)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(s->v[mid]->ns, s->v[mid]->name, ns, name);
        if (c == 0) {
            *at = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return 0;
}

static bool
same_labels(const struct wobj *a, const struct wobj *b)
{
    if (a->nl != b->nl)
        return false;
    for (size_t i = 0; i < a->nl; i++)
        if (strcmp(a->keys[i], b->keys[i]) || strcmp(a->vals[i], b->vals[i]))
            return false;
    return true;
}

/* Takes ownership of o (freed on failure). Returns 1 when the store
 * changed, 0 when an identical object was already there (most MODIFIED
 * events only touch status: no snapshot rebuild for those), -1 on OOM. */
static int
store_put(struct store *s, struct wobj *o)
{
    size_t at;
    if (store_find(s, o->ns, o->name, &at)) {
        bool same = same_labels(s->v[at], o);
        wobj_free(s->v[at]);
        s->v[at] = o;
        return same ? 0 : 1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct wobj **nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv) {
            wobj_free(o);
            return -1;
        }
        s->v = nv;
        s->cap = cap;
    }
    memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof(*s->v));
    s->v[at] = o;
    s->n++;
    return 1;
}

/* Returns whether (ns, name) was there. */
static bool
store_del(struct store *s, const char *ns, const char *name)
{
    size_t at;
    if (!store_find(s, ns, name, &at))
        return false;
    wobj_free(s->v[at]);
    memmove(&s->v[at], &s->v[at + 1], (s->n - at - 1) * sizeof(*s->v));
    s->n--;
    return true;
}

static yajl_val
jpath(yajl_val v, const char *a, const char *b, yajl_type t)
{
    const char *p[] = {a, b, NULL};
    return yajl_tree_get(v, p, t);
}

static const char *
jstr2(yajl_val v, const char *a, const char *b)
{
    yajl_val s = jpath(v, a, b, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

/* An item's metadata as a new working object; NULL when it has no name
 * (skipped) or on allocation failure (*oom set). */
static struct wobj *
wobj_from_json(yajl_val item, bool *oom)
{
    const char *ns = jstr2(item, "metadata", "namespace");
    const char *name = jstr2(item, "metadata", "name");
    yajl_val labels = jpath(item, "metadata", "labels", yajl_t_object);
    struct wobj *o;

    *oom = false;
    if (!name)
        return NULL;
    if (!(o = calloc(1, sizeof(*o))))
        goto oom;
    if (!(o->ns = strdup(ns ? ns : "")) || !(o->name = strdup(name)))
        goto oom;
    size_t n = labels ? YAJL_GET_OBJECT(labels)->len : 0;
    if (n) {
        if (!(o->keys = calloc(n, sizeof(char *)))
            || !(o->vals = calloc(n, sizeof(char *))))
            goto oom;
        for (size_t i = 0; i < n; i++) {
            yajl_val v = YAJL_GET_OBJECT(labels)->values[i];
            const char *k = YAJL_GET_OBJECT(labels)->keys[i];
            const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";
            /* insertion sort: label maps are small */
            size_t j = o->nl;
            char *kc = strdup(k), *vc = strdup(s);
            if (!kc || !vc) {
                free(kc);
                free(vc);
                goto oom;
            }
            while (j > 0 && strcmp(o->keys[j - 1], kc) > 0) {
                o->keys[j] = o->keys[j - 1];
                o->vals[j] = o->vals[j - 1];
                j--;
            }
            if (j > 0 && strcmp(o->keys[j - 1], kc) == 0) {
                /* a key repeated in the JSON object: the last one wins,
                 * as with Go's decoder; close the gap opened above */
                free(kc);
                free(o->vals[j - 1]);
                o->vals[j - 1] = vc;
                for (size_t m = j; m < o->nl; m++) {
                    o->keys[m] = o->keys[m + 1];
                    o->vals[m] = o->vals[m + 1];
                }
                continue;
            }
            o->keys[j] = kc;
            o->vals[j] = vc;
            o->nl++;
        }
    }
    return o;
oom:
    *oom = true;
    wobj_free(o);
    return NULL;
}

/* -- Snapshots -------------------------------------------------------------- */

/* One allocation: the snap, the object array, the label pointer arrays,
 * then the strings. Freed with a single free(). */
static struct kcache_snap *
snap_build(const struct store *s, unsigned long gen)
{
    size_t nl = 0, strs = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct wobj *o = s->v[i];
        nl += o->nl;
        strs += strlen(o->ns) + strlen(o->name) + 2;
        for (size_t j = 0; j < o->nl; j++)
            strs += strlen(o->keys[j]) + strlen(o->vals[j]) + 2;
    }
    size_t head = sizeof(struct kcache_snap)
                  + s->n * sizeof(struct kcache_obj)
                  + 2 * nl * sizeof(const char *);
    char *mem = malloc(head + strs);
    if (!mem)
        return NULL;
    struct kcache_snap *snap = (struct kcache_snap *)mem;
    struct kcache_obj *objs = (struct kcache_obj *)(snap + 1);
    const char **ptrs = (const char **)(objs + s->n);
    char *sp = mem + head;

#define COPY(dst, src) do { size_t l_ = strlen(src) + 1; \
        memcpy(sp, (src), l_); (dst) = sp; sp += l_; } while (0)
    for (size_t i = 0; i < s->n; i++) {
        const struct wobj *o = s->v[i];
        struct kcache_obj *d = &objs[i];
        COPY(d->namespace, o->ns);
        COPY(d->name, o->name);
        d->nlabels = o->nl;
        d->label_keys = ptrs;
        d->label_values = ptrs + o->nl;
        for (size_t j = 0; j < o->nl; j++) {
            COPY(ptrs[j], o->keys[j]);
            COPY(ptrs[o->nl + j], o->vals[j]);
        }
        ptrs += 2 * o->nl;
    }
#undef COPY
    snap->n = s->n;
    snap->objs = objs;
    snap->generation = gen;
    atomic_init(&snap->refs_, 1);
    return snap;
}

void
kcache_release(struct kcache_snap *snap)
{
    if (!snap)
        return;
    if (atomic_fetch_sub(&snap->refs_, 1) == 1)
        free(snap);
}

size_t
kcache_ns_range(const struct kcache_snap *snap, const char *ns,
                size_t *first, size_t *last)
{
    size_t lo = 0, hi = snap->n;
    while (lo < hi) {   /* first object with namespace >= ns */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(snap->objs[mid].namespace, ns) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    hi = snap->n;
    while (lo < hi) {   /* first object with namespace > ns */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(snap->objs[mid].namespace, ns) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *last = lo;
    return *last - *first;
}

long
kcache_find(const struct kcache_snap *snap, const char *ns, const char *name)
{
    size_t lo = 0, hi = snap->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kcache_obj *o = &snap->objs[mid];
        int c = cmp_key(o->namespace, o->name, ns, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const char *
kcache_obj_label(const struct kcache_obj *obj, const char *key)
{
    size_t lo = 0, hi = obj->nlabels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(obj->label_keys[mid], key);
        if (c == 0)
            return obj->label_values[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* -- Caches ----------------------------------------------------------------- */

struct kcache {
    struct kcache *next;
    struct kcache_set *set;
    char *group, *version, *resource, *fsel;   /* fsel: "" when none */
    char *base;          /* "/api/v1/pods" or "/apis/g/v/r" */
    pthread_t thr;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kcache_snap *snap;   /* current; one reference held here */
    bool synced;                /* first LIST done */
    bool stop;
    char last_err[256];
    unsigned long gen;
    /* thread-private */
    struct store st;
    char *rv;                   /* resourceVersion to watch from */
    bool dirty;                 /* store changed since the last publish */
    bool listed_once;           /* a LIST has succeeded */
    int64_t last_pub;
};

struct kcache_set {
    struct kube_client *kc;
    pthread_mutex_t mu;
    struct kcache *caches;
    _Atomic unsigned long requests;
};

static void
publish(struct kcache *c)
{
    struct kcache_snap *snap = snap_build(&c->st, c->gen + 1);
    if (!snap) {
        LOGE("kcache %s: out of memory building a snapshot", c->base);
        return;   /* stay dirty; the next event retries */
    }
    pthread_mutex_lock(&c->mu);
    struct kcache_snap *old = c->snap;
    c->snap = snap;
    c->gen++;
    pthread_mutex_unlock(&c->mu);
    kcache_release(old);
    c->dirty = false;
    c->last_pub = now_ms();
}

static bool
stopping(struct kcache *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Sleeps up to ms, waking early on stop. Returns true when stopping. */
static bool
sleep_or_stop(struct kcache *c, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->stop
           && pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT)
        ;
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static int
cancelled_cb(void *ctx);

/* Builds "<base>?<params>[&fieldSelector=..]". */
static int
make_path(struct kcache *c, struct buf *p, const char *params,
          const char *cont)
{
    if (buf_addf(p, "%s?%s", c->base, params) < 0)
        return -1;
    if (cont && *cont) {
        if (buf_adds(p, "&continue=") < 0
            || http_query_escape(p, cont, strlen(cont)) < 0)
            return -1;
    }
    if (*c->fsel) {
        if (buf_adds(p, "&fieldSelector=") < 0
            || http_query_escape(p, c->fsel, strlen(c->fsel)) < 0)
            return -1;
    }
    return 0;
}

/* Full paginated LIST into a fresh store; on success replaces c->st and
 * c->rv. */
static int
do_list(struct kcache *c, struct http_client *hc, char *err, size_t errlen)
{
    struct store fresh = {0};
    char *cont = NULL, *rv = NULL;
    int rc = -1;

    do {
        struct buf path;
        struct http_req req = {0};
        struct http_resp resp;
        char params[64], perr[256];
        yajl_val doc = NULL;

        buf_init(&path, 64 * 1024);
        /* Like a client-go reflector: the very first LIST may be served
         * from the apiserver's watch cache (resourceVersion=0, cheap);
         * re-lists after errors ask for a consistent read. A continue
         * token excludes resourceVersion. */
        if (!c->listed_once && !cont)
            snprintf(params, sizeof(params), "limit=%d&resourceVersion=0",
                     PAGE_LIMIT);
        else
            snprintf(params, sizeof(params), "limit=%d", PAGE_LIMIT);
        if (make_path(c, &path, params, cont) < 0) {
            seterr(err, errlen, "request path too long");
            goto done;
        }
        req.headers = list_headers;
        req.ctx = c;
        req.cancelled = cancelled_cb;
        atomic_fetch_add(&c->set->requests, 1);
        double t0 = metrics_now();
        int r = kube_do(c->set->kc, hc, path.data, &req, &resp, err, errlen);
        metrics_observe(METRICS_KUBE_DURATION, "list", NULL, metrics_now() - t0);
        if (r < 0 || resp.status != 200) metrics_add(METRICS_KUBE_ERRORS, "list", NULL, 1);
        buf_free(&path);
        if (r < 0) {
            buf_free(&resp.body);
            goto done;
        }
        if (resp.status != 200) {
            seterr(err, errlen, "list %s: HTTP %ld: %.120s", c->base,
                   resp.status, resp.body.data ? resp.body.data : "");
            buf_free(&resp.body);
            goto done;
        }
        doc = kube_json_parse(resp.body.data ? resp.body.data : "", perr,
                              sizeof(perr));
        buf_free(&resp.body);
        if (!doc) {
            seterr(err, errlen, "list %s: invalid JSON: %s", c->base, perr);
            goto done;
        }
        const char *prv = jstr2(doc, "metadata", "resourceVersion");
        const char *pc = jstr2(doc, "metadata", "continue");
        free(rv);
        free(cont);
        rv = strdup(prv ? prv : "");
        cont = pc && *pc ? strdup(pc) : NULL;
        const char *ip[] = {"items", NULL};
        yajl_val items = yajl_tree_get(doc, ip, yajl_t_array);
        bool oom = !rv || (pc && *pc && !cont);
        for (size_t i = 0; !oom && items && i < YAJL_GET_ARRAY(items)->len;
             i++) {
            struct wobj *o = wobj_from_json(YAJL_GET_ARRAY(items)->values[i],
                                            &oom);
            if (o && store_put(&fresh, o) < 0)
                oom = true;
        }
        yajl_tree_free(doc);
        if (oom) {
            seterr(err, errlen, "out of memory");
            goto done;
        }
    } while (cont);
    store_clear(&c->st);
    c->st = fresh;
    memset(&fresh, 0, sizeof(fresh));
    free(c->rv);
    c->rv = rv;
    rv = NULL;
    c->listed_once = true;
    rc = 0;
done:
    store_clear(&fresh);
    free(cont);
    free(rv);
    return rc;
}

/* Streaming state of one WATCH. */
struct wctx {
    struct kcache *c;
    struct buf line;
    bool relist;        /* ERROR event or unusable data: re-LIST */
    char err[256];
};

static void
maybe_publish(struct kcache *c)
{
    if (c->dirty && now_ms() - c->last_pub >= PUBLISH_MIN_MS)
        publish(c);
}

/* Handles one JSON line of the watch stream. Returns -1 to abort. */
static int
watch_event(struct wctx *w, const char *text)
{
    struct kcache *c = w->c;
    char perr[128];
    int rc = 0;
    yajl_val ev = kube_json_parse(text, perr, sizeof(perr));
    if (!ev) {
        seterr(w->err, sizeof(w->err), "bad watch event: %s", perr);
        w->relist = true;
        return -1;
    }
    const char *tp[] = {"type", NULL}, *op[] = {"object", NULL};
    yajl_val t = yajl_tree_get(ev, tp, yajl_t_string);
    yajl_val obj = yajl_tree_get(ev, op, yajl_t_object);
    const char *type = t ? YAJL_GET_STRING(t) : "";
    if (!strcmp(type, "ERROR")) {
        const char *cp[] = {"object", "code", NULL};
        yajl_val code = yajl_tree_get(ev, cp, yajl_t_number);
        const char *msg = jstr2(obj, "message", NULL);
        seterr(w->err, sizeof(w->err), "watch error %lld: %s",
               code && YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : 0LL,
               msg ? msg : "");
        w->relist = true;
        rc = -1;
        goto done;
    }
    if (!obj)
        goto done;
    const char *rv = jstr2(obj, "metadata", "resourceVersion");
    if (rv) {
        char *n = strdup(rv);
        if (n) {
            free(c->rv);
            c->rv = n;
        }
    }
    bool added = !strcmp(type, "ADDED") || !strcmp(type, "MODIFIED");
    if (added) {
        bool oom;
        int changed = 0;
        struct wobj *o = wobj_from_json(obj, &oom);
        if (oom || (o && (changed = store_put(&c->st, o)) < 0)) {
            seterr(w->err, sizeof(w->err), "out of memory");
            w->relist = true;
            rc = -1;
            goto done;
        }
        c->dirty = c->dirty || changed > 0;
    } else if (!strcmp(type, "DELETED")) {
        const char *ns = jstr2(obj, "metadata", "namespace");
        const char *name = jstr2(obj, "metadata", "name");
        if (name && store_del(&c->st, ns ? ns : "", name))
            c->dirty = true;
    }
    /* BOOKMARK: only the resourceVersion moves */
    maybe_publish(c);
done:
    yajl_tree_free(ev);
    return rc;
}

static int
on_watch_data(void *ctx, const char *p, size_t n)
{
    struct wctx *w = ctx;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (buf_add(&w->line, p, take) < 0) {
            seterr(w->err, sizeof(w->err), "watch event too large");
            w->relist = true;
            return 1;
        }
        if (!nl)
            break;
        if (w->line.len && watch_event(w, w->line.data) < 0)
            return 1;
        buf_reset(&w->line);
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

/* Polled by http_client during transfers: flushes coalesced changes and
 * reports stop. Runs on the cache thread. */
static int
cancelled_cb(void *ctx)
{
    struct kcache *c = ctx;
    maybe_publish(c);
    return stopping(c);
}

static int
watch_cancelled(void *ctx)
{
    return cancelled_cb(((struct wctx *)ctx)->c);
}

/* One WATCH. Returns 0 when it ended cleanly (re-watch), 1 when a re-LIST
 * is needed, -1 on a transport/HTTP error (re-LIST after back-off). */
static int
do_watch(struct kcache *c, struct http_client *hc, char *err, size_t errlen)
{
    struct wctx w = {.c = c};
    struct buf path;
    struct http_req req = {0};
    struct http_resp resp;
    char params[512];
    int rc = -1;

    buf_init(&w.line, LINE_MAX_BYTES);
    buf_init(&path, 64 * 1024);
    if (!c->rv || !*c->rv)
        snprintf(params, sizeof(params),
                 "watch=true&allowWatchBookmarks=true&timeoutSeconds=%d",
                 WATCH_TIMEOUT_S);
    else
        snprintf(params, sizeof(params),
                 "watch=true&resourceVersion=%.400s&allowWatchBookmarks=true&timeoutSeconds=%d",
                 c->rv, WATCH_TIMEOUT_S);
    if (make_path(c, &path, params, NULL) < 0) {
        seterr(err, errlen, "request path too long");
        goto done;
    }
    req.headers = watch_headers;
    req.timeout_ms = (WATCH_TIMEOUT_S + 30) * 1000L;
    req.max_body = (size_t)1 << 40;
    req.on_data = on_watch_data;
    req.ctx = &w;
    req.cancelled = watch_cancelled;
    atomic_fetch_add(&c->set->requests, 1);
    /* counted when it starts: a watch may stay open for minutes */
    metrics_add(METRICS_KUBE_WATCHES, NULL, NULL, 1);
    int r = kube_do(c->set->kc, hc, path.data, &req, &resp, err, errlen);
    if (r < 0 && !stopping(c)) metrics_add(METRICS_KUBE_ERRORS, "watch", NULL, 1);
    buf_free(&resp.body);
    if (w.relist) {
        seterr(err, errlen, "%s", w.err);
        rc = 1;
    } else if (r < 0) {
        rc = -1;
    } else if (resp.status == 410) {
        seterr(err, errlen, "watch: 410 Gone");
        rc = 1;
    } else if (resp.status != 200) {
        seterr(err, errlen, "watch %s: HTTP %ld", c->base, resp.status);
        rc = -1;
    } else {
        rc = 0;
    }
done:
    if (c->dirty)
        publish(c);
    buf_free(&w.line);
    buf_free(&path);
    return rc;
}

static void *
cache_thread(void *arg)
{
    struct kcache *c = arg;
    struct http_client *hc = NULL;
    char err[512];
    long backoff = 0;
    bool need_list = true;

    while (!stopping(c)) {
        if (!hc && !(hc = http_client_new(err, sizeof(err))))
            goto failed;
        if (need_list) {
            if (do_list(c, hc, err, sizeof(err)) < 0)
                goto failed;
            publish(c);
            pthread_mutex_lock(&c->mu);
            c->synced = true;
            c->last_err[0] = '\0';
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            LOGV(2, "kcache %s%s%s: listed %zu objects at resourceVersion %s",
                 c->base, *c->fsel ? " fieldSelector=" : "", c->fsel,
                 c->st.n, c->rv);
            need_list = false;
        }
        int64_t started = now_ms();
        int w = do_watch(c, hc, err, sizeof(err));
        if (stopping(c))
            break;
        if (now_ms() - started >= 30000)
            backoff = 0;    /* a long-lived watch: the cache is healthy */
        if (w == 0) {
            backoff = 0;
            continue;
        }
        need_list = true;
        if (w == 1 && backoff == 0) {
            /* expired resourceVersion: routine, re-list at once */
            LOGV(2, "kcache %s: %s; re-listing", c->base, err);
            backoff = 250;
            continue;
        }
    failed:
        LOGW("kcache %s: %s", c->base, err);
        pthread_mutex_lock(&c->mu);
        snprintf(c->last_err, sizeof(c->last_err), "%.255s", err);
        pthread_mutex_unlock(&c->mu);
        backoff = backoff ? backoff * 2 : 500;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        need_list = true;
        if (sleep_or_stop(c, backoff))
            break;
    }
    http_client_free(hc);
    return NULL;
}

static void
cache_free(struct kcache *c)
{
    if (!c)
        return;
    kcache_release(c->snap);
    store_clear(&c->st);
    free(c->rv);
    free(c->group);
    free(c->version);
    free(c->resource);
    free(c->fsel);
    free(c->base);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static struct kcache *
cache_new(struct kcache_set *s, const char *g, const char *v, const char *r,
          const char *fsel, char *err, size_t errlen)
{
    struct kcache *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->set = s;
    size_t bl = strlen(g) + strlen(v) + strlen(r) + 16;
    if (!(c->group = strdup(g)) || !(c->version = strdup(v))
        || !(c->resource = strdup(r)) || !(c->fsel = strdup(fsel))
        || !(c->base = malloc(bl)))
        goto oom;
    if (*g)
        snprintf(c->base, bl, "/apis/%s/%s/%s", g, v, r);
    else
        snprintf(c->base, bl, "/api/%s/%s", v, r);
    if (pthread_create(&c->thr, NULL, cache_thread, c) != 0) {
        seterr(err, errlen, "kcache %s: cannot start thread", c->base);
        cache_free(c);
        return NULL;
    }
    c->started = true;
    return c;
oom:
    seterr(err, errlen, "out of memory");
    cache_free(c);
    return NULL;
}

struct kcache_set *
kcache_set_new(struct kube_client *kc, char *err, size_t errlen)
{
    struct kcache_set *s = calloc(1, sizeof(*s));
    if (!s) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    s->kc = kc;
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->requests, 0);
    return s;
}

void
kcache_set_free(struct kcache_set *s)
{
    if (!s)
        return;
    for (struct kcache *c = s->caches; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    struct kcache *c = s->caches;
    while (c) {
        struct kcache *next = c->next;
        if (c->started)
            pthread_join(c->thr, NULL);
        cache_free(c);
        c = next;
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

unsigned long
kcache_request_count(struct kcache_set *s)
{
    return atomic_load(&s->requests);
}

struct kcache_snap *
kcache_acquire(struct kcache_set *s, const char *group, const char *version,
               const char *resource, const char *field_selector, long wait_ms,
               char *err, size_t errlen)
{
    struct kcache *c;
    struct kcache_snap *snap = NULL;
    const char *fsel = field_selector ? field_selector : "";
    if (!group)
        group = "";

    pthread_mutex_lock(&s->mu);
    for (c = s->caches; c; c = c->next)
        if (!strcmp(c->group, group) && !strcmp(c->version, version)
            && !strcmp(c->resource, resource) && !strcmp(c->fsel, fsel))
            break;
    if (!c) {
        c = cache_new(s, group, version, resource, fsel, err, errlen);
        if (c) {
            c->next = s->caches;
            s->caches = c;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!c)
        return NULL;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->synced && !c->stop
           && pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT)
        ;
    if (c->synced && c->snap) {
        snap = c->snap;
        atomic_fetch_add(&snap->refs_, 1);
    } else {
        seterr(err, errlen, "timed out waiting for the initial list of %s%s%s%s",
               c->base, c->last_err[0] ? " (last error: " : "",
               c->last_err, c->last_err[0] ? ")" : "");
    }
    pthread_mutex_unlock(&c->mu);
    return snap;
}
