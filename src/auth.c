/* auth.c: delegated authentication (see auth.h; spec-server 6.1-6.5).
 * The authenticator's settings (CA pools, header names, allowed names)
 * live in one immutable refcounted snapshot; a request takes a reference
 * under the mutex, the ConfigMap watch thread builds a new snapshot and
 * swaps it in. TokenReview answers are kept in a small direct-mapped cache
 * keyed by SHA-256(token), never the token itself. TokenReview and
 * ConfigMap calls are recorded in the Kubernetes call metrics (metrics.h,
 * through kube_do_measured). */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include "buf.h"
#include "certs.h"
#include "flags.h"
#include "http_client.h"
#include "httputil.h"
#include "jsonw.h"
#include "kube.h"
#include "log.h"
#include "metrics.h"

#define CM_NAMESPACE "kube-system"
#define CM_NAME "extension-apiserver-authentication"
#define CM_LIST_PATH "/api/v1/namespaces/" CM_NAMESPACE "/configmaps" \
    "?fieldSelector=metadata.name%3D" CM_NAME
#define TOKENREVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define MAX_DOC ((size_t)16 << 20)
#define TOKEN_CACHE_SLOTS 1024
#define REVIEW_TIMEOUT_MS 10000

/* -- String lists ------------------------------------------------------ */

struct slist {
    char **v;
    size_t n;
};

static void
slist_free(struct slist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int
slist_add(struct slist *l, const char *s, size_t len)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    char *c;

    if (v == NULL)
        return -1;
    l->v = v;
    if ((c = malloc(len + 1)) == NULL)
        return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    l->v[l->n++] = c;
    return 0;
}

/* Copies the non-blank, trimmed entries of a flag list. */
static int
slist_from_strv(struct slist *l, const struct strv *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *p = s->v[i];
        size_t len;
        while (*p == ' ' || *p == '\t')
            p++;
        len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0 && slist_add(l, p, len) != 0)
            return -1;
    }
    return 0;
}

/* -- user.Info --------------------------------------------------------- */

void
auth_user_free(struct auth_user *u)
{
    if (u == NULL)
        return;
    free(u->name);
    free(u->uid);
    for (size_t i = 0; i < u->ngroups; i++)
        free(u->groups[i]);
    free(u->groups);
    for (size_t i = 0; i < u->nextra; i++) {
        free(u->extra[i].key);
        for (size_t j = 0; j < u->extra[i].nvalues; j++)
            free(u->extra[i].values[j]);
        free(u->extra[i].values);
    }
    free(u->extra);
    memset(u, 0, sizeof *u);
}

bool
auth_user_in_group(const struct auth_user *u, const char *group)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (strcmp(u->groups[i], group) == 0)
            return true;
    return false;
}

static int
user_add_group(struct auth_user *u, const char *g, size_t len)
{
    struct slist l = { u->groups, u->ngroups };
    int rc = slist_add(&l, g, len);
    u->groups = l.v;
    u->ngroups = l.n;
    return rc;
}

static int
user_add_extra(struct auth_user *u, const char *key, const char *value)
{
    struct auth_extra *e = NULL;
    struct slist l;
    int rc;

    for (size_t i = 0; i < u->nextra; i++)
        if (strcmp(u->extra[i].key, key) == 0)
            e = &u->extra[i];
    if (e == NULL) {
        struct auth_extra *x = realloc(u->extra, (u->nextra + 1) * sizeof *x);
        if (x == NULL)
            return -1;
        u->extra = x;
        e = &u->extra[u->nextra];
        memset(e, 0, sizeof *e);
        if ((e->key = strdup(key)) == NULL)
            return -1;
        u->nextra++;
    }
    l.v = e->values;
    l.n = e->nvalues;
    rc = slist_add(&l, value, strlen(value));
    e->values = l.v;
    e->nvalues = l.n;
    return rc;
}

static int
user_copy(struct auth_user *dst, const struct auth_user *src)
{
    memset(dst, 0, sizeof *dst);
    if ((dst->name = strdup(src->name)) == NULL ||
        (dst->uid = strdup(src->uid ? src->uid : "")) == NULL)
        goto fail;
    for (size_t i = 0; i < src->ngroups; i++)
        if (user_add_group(dst, src->groups[i], strlen(src->groups[i])) != 0)
            goto fail;
    for (size_t i = 0; i < src->nextra; i++)
        for (size_t j = 0; j < src->extra[i].nvalues; j++)
            if (user_add_extra(dst, src->extra[i].key,
                               src->extra[i].values[j]) != 0)
                goto fail;
    return 0;
fail:
    auth_user_free(dst);
    return -1;
}

/* -- Settings snapshot ------------------------------------------------- */

struct settings {
    atomic_int refs;
    struct certs_pool *client_ca;   /* NULL: no x509 authentication */
    struct certs_pool *rh_ca;       /* NULL: no request-header auth */
    struct slist user_headers, group_headers, extra_prefixes, allowed;
    char *trust_pem;                /* client CA + request-header CA */
};

static void
settings_unref(struct settings *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    certs_pool_free(s->client_ca);
    certs_pool_free(s->rh_ca);
    slist_free(&s->user_headers);
    slist_free(&s->group_headers);
    slist_free(&s->extra_prefixes);
    slist_free(&s->allowed);
    free(s->trust_pem);
    free(s);
}

/* What the ConfigMap says (every member owned, NULL/empty when absent). */
struct cm_data {
    char *client_ca;
    char *rh_ca;
    struct slist user_headers, group_headers, extra_prefixes, allowed;
};

static void
cm_data_free(struct cm_data *d)
{
    free(d->client_ca);
    free(d->rh_ca);
    slist_free(&d->user_headers);
    slist_free(&d->group_headers);
    slist_free(&d->extra_prefixes);
    slist_free(&d->allowed);
    memset(d, 0, sizeof *d);
}

/* -- Token cache ------------------------------------------------------- */

struct token_entry {
    bool used;
    unsigned char key[32];
    int64_t expires_ms;
    bool authenticated;
    struct auth_user user;          /* when authenticated */
};

struct authn {
    struct kube_client *kc;         /* borrowed */
    int64_t token_ttl_ms;
    /* Fixed parts from the flags. */
    char *client_ca_pem;            /* --client-ca-file contents */
    char *rh_ca_pem;                /* --requestheader-client-ca-file */
    struct slist flag_user, flag_group, flag_extra, flag_allowed;
    bool cm_client_ca;              /* client CA comes from the ConfigMap */
    bool cm_rh;                     /* request-header comes from it */

    pthread_mutex_t mu;             /* guards cur */
    struct settings *cur;

    pthread_mutex_t cache_mu;       /* guards tokens */
    struct token_entry *tokens;     /* TOKEN_CACHE_SLOTS */

    /* ConfigMap watch thread. */
    bool watching;
    pthread_t thread;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    atomic_bool stop;
};

static int64_t
now_ms(void)
{
    return server_now_ms();
}


/* Builds a snapshot from the flags plus the ConfigMap data (cm may be
 * NULL: no ConfigMap content). */
static struct settings *
settings_build(struct authn *a, const struct cm_data *cm, char *err,
               size_t errlen)
{
    struct settings *s = calloc(1, sizeof *s);
    const char *cca = a->client_ca_pem, *rca = a->rh_ca_pem;
    struct buf trust;

    buf_init(&trust, 2 * MAX_DOC);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    if (a->cm_client_ca && cm != NULL)
        cca = cm->client_ca;
    if (a->cm_rh && cm != NULL)
        rca = cm->rh_ca;
    if (cca != NULL && cca[0] != '\0') {
        if ((s->client_ca = certs_pool_new(cca, err, errlen)) == NULL)
            goto fail;
        buf_adds(&trust, cca);
        buf_addc(&trust, '\n');
    }
    if (rca != NULL && rca[0] != '\0') {
        if ((s->rh_ca = certs_pool_new(rca, err, errlen)) == NULL)
            goto fail;
        if (buf_adds(&trust, rca) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (trust.len > 0 && (s->trust_pem = buf_take(&trust, NULL)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const struct slist *u = &a->flag_user, *g = &a->flag_group,
                       *x = &a->flag_extra, *al = &a->flag_allowed;
    if (a->cm_rh && cm != NULL) {
        u = &cm->user_headers;
        g = &cm->group_headers;
        x = &cm->extra_prefixes;
        al = &cm->allowed;
    }
    for (size_t i = 0; i < u->n; i++)
        if (slist_add(&s->user_headers, u->v[i], strlen(u->v[i])) != 0)
            goto oom;
    for (size_t i = 0; i < g->n; i++)
        if (slist_add(&s->group_headers, g->v[i], strlen(g->v[i])) != 0)
            goto oom;
    for (size_t i = 0; i < x->n; i++)
        if (slist_add(&s->extra_prefixes, x->v[i], strlen(x->v[i])) != 0)
            goto oom;
    for (size_t i = 0; i < al->n; i++)
        if (slist_add(&s->allowed, al->v[i], strlen(al->v[i])) != 0)
            goto oom;
    buf_free(&trust);
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    buf_free(&trust);
    settings_unref(s);
    return NULL;
}

static struct settings *
settings_get(struct authn *a)
{
    struct settings *s;

    pthread_mutex_lock(&a->mu);
    s = a->cur;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&a->mu);
    return s;
}

static void
settings_swap(struct authn *a, struct settings *s)
{
    struct settings *old;

    pthread_mutex_lock(&a->mu);
    old = a->cur;
    a->cur = s;
    pthread_mutex_unlock(&a->mu);
    settings_unref(old);
}

/* -- The ConfigMap ----------------------------------------------------- */

/* YAJL_GET_STRING, never NULL. */
static const char *
ystr(yajl_val v)
{
    const char *s = YAJL_GET_STRING(v);
    return s != NULL ? s : "";
}

static const char *
jstr(yajl_val obj, const char *k1, const char *k2)
{
    const char *path[] = { k1, k2, NULL };
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

/* A JSON-array-of-strings value; "" or absent leaves l empty. */
static int
cm_list(yajl_val obj, const char *key, struct slist *l, char *err,
        size_t errlen)
{
    const char *text = jstr(obj, "data", key);
    char perr[256];
    yajl_val v;
    int rc = -1;

    if (text == NULL || text[0] == '\0')
        return 0;
    v = kube_json_parse(text, perr, sizeof perr);
    if (v == NULL || !YAJL_IS_ARRAY(v)) {
        snprintf(err, errlen, "%s: invalid JSON string array", key);
        goto done;
    }
    for (size_t i = 0; i < YAJL_GET_ARRAY(v)->len; i++) {
        yajl_val e = YAJL_GET_ARRAY(v)->values[i];
        if (!YAJL_IS_STRING(e)) {
            snprintf(err, errlen, "%s: invalid JSON string array", key);
            goto done;
        }
        if (slist_add(l, ystr(e), strlen(ystr(e))) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    yajl_tree_free(v);
    return rc;
}

static int
cm_parse(yajl_val obj, struct cm_data *d, char *err, size_t errlen)
{
    const char *c = jstr(obj, "data", "client-ca-file");
    const char *r = jstr(obj, "data", "requestheader-client-ca-file");

    memset(d, 0, sizeof *d);
    if ((c != NULL && (d->client_ca = strdup(c)) == NULL) ||
        (r != NULL && (d->rh_ca = strdup(r)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cm_list(obj, "requestheader-username-headers", &d->user_headers,
                err, errlen) != 0 ||
        cm_list(obj, "requestheader-group-headers", &d->group_headers,
                err, errlen) != 0 ||
        cm_list(obj, "requestheader-extra-headers-prefix",
                &d->extra_prefixes, err, errlen) != 0 ||
        cm_list(obj, "requestheader-allowed-names", &d->allowed, err,
                errlen) != 0)
        goto fail;
    return 0;
fail:
    cm_data_free(d);
    return -1;
}

/* Checks and installs a ConfigMap object's content. */
static int
cm_apply(struct authn *a, yajl_val obj, char *err, size_t errlen)
{
    struct cm_data d;
    struct settings *s;

    if (cm_parse(obj, &d, err, errlen) != 0)
        return -1;
    if (a->cm_rh && (d.rh_ca == NULL || d.rh_ca[0] == '\0')) {
        snprintf(err, errlen, "missing content for CA bundle \"client-ca::"
                 CM_NAMESPACE "::" CM_NAME "::requestheader-client-ca-file\"");
        cm_data_free(&d);
        return -1;
    }
    if (a->cm_client_ca && (d.client_ca == NULL || d.client_ca[0] == '\0'))
        LOGW("missing content for CA bundle \"client-ca::" CM_NAMESPACE
             "::" CM_NAME "::client-ca-file\": x509 client certificates "
             "cannot be authenticated");
    s = settings_build(a, &d, err, errlen);
    cm_data_free(&d);
    if (s == NULL)
        return -1;
    settings_swap(a, s);
    return 0;
}

static int
stop_requested(void *p)
{
    struct authn *a = p;
    return atomic_load(&a->stop);
}

/* LIST: installs the ConfigMap and returns its list resourceVersion
 * (malloc'd). */
static char *
cm_list_once(struct authn *a, struct http_client *hc, char *err,
             size_t errlen)
{
    struct http_req req = { .method = "GET", .cancelled = stop_requested,
                            .ctx = a, .max_body = MAX_DOC };
    struct http_resp resp;
    char perr[256];
    yajl_val doc = NULL;
    char *rv = NULL;

    if (kube_do_measured(a->kc, hc, "configmap", CM_LIST_PATH, &req, &resp,
                         err, errlen) != 0)
        goto done;
    if (resp.status != 200) {
        snprintf(err, errlen, "listing configmaps in %s: HTTP %ld",
                 CM_NAMESPACE, resp.status);
        goto done;
    }
    doc = kube_json_parse(resp.body.data ? resp.body.data : "", perr,
                          sizeof perr);
    const char *items_path[] = { "items", NULL };
    yajl_val items = doc ? yajl_tree_get(doc, items_path, yajl_t_array)
                         : NULL;
    if (items == NULL) {
        snprintf(err, errlen, "listing configmaps in %s: bad JSON",
                 CM_NAMESPACE);
        goto done;
    }
    yajl_val obj = NULL;
    for (size_t i = 0; i < YAJL_GET_ARRAY(items)->len; i++) {
        yajl_val it = YAJL_GET_ARRAY(items)->values[i];
        const char *name = jstr(it, "metadata", "name");
        if (name != NULL && strcmp(name, CM_NAME) == 0)
            obj = it;
    }
    if (obj == NULL) {
        snprintf(err, errlen, "configmaps \"%s\" not found", CM_NAME);
        goto done;
    }
    if (cm_apply(a, obj, err, errlen) != 0)
        goto done;
    const char *v = jstr(doc, "metadata", "resourceVersion");
    if ((rv = strdup(v != NULL ? v : "")) == NULL)
        snprintf(err, errlen, "out of memory");
done:
    yajl_tree_free(doc);
    buf_free(&resp.body);
    return rv;
}

/* Watch stream state: complete lines are parsed as events. */
struct watch_ctx {
    struct authn *a;
    struct buf line;
    char rv[128];
    bool relist;                /* an ERROR event or bad data: list again */
};

static void
watch_event(struct watch_ctx *w, const char *text)
{
    char perr[256], err[512];
    yajl_val ev = kube_json_parse(text, perr, sizeof perr);
    const char *tpath[] = { "type", NULL };
    const char *opath[] = { "object", NULL };
    yajl_val t = ev ? yajl_tree_get(ev, tpath, yajl_t_string) : NULL;
    yajl_val obj = ev ? yajl_tree_get(ev, opath, yajl_t_object) : NULL;

    if (t == NULL || obj == NULL) {
        w->relist = true;
        goto done;
    }
    const char *type = ystr(t);
    const char *rv = jstr(obj, "metadata", "resourceVersion");
    if (strcmp(type, "ERROR") == 0) {
        w->relist = true;
        goto done;
    }
    if (rv != NULL)
        snprintf(w->rv, sizeof w->rv, "%s", rv);
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        const char *name = jstr(obj, "metadata", "name");
        if (name != NULL && strcmp(name, CM_NAME) != 0)
            goto done;
        if (cm_apply(w->a, obj, err, sizeof err) != 0)
            LOGE("updating authentication settings from %s/%s: %s (keeping "
                 "the previous ones)", CM_NAMESPACE, CM_NAME, err);
        else
            LOGV(2, "authentication settings updated from %s/%s",
                 CM_NAMESPACE, CM_NAME);
    } else if (strcmp(type, "DELETED") == 0) {
        /* Go's dynamic CA content keeps serving the last good bundle. */
        LOGW("%s/%s was deleted; keeping the current authentication "
             "settings", CM_NAMESPACE, CM_NAME);
    }
done:
    yajl_tree_free(ev);
}

static int
watch_data(void *p, const char *data, size_t n)
{
    struct watch_ctx *w = p;

    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (buf_addc(&w->line, data[i]) != 0)
                return -1;
            continue;
        }
        if (w->line.len > 0)
            watch_event(w, w->line.data);
        buf_reset(&w->line);
        if (w->relist)
            return -1;
    }
    return 0;
}

static int
watch_cancelled(void *p)
{
    struct watch_ctx *w = p;
    return atomic_load(&w->a->stop);
}

/* Interruptible sleep; true when stop was requested. */
static bool
sleep_ms(struct authn *a, long ms)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->stop_mu);
    if (!atomic_load(&a->stop))
        pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until);
    stop = atomic_load(&a->stop);
    pthread_mutex_unlock(&a->stop_mu);
    return stop;
}

/* The watch thread: WATCH from the last resourceVersion (the API server
 * ends each watch after timeoutSeconds; we re-watch), LIST again after an
 * ERROR event or a broken stream, with backoff up to 30 s on failures. */
static void *
watch_main(void *p)
{
    struct authn *a = p;
    char err[1024];
    struct http_client *hc = http_client_new(err, sizeof err);
    struct watch_ctx w = { .a = a };
    long backoff = 1000;
    char *rv = NULL;

    buf_init(&w.line, MAX_DOC);
    if (hc == NULL) {
        LOGE("authentication ConfigMap watch: %s", err);
        goto done;
    }
    while (!atomic_load(&a->stop)) {
        if (rv == NULL) {
            rv = cm_list_once(a, hc, err, sizeof err);
            if (rv == NULL) {
                if (atomic_load(&a->stop))
                    break;
                LOGE("reading %s/%s: %s", CM_NAMESPACE, CM_NAME, err);
                if (sleep_ms(a, backoff))
                    break;
                backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
                continue;
            }
        }
        struct buf path;
        buf_init(&path, 4096);
        buf_addf(&path, "%s&watch=true&allowWatchBookmarks=true&"
                 "timeoutSeconds=300&resourceVersion=", CM_LIST_PATH);
        http_query_escape(&path, rv, strlen(rv));
        if (path.data == NULL) {
            LOGE("authentication ConfigMap watch: out of memory");
            break;
        }
        snprintf(w.rv, sizeof w.rv, "%s", rv);
        w.relist = false;
        buf_reset(&w.line);
        struct http_req req = {
            .method = "GET", .timeout_ms = 330000, .on_data = watch_data,
            .ctx = &w, .max_body = (size_t)1 << 40,
            /* shares ctx with on_data, so it gets the watch state */
            .cancelled = watch_cancelled,
        };
        struct http_resp resp;
        /* counted as the object caches' watches are (kcache.c): one per
         * WATCH when it starts, an error when it failed or was refused;
         * not timed, a watch lasts as long as the server keeps it open */
        metrics_add(METRICS_KUBE_WATCHES, NULL, NULL, 1);
        int rc = kube_do(a->kc, hc, path.data, &req, &resp, err, sizeof err);
        buf_free(&path);
        buf_free(&resp.body);
        if (atomic_load(&a->stop))
            break;
        if (rc != 0 || resp.status != 200)
            metrics_add(METRICS_KUBE_ERRORS, "watch", NULL, 1);
        if (rc == 0 && resp.status == 200 && !w.relist) {
            /* A clean end of the watch: continue from the last event. */
            char *n = strdup(w.rv);
            if (n != NULL) {
                free(rv);
                rv = n;
            }
            backoff = 1000;
            continue;
        }
        if (!w.relist)
            LOGV(2, "authentication ConfigMap watch ended: %s",
                 rc != 0 ? err : "HTTP error");
        free(rv);
        rv = NULL;
        if (sleep_ms(a, w.relist ? 100 : backoff))
            break;
        if (!w.relist)
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
done:
    free(rv);
    buf_free(&w.line);
    http_client_free(hc);
    return NULL;
}

/* -- Construction ------------------------------------------------------ */

static void
warn_standard(const struct slist *l, const char *flag, const char *std)
{
    if (l->n == 0)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i], std) == 0)
            return;
    LOGW("--%s is set without specifying the standard %s header - API "
         "aggregation will not work", flag, std);
}

struct authn *
authn_new(const struct options *o, struct kube_client *kc, char *err,
          size_t errlen)
{
    struct authn *a = calloc(1, sizeof *a);
    char e2[1024];
    char *rv = NULL;

    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->cache_mu, NULL);
    pthread_mutex_init(&a->stop_mu, NULL);
    pthread_cond_init(&a->stop_cv, NULL);
    atomic_init(&a->stop, false);
    a->kc = kc;
    a->token_ttl_ms = o->authentication_token_webhook_cache_ttl_ms;
    a->tokens = calloc(TOKEN_CACHE_SLOTS, sizeof *a->tokens);
    if (a->tokens == NULL ||
        slist_from_strv(&a->flag_user, &o->requestheader_username_headers) ||
        slist_from_strv(&a->flag_group, &o->requestheader_group_headers) ||
        slist_from_strv(&a->flag_extra,
                        &o->requestheader_extra_headers_prefix) ||
        slist_from_strv(&a->flag_allowed, &o->requestheader_allowed_names)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Go's RequestHeaderAuthenticationOptions.Validate, whatever the CA */
    warn_standard(&a->flag_user, "requestheader-username-headers",
                  "X-Remote-User");
    warn_standard(&a->flag_group, "requestheader-group-headers",
                  "X-Remote-Group");
    warn_standard(&a->flag_extra, "requestheader-extra-headers-prefix",
                  "X-Remote-Extra-");
    if (o->client_ca_file != NULL && o->client_ca_file[0] != '\0') {
        a->client_ca_pem = buf_read_file(o->client_ca_file, MAX_DOC, NULL, e2, sizeof e2);
        if (a->client_ca_pem == NULL) {
            snprintf(err, errlen, "unable to load client CA file %s: %s",
                     o->client_ca_file, e2);
            goto fail;
        }
    } else {
        a->cm_client_ca = !o->authentication_skip_lookup && kc != NULL;
    }
    if (o->requestheader_client_ca_file != NULL &&
        o->requestheader_client_ca_file[0] != '\0') {
        a->rh_ca_pem = buf_read_file(o->requestheader_client_ca_file, MAX_DOC, NULL, e2,
                                 sizeof e2);
        if (a->rh_ca_pem == NULL) {
            snprintf(err, errlen, "unable to load request-header client CA "
                     "file %s: %s", o->requestheader_client_ca_file, e2);
            goto fail;
        }
    } else {
        a->cm_rh = !o->authentication_skip_lookup && kc != NULL;
    }
    /* The flag-only snapshot first (explicit files must parse). */
    struct settings *s = settings_build(a, NULL, e2, sizeof e2);
    if (s == NULL) {
        snprintf(err, errlen, "unable to load client CA: %s", e2);
        goto fail;
    }
    settings_swap(a, s);
    if (a->cm_client_ca || a->cm_rh) {
        /* The synchronous start-up read (Go's lookupMissingConfigInCluster
         * plus the first sync of the dynamic CA contents). */
        rv = cm_list_once(a, NULL, e2, sizeof e2);
        if (rv == NULL) {
            if (a->cm_rh && !o->authentication_tolerate_lookup_failure) {
                snprintf(err, errlen, "unable to load configmap based "
                         "request-header-client-ca-file: %s", e2);
                goto fail;
            }
            if (a->cm_rh) {
                LOGW("Error looking up in-cluster authentication "
                     "configuration: %s", e2);
                LOGW("Continuing without authentication configuration. This "
                     "may treat all requests as anonymous.");
                LOGW("To require authentication configuration lookup to "
                     "succeed, set --authentication-tolerate-lookup-"
                     "failure=false");
                /* Go then runs without the ConfigMap-based authenticators. */
                a->cm_client_ca = a->cm_rh = false;
            } else {
                LOGW("unable to read %s/%s (client-ca-file): %s; retrying in "
                     "the background", CM_NAMESPACE, CM_NAME, e2);
            }
        }
        free(rv);
        if (a->cm_client_ca || a->cm_rh) {
            int e = pthread_create(&a->thread, NULL, watch_main, a);
            if (e != 0) {
                snprintf(err, errlen, "starting the authentication "
                         "ConfigMap watch: %s", strerror(e));
                goto fail;
            }
            a->watching = true;
        }
    }
    return a;
fail:
    authn_free(a);
    return NULL;
}

void
authn_free(struct authn *a)
{
    if (a == NULL)
        return;
    if (a->watching) {
        pthread_mutex_lock(&a->stop_mu);
        atomic_store(&a->stop, true);
        pthread_cond_broadcast(&a->stop_cv);
        pthread_mutex_unlock(&a->stop_mu);
        pthread_join(a->thread, NULL);
    }
    settings_unref(a->cur);
    if (a->tokens != NULL) {
        for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++)
            auth_user_free(&a->tokens[i].user);
        free(a->tokens);
    }
    free(a->client_ca_pem);
    free(a->rh_ca_pem);
    slist_free(&a->flag_user);
    slist_free(&a->flag_group);
    slist_free(&a->flag_extra);
    slist_free(&a->flag_allowed);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->cache_mu);
    pthread_mutex_destroy(&a->stop_mu);
    pthread_cond_destroy(&a->stop_cv);
    free(a);
}

char *
authn_trust_pem(struct authn *a)
{
    struct settings *s = settings_get(a);
    char *out = NULL;

    if (s != NULL && s->trust_pem != NULL)
        out = strdup(s->trust_pem);
    settings_unref(s);
    return out;
}

/* -- Authenticators ---------------------------------------------------- */

enum verdict { ABSTAIN, OK, ERROR };

/* The peer chain verified against pool. */
static enum verdict
verify_peer(const struct server_request *req, const struct certs_pool *pool,
            struct certs_subject *subj, char *err, size_t errlen)
{
    struct server_der *chain = NULL;
    size_t n = 0;
    enum verdict v = ABSTAIN;

    if (server_request_peer_chain(req, &chain, &n, err, errlen) != 0)
        return ERROR;
    if (n == 0)
        return ABSTAIN;
    const unsigned char **ders = calloc(n, sizeof *ders);
    size_t *lens = calloc(n, sizeof *lens);
    if (ders == NULL || lens == NULL) {
        snprintf(err, errlen, "out of memory");
        v = ERROR;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ders[i] = chain[i].data;
        lens[i] = chain[i].len;
    }
    v = certs_verify_client(pool, ders, lens, n, subj, err, errlen) == 0
        ? OK : ERROR;
done:
    free(ders);
    free(lens);
    server_der_free(chain, n);
    return v;
}

struct hdr_walk {
    const char *name;           /* exact header wanted (case-insensitive) */
    const struct slist *prefixes;
    struct auth_user *u;
    int failed;
};

static int
collect_group(void *p, const char *name, const char *value)
{
    struct hdr_walk *w = p;
    if (strcasecmp(name, w->name) == 0 && value[0] != '\0' &&
        user_add_group(w->u, value, strlen(value)) != 0)
        w->failed = 1;
    return w->failed;
}

static int
collect_extra(void *p, const char *name, const char *value)
{
    struct hdr_walk *w = p;
    for (size_t i = 0; i < w->prefixes->n; i++) {
        const char *pre = w->prefixes->v[i];
        size_t pl = strlen(pre);
        if (strncasecmp(name, pre, pl) != 0)
            continue;
        struct buf low, dec;
        buf_init(&low, 8192);
        buf_init(&dec, 8192);
        for (const char *c = name + pl; *c; c++)
            buf_addc(&low, (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c));
        const char *key = low.data ? low.data : "";
        /* url.PathUnescape; on failure Go keeps the lower-cased text. */
        if (httputil_pct_decode(key, low.len, false, &dec) == 0 &&
            dec.data != NULL)
            key = dec.data;
        if (user_add_extra(w->u, key, value) != 0)
            w->failed = 1;
        buf_free(&low);
        buf_free(&dec);
    }
    return w->failed;
}

static enum verdict
auth_request_header(const struct settings *s, const struct server_request *req,
                    struct auth_user *u, char *err, size_t errlen)
{
    struct certs_subject subj = {0};
    enum verdict v;
    const char *user = NULL;

    if (s->rh_ca == NULL)
        return ABSTAIN;
    v = verify_peer(req, s->rh_ca, &subj, err, errlen);
    if (v != OK)
        return v;
    if (s->allowed.n > 0) {
        bool ok = false;
        for (size_t i = 0; i < s->allowed.n; i++)
            if (strcmp(s->allowed.v[i], subj.cn) == 0)
                ok = true;
        if (!ok) {
            snprintf(err, errlen, "x509: subject with cn=%s is not in the "
                     "allowed list", subj.cn);
            v = ERROR;
            goto done;
        }
    }
    for (size_t i = 0; i < s->user_headers.n && user == NULL; i++) {
        const char *h = server_request_header(req, s->user_headers.v[i]);
        if (h != NULL && h[0] != '\0')
            user = h;
    }
    if (user == NULL) {
        v = ABSTAIN;
        goto done;
    }
    if ((u->name = strdup(user)) == NULL || (u->uid = strdup("")) == NULL)
        goto oom;
    for (size_t i = 0; i < s->group_headers.n; i++) {
        struct hdr_walk w = { .name = s->group_headers.v[i], .u = u };
        server_request_headers(req, collect_group, &w);
        if (w.failed)
            goto oom;
    }
    struct hdr_walk w = { .prefixes = &s->extra_prefixes, .u = u };
    server_request_headers(req, collect_extra, &w);
    if (w.failed)
        goto oom;
    v = OK;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    auth_user_free(u);
    v = ERROR;
done:
    certs_subject_free(&subj);
    return v;
}

static enum verdict
auth_x509(const struct settings *s, const struct server_request *req,
          struct auth_user *u, char *err, size_t errlen)
{
    struct certs_subject subj = {0};
    enum verdict v;

    if (s->client_ca == NULL)
        return ABSTAIN;
    v = verify_peer(req, s->client_ca, &subj, err, errlen);
    if (v != OK)
        return v;
    if (subj.cn[0] == '\0') {
        v = ABSTAIN;
        goto done;
    }
    if ((u->name = strdup(subj.cn)) == NULL || (u->uid = strdup("")) == NULL)
        goto oom;
    for (size_t i = 0; i < subj.norgs; i++)
        if (user_add_group(u, subj.orgs[i], strlen(subj.orgs[i])) != 0)
            goto oom;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    auth_user_free(u);
    v = ERROR;
done:
    certs_subject_free(&subj);
    return v;
}

/* -- Bearer tokens (TokenReview) ------------------------------------- */

/* The cached answer for key, copied into *u; 1 hit authenticated, 0 hit
 * negative, -1 miss. */
static int
cache_lookup(struct authn *a, const unsigned char key[32],
             struct auth_user *u)
{
    int rc = -1;
    struct token_entry *e;

    if (a->token_ttl_ms <= 0)
        return -1;
    pthread_mutex_lock(&a->cache_mu);
    e = &a->tokens[(key[0] | key[1] << 8) % TOKEN_CACHE_SLOTS];
    if (e->used && memcmp(e->key, key, 32) == 0 && now_ms() < e->expires_ms) {
        if (!e->authenticated)
            rc = 0;
        else if (user_copy(u, &e->user) == 0)
            rc = 1;
    }
    pthread_mutex_unlock(&a->cache_mu);
    return rc;
}

static void
cache_store(struct authn *a, const unsigned char key[32], bool ok,
            const struct auth_user *u)
{
    struct token_entry *e;

    if (a->token_ttl_ms <= 0)
        return;
    pthread_mutex_lock(&a->cache_mu);
    e = &a->tokens[(key[0] | key[1] << 8) % TOKEN_CACHE_SLOTS];
    auth_user_free(&e->user);
    e->used = false;
    if (!ok || user_copy(&e->user, u) == 0) {
        memcpy(e->key, key, 32);
        e->authenticated = ok;
        e->expires_ms = now_ms() + a->token_ttl_ms;
        e->used = true;
    }
    pthread_mutex_unlock(&a->cache_mu);
}

static int
parse_user(yajl_val user, struct auth_user *u)
{
    const char *p_name[] = { "username", NULL }, *p_uid[] = { "uid", NULL };
    const char *p_groups[] = { "groups", NULL }, *p_extra[] = { "extra", NULL };
    yajl_val n = yajl_tree_get(user, p_name, yajl_t_string);
    yajl_val id = yajl_tree_get(user, p_uid, yajl_t_string);
    yajl_val gs = yajl_tree_get(user, p_groups, yajl_t_array);
    yajl_val ex = yajl_tree_get(user, p_extra, yajl_t_object);

    if ((u->name = strdup(n ? ystr(n) : "")) == NULL ||
        (u->uid = strdup(id ? ystr(id) : "")) == NULL)
        return -1;
    for (size_t i = 0; gs != NULL && i < YAJL_GET_ARRAY(gs)->len; i++) {
        yajl_val g = YAJL_GET_ARRAY(gs)->values[i];
        if (YAJL_IS_STRING(g) &&
            user_add_group(u, ystr(g), strlen(ystr(g))) != 0)
            return -1;
    }
    for (size_t i = 0; ex != NULL && i < YAJL_GET_OBJECT(ex)->len; i++) {
        const char *k = YAJL_GET_OBJECT(ex)->keys[i];
        yajl_val vs = YAJL_GET_OBJECT(ex)->values[i];
        for (size_t j = 0; YAJL_IS_ARRAY(vs) && j < YAJL_GET_ARRAY(vs)->len;
             j++) {
            yajl_val v = YAJL_GET_ARRAY(vs)->values[j];
            if (YAJL_IS_STRING(v) &&
                user_add_extra(u, k, ystr(v)) != 0)
                return -1;
        }
    }
    return 0;
}

/* One TokenReview round trip. Returns OK (u filled), ERROR with
 * retry and cacheable telling the caller what to do. */
static enum verdict
tokenreview_once(struct authn *a, struct http_client *hc, const char *token,
                 long timeout_ms, struct auth_user *u, bool *retry,
                 bool *cacheable, char *err, size_t errlen)
{
    static const char *const headers[] = {
        "Content-Type: application/json", "Accept: application/json, */*",
        NULL,
    };
    struct jsonw *w = jsonw_new(0);
    struct buf body;
    struct http_resp resp = {0};
    enum verdict v = ERROR;
    yajl_val doc = NULL;
    char perr[256];

    *retry = *cacheable = false;
    buf_init(&body, (size_t)1 << 20);
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return ERROR;
    }
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "TokenReview");
    jsonw_kv_string(w, "apiVersion", "authentication.k8s.io/v1");
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_key(w, "creationTimestamp");
    jsonw_null(w);
    jsonw_map_close(w);
    jsonw_key(w, "spec");
    jsonw_map_open(w);
    jsonw_kv_string(w, "token", token);
    jsonw_map_close(w);
    jsonw_key(w, "status");
    jsonw_map_open(w);
    jsonw_key(w, "user");
    jsonw_map_open(w);
    jsonw_map_close(w);
    jsonw_map_close(w);
    jsonw_map_close(w);
    if (jsonw_finish(w, &body, false, err, errlen) != 0)
        goto done;
    struct http_req req = {
        .method = "POST", .headers = headers, .body = body.data,
        .body_len = body.len, .timeout_ms = timeout_ms, .max_body = MAX_DOC,
    };
    if (kube_do_measured(a->kc, hc, "tokenreview", TOKENREVIEW_PATH, &req,
                         &resp, err, errlen) != 0) {
        *retry = true;
        goto done;
    }
    if (resp.status == 429 || resp.status >= 500) {
        snprintf(err, errlen, "tokenreviews: HTTP %ld", resp.status);
        *retry = true;
        goto done;
    }
    if (resp.status != 200 && resp.status != 201) {
        snprintf(err, errlen, "tokenreviews: HTTP %ld", resp.status);
        goto done;
    }
    doc = kube_json_parse(resp.body.data ? resp.body.data : "", perr,
                          sizeof perr);
    const char *p_auth[] = { "status", "authenticated", NULL };
    const char *p_err[] = { "status", "error", NULL };
    const char *p_user[] = { "status", "user", NULL };
    if (doc == NULL) {
        snprintf(err, errlen, "tokenreviews: bad JSON: %s", perr);
        goto done;
    }
    yajl_val au = yajl_tree_get(doc, p_auth, yajl_t_true);
    yajl_val er = yajl_tree_get(doc, p_err, yajl_t_string);
    if (au == NULL) {
        const char *m = er ? ystr(er) : "";
        snprintf(err, errlen, "%s", m[0] ? m : "invalid bearer token");
        *cacheable = m[0] == '\0';
        goto done;
    }
    yajl_val uo = yajl_tree_get(doc, p_user, yajl_t_object);
    if (uo == NULL || parse_user(uo, u) != 0 || u->name[0] == '\0') {
        auth_user_free(u);
        snprintf(err, errlen, "tokenreviews: no user in the answer");
        goto done;
    }
    v = OK;
done:
    yajl_tree_free(doc);
    jsonw_free(w);
    buf_free(&body);
    buf_free(&resp.body);
    return v;
}

static enum verdict
auth_token(struct authn *a, const struct server_request *req,
           struct http_client *hc, int64_t budget_ms, struct auth_user *u,
           char *err, size_t errlen)
{
    const char *h = server_request_header(req, "Authorization");
    unsigned char key[32];
    char token[8192];
    size_t tl;

    if (h == NULL)
        return ABSTAIN;
    /* strings.SplitN(h, " ", 3): scheme, token, rest */
    const char *sp = strchr(h, ' ');
    if (sp == NULL || (size_t)(sp - h) != 6 || strncasecmp(h, "bearer", 6))
        return ABSTAIN;
    const char *t = sp + 1;
    tl = strcspn(t, " ");
    if (tl == 0)
        return ABSTAIN;
    if (tl >= sizeof token) {
        snprintf(err, errlen, "invalid bearer token");
        return ERROR;
    }
    memcpy(token, t, tl);
    token[tl] = '\0';
    if (a->kc == NULL) {
        snprintf(err, errlen, "no TokenReview client");
        return ERROR;
    }
    if (certs_sha256(token, tl, key) != 0) {
        snprintf(err, errlen, "hashing the token failed");
        return ERROR;
    }
    switch (cache_lookup(a, key, u)) {
    case 1: return OK;
    case 0:
        snprintf(err, errlen, "invalid bearer token");
        return ERROR;
    default: break;
    }
    /* Go's webhook backoff: 500 ms x1.5 with 20% jitter, 5 attempts, all
     * within 10 s (and within this request's own deadline). */
    int64_t limit = budget_ms < REVIEW_TIMEOUT_MS ? budget_ms
                                                  : REVIEW_TIMEOUT_MS;
    int64_t end = now_ms() + (limit > 0 ? limit : 1);
    double delay = 500;
    for (int attempt = 0; attempt < 5; attempt++) {
        bool retry, cacheable;
        int64_t left = end - now_ms();
        if (left <= 0)
            break;
        enum verdict v = tokenreview_once(a, hc, token, (long)left, u,
                                          &retry, &cacheable, err, errlen);
        if (v == OK) {
            cache_store(a, key, true, u);
            return OK;
        }
        if (!retry) {
            if (cacheable)
                cache_store(a, key, false, NULL);
            return ERROR;
        }
        double j = delay * (1.0 + 0.2 * ((double)rand() / RAND_MAX));
        if (now_ms() + (int64_t)j >= end)
            break;
        struct timespec ts = { (time_t)(j / 1000),
                               (long)((long long)j % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        delay *= 1.5;
    }
    if (err[0] == '\0')
        snprintf(err, errlen, "tokenreviews: timed out");
    return ERROR;
}

int
authn_authenticate(struct authn *a, const struct server_request *req,
                   struct http_client *hc, int64_t budget_ms,
                   struct auth_user *out, char *err, size_t errlen)
{
    struct settings *s = settings_get(a);
    char e[1024] = "";
    bool failed = false;
    enum verdict v = ABSTAIN;
    int rc = -1;

    memset(out, 0, sizeof *out);
    err[0] = '\0';
    if (s != NULL) {
        v = auth_request_header(s, req, out, e, sizeof e);
        if (v == ERROR) {
            failed = true;
            snprintf(err, errlen, "%s", e);
        }
        if (v != OK) {
            e[0] = '\0';
            v = auth_x509(s, req, out, e, sizeof e);
            if (v == ERROR) {
                failed = true;
                snprintf(err, errlen, "%s", e);
            }
        }
    }
    if (v != OK) {
        e[0] = '\0';
        v = auth_token(a, req, hc, budget_ms, out, e, sizeof e);
        if (v == ERROR) {
            failed = true;
            snprintf(err, errlen, "%s", e);
        }
    }
    if (v == OK) {
        /* group.AuthenticatedGroupAdder */
        if (strcmp(out->name, "system:anonymous") != 0 &&
            !auth_user_in_group(out, "system:authenticated") &&
            !auth_user_in_group(out, "system:unauthenticated") &&
            user_add_group(out, "system:authenticated", 20) != 0) {
            snprintf(err, errlen, "out of memory");
            auth_user_free(out);
            goto done;
        }
        rc = 0;
        goto done;
    }
    if (failed)
        goto done;
    /* No credentials at all: anonymous. */
    if ((out->name = strdup("system:anonymous")) == NULL ||
        (out->uid = strdup("")) == NULL ||
        user_add_group(out, "system:unauthenticated", 22) != 0) {
        snprintf(err, errlen, "out of memory");
        auth_user_free(out);
        goto done;
    }
    rc = 0;
done:
    settings_unref(s);
    return rc;
}
