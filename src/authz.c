/* authz.c: delegated authorization and the filter chain (see authz.h).
 * SubjectAccessReview answers are cached in a direct-mapped table keyed by
 * SHA-256 of the serialized review (user, groups, extra, uid and the
 * attributes), allowed and denied answers with their own TTLs. Each
 * review call is recorded in the Kubernetes call metrics (kube.h's
 * kube_do_measured, verb "subjectaccessreview"). */
#include "authz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include "buf.h"
#include "certs.h"
#include "flags.h"
#include "goquote.h"
#include "http_client.h"
#include "jsonw.h"
#include "kube.h"
#include "log.h"
#include "status.h"

#define SAR_PATH "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#define SAR_CACHE_SLOTS 1024
#define REVIEW_TIMEOUT_MS 10000
#define MAX_CACHED_ATTRS 10000
#define MAX_DOC ((size_t)16 << 20)
/* A review cut off by the request deadline ends just after it, so the
 * request is answered 504 (Go's timeout filter) rather than racing the
 * deadline into a 401/500. */
#define DEADLINE_GRACE_MS 50
/* A handler whose upstream call was cut at the deadline returns within a
 * few milliseconds of it, either side: still a timeout. */
#define DEADLINE_SLACK_MS 5

/* -- Request info ------------------------------------------------------ */

static bool
parse_bool_true(const char *v)
{
    static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(v, t[i]) == 0)
            return true;
    return false;
}

/* The x of an exact `metadata.name=x` (or ==) term of a field selector,
 * malloc'd, when x is a valid path segment name; else NULL. */
static char *
field_selector_name(const char *fs)
{
    const char *p = fs;
    while (p != NULL && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *k = "metadata.name";
        size_t kl = strlen(k);
        if (len > kl && strncmp(p, k, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1;
            size_t vl = len - kl - 1;
            if (vl > 0 && v[0] == '=') {
                v++;
                vl--;
            }
            if ((vl == 1 && v[0] == '.') || (vl == 2 && !strncmp(v, "..", 2)))
                return NULL;
            for (size_t i = 0; i < vl; i++)
                if (v[i] == '/' || v[i] == '%')
                    return NULL;
            return strndup(v, vl);
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int
authz_attrs_from_request(const struct server_request *req,
                         struct authz_attrs *out)
{
    const char *m = req->method;
    const char *const *s;
    size_t i, n;

    memset(out, 0, sizeof *out);
    out->path = req->path;
    if (httputil_split_path(req->path, &out->segs) != 0)
        return -1;
    s = out->segs.seg;
    n = out->segs.n;
    /* Non-resource requests: the lower-cased method is the verb. */
    for (i = 0; m[i] && i + 1 < sizeof out->verb; i++)
        out->verb[i] = (char)((m[i] >= 'A' && m[i] <= 'Z') ? m[i] + 32 : m[i]);
    out->verb[i] = '\0';
    if (n < 3 || (strcmp(s[0], "apis") != 0 && strcmp(s[0], "api") != 0))
        return 0;
    s++;
    n--;
    if (strcmp(out->segs.seg[0], "apis") == 0) {
        if (n < 3)
            return 0;
        out->group = s[0];
        s++;
        n--;
    } else {
        out->group = "";
    }
    out->resource = "";
    out->version = s[0];
    s++;
    n--;
    const char *verb;
    if (n >= 2 && (!strcmp(s[0], "watch") || !strcmp(s[0], "proxy"))) {
        verb = s[0];
        s++;
        n--;
    } else if (!strcmp(m, "GET") || !strcmp(m, "HEAD")) {
        verb = "get";
    } else if (!strcmp(m, "POST")) {
        verb = "create";
    } else if (!strcmp(m, "PUT")) {
        verb = "update";
    } else if (!strcmp(m, "PATCH")) {
        verb = "patch";
    } else if (!strcmp(m, "DELETE")) {
        verb = "delete";
    } else {
        verb = "";
    }
    out->is_resource = true;
    snprintf(out->verb, sizeof out->verb, "%s", verb);
    if (n > 0 && !strcmp(s[0], "namespaces") && n > 1) {
        out->namespace = s[1];
        if (n > 2 && strcmp(s[2], "status") && strcmp(s[2], "finalize")) {
            s += 2;
            n -= 2;
        }
    }
    if (n > 0)
        out->resource = s[0];
    if (n > 1)
        out->name = s[1];
    if (n > 2)
        out->subresource = s[2];
    if (out->name == NULL && !strcmp(out->verb, "get")) {
        const char *w = server_request_query(req, "watch");
        snprintf(out->verb, sizeof out->verb, "%s",
                 w != NULL && parse_bool_true(w) ? "watch" : "list");
        const char *fs = server_request_query(req, "fieldSelector");
        if (fs != NULL && (out->name_buf = field_selector_name(fs)) != NULL)
            out->name = out->name_buf;
    }
    if (out->name == NULL && !strcmp(out->verb, "delete"))
        snprintf(out->verb, sizeof out->verb, "deletecollection");
    return 0;
}

void
authz_attrs_free(struct authz_attrs *a)
{
    if (a == NULL)
        return;
    httputil_segs_free(&a->segs);
    free(a->name_buf);
    a->name_buf = NULL;
}

static const char *
nz(const char *s)
{
    return s != NULL ? s : "";
}

/* -- The authorizer ---------------------------------------------------- */

struct sar_entry {
    bool used;
    unsigned char key[32];
    int64_t expires_ms;
    bool allowed;
    char reason[256];
};

struct authz {
    struct kube_client *kc;     /* borrowed */
    char **paths;               /* always-allow, leading '/' stripped */
    size_t npaths;
    int64_t allow_ttl_ms, deny_ttl_ms;
    pthread_mutex_t mu;         /* guards cache */
    struct sar_entry *cache;    /* SAR_CACHE_SLOTS */
};

struct authz *
authz_new(const struct options *o, struct kube_client *kc, char *err,
          size_t errlen)
{
    struct authz *z = calloc(1, sizeof *z);
    const struct strv *p = &o->authorization_always_allow_paths;

    if (z == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&z->mu, NULL);
    z->kc = kc;
    z->allow_ttl_ms = o->authorization_webhook_cache_authorized_ttl_ms;
    z->deny_ttl_ms = o->authorization_webhook_cache_unauthorized_ttl_ms;
    z->cache = calloc(SAR_CACHE_SLOTS, sizeof *z->cache);
    z->paths = calloc(p->n + 1, sizeof *z->paths);
    if (z->cache == NULL || z->paths == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < p->n; i++) {
        const char *v = p->v[i];
        const char *star = strchr(v, '*');
        if (star != NULL && star[1] != '\0') {
            snprintf(err, errlen, "only trailing * allowed in \"%s\"", v);
            goto fail;
        }
        while (*v == '/')
            v++;
        if ((z->paths[z->npaths++] = strdup(v)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return z;
fail:
    authz_free(z);
    return NULL;
}

void
authz_free(struct authz *z)
{
    if (z == NULL)
        return;
    for (size_t i = 0; i < z->npaths; i++)
        free(z->paths[i]);
    free(z->paths);
    free(z->cache);
    pthread_mutex_destroy(&z->mu);
    free(z);
}

static bool
always_allowed(const struct authz *z, const struct authz_attrs *at)
{
    const char *p = at->path;

    if (at->is_resource)
        return false;
    while (*p == '/')
        p++;
    for (size_t i = 0; i < z->npaths; i++) {
        const char *a = z->paths[i];
        size_t l = strlen(a);
        if (l > 0 && a[l - 1] == '*') {
            if (strncmp(p, a, l - 1) == 0)
                return true;
        } else if (strcmp(p, a) == 0) {
            return true;
        }
    }
    return false;
}

/* Writes the SubjectAccessReview request (Go's field order; empty members
 * omitted; extra keys sorted as encoding/json sorts map keys). */
static int
sar_body(const struct auth_user *u, const struct authz_attrs *at,
         struct buf *out, char *err, size_t errlen)
{
    struct jsonw *w = jsonw_new(0);
    size_t *order = NULL;
    int rc = -1;

    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "SubjectAccessReview");
    jsonw_kv_string(w, "apiVersion", "authorization.k8s.io/v1");
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_key(w, "creationTimestamp");
    jsonw_null(w);
    jsonw_map_close(w);
    jsonw_key(w, "spec");
    jsonw_map_open(w);
    if (at->is_resource) {
        jsonw_key(w, "resourceAttributes");
        jsonw_map_open(w);
        const char *k[] = { "namespace", "verb", "group", "version",
                            "resource", "subresource", "name" };
        const char *v[] = { at->namespace, at->verb, at->group, at->version,
                            at->resource, at->subresource, at->name };
        for (size_t i = 0; i < 7; i++)
            if (v[i] != NULL && v[i][0] != '\0')
                jsonw_kv_string(w, k[i], v[i]);
        jsonw_map_close(w);
    } else {
        jsonw_key(w, "nonResourceAttributes");
        jsonw_map_open(w);
        if (at->path[0] != '\0')
            jsonw_kv_string(w, "path", at->path);
        if (at->verb[0] != '\0')
            jsonw_kv_string(w, "verb", at->verb);
        jsonw_map_close(w);
    }
    if (u->name[0] != '\0')
        jsonw_kv_string(w, "user", u->name);
    if (u->ngroups > 0) {
        jsonw_key(w, "groups");
        jsonw_array_open(w);
        for (size_t i = 0; i < u->ngroups; i++)
            jsonw_string(w, u->groups[i]);
        jsonw_array_close(w);
    }
    if (u->nextra > 0) {
        if ((order = malloc(u->nextra * sizeof *order)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < u->nextra; i++)
            order[i] = i;
        for (size_t i = 1; i < u->nextra; i++)      /* insertion sort */
            for (size_t j = i; j > 0 && strcmp(u->extra[order[j - 1]].key,
                                               u->extra[order[j]].key) > 0;
                 j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        jsonw_key(w, "extra");
        jsonw_map_open(w);
        for (size_t i = 0; i < u->nextra; i++) {
            const struct auth_extra *e = &u->extra[order[i]];
            jsonw_key(w, e->key);
            jsonw_array_open(w);
            for (size_t j = 0; j < e->nvalues; j++)
                jsonw_string(w, e->values[j]);
            jsonw_array_close(w);
        }
        jsonw_map_close(w);
    }
    if (u->uid != NULL && u->uid[0] != '\0')
        jsonw_kv_string(w, "uid", u->uid);
    jsonw_map_close(w);
    jsonw_key(w, "status");
    jsonw_map_open(w);
    jsonw_kv_bool(w, "allowed", false);
    jsonw_map_close(w);
    jsonw_map_close(w);
    rc = jsonw_finish(w, out, false, err, errlen);
done:
    free(order);
    jsonw_free(w);
    return rc;
}

static int
cache_get(struct authz *z, const unsigned char key[32], bool *allowed,
          char *reason, size_t reasonlen)
{
    struct sar_entry *e;
    int hit = 0;

    pthread_mutex_lock(&z->mu);
    e = &z->cache[(key[0] | key[1] << 8) % SAR_CACHE_SLOTS];
    if (e->used && memcmp(e->key, key, 32) == 0 &&
        server_now_ms() < e->expires_ms) {
        *allowed = e->allowed;
        snprintf(reason, reasonlen, "%s", e->reason);
        hit = 1;
    }
    pthread_mutex_unlock(&z->mu);
    return hit;
}

static void
cache_put(struct authz *z, const unsigned char key[32], bool allowed,
          const char *reason)
{
    int64_t ttl = allowed ? z->allow_ttl_ms : z->deny_ttl_ms;
    struct sar_entry *e;

    if (ttl <= 0)
        return;
    pthread_mutex_lock(&z->mu);
    e = &z->cache[(key[0] | key[1] << 8) % SAR_CACHE_SLOTS];
    memcpy(e->key, key, 32);
    e->allowed = allowed;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    e->expires_ms = server_now_ms() + ttl;
    e->used = true;
    pthread_mutex_unlock(&z->mu);
}

/* One review round trip: 1 allowed, 0 denied / no opinion, -1 error
 * (*retry says whether another attempt may help). */
static int
sar_once(struct authz *z, struct http_client *hc, const struct buf *body,
         long timeout_ms, char *reason, size_t reasonlen, bool *retry,
         char *err, size_t errlen)
{
    static const char *const headers[] = {
        "Content-Type: application/json", "Accept: application/json, */*",
        NULL,
    };
    struct http_req req = {
        .method = "POST", .headers = headers, .body = body->data,
        .body_len = body->len, .timeout_ms = timeout_ms, .max_body = MAX_DOC,
    };
    struct http_resp resp;
    yajl_val doc = NULL;
    char perr[256];
    int rc = -1;

    *retry = false;
    if (kube_do_measured(z->kc, hc, "subjectaccessreview", SAR_PATH, &req,
                         &resp, err, errlen) != 0) {
        *retry = true;
        goto done;
    }
    if (resp.status == 429 || resp.status >= 500) {
        snprintf(err, errlen, "subjectaccessreviews: HTTP %ld", resp.status);
        *retry = true;
        goto done;
    }
    if (resp.status != 200 && resp.status != 201) {
        snprintf(err, errlen, "subjectaccessreviews: HTTP %ld", resp.status);
        goto done;
    }
    doc = kube_json_parse(resp.body.data ? resp.body.data : "", perr,
                          sizeof perr);
    if (doc == NULL) {
        snprintf(err, errlen, "subjectaccessreviews: bad JSON: %s", perr);
        goto done;
    }
    const char *pa[] = { "status", "allowed", NULL };
    const char *pd[] = { "status", "denied", NULL };
    const char *pr[] = { "status", "reason", NULL };
    const char *pe[] = { "status", "evaluationError", NULL };
    bool allowed = yajl_tree_get(doc, pa, yajl_t_true) != NULL;
    bool denied = yajl_tree_get(doc, pd, yajl_t_true) != NULL;
    yajl_val r = yajl_tree_get(doc, pr, yajl_t_string);
    yajl_val ev = yajl_tree_get(doc, pe, yajl_t_string);
    const char *rs = r != NULL ? YAJL_GET_STRING(r) : NULL;
    snprintf(reason, reasonlen, "%s", rs != NULL ? rs : "");
    if (ev != NULL && YAJL_GET_STRING(ev) != NULL &&
        YAJL_GET_STRING(ev)[0] != '\0')
        LOGV(2, "SubjectAccessReview evaluation error: %s",
             YAJL_GET_STRING(ev));
    if (allowed && denied)
        LOGE("SubjectAccessReview answered both allowed and denied; "
             "denying");
    rc = allowed && !denied ? 1 : 0;
done:
    yajl_tree_free(doc);
    buf_free(&resp.body);
    return rc;
}

enum authz_decision
authz_authorize(struct authz *z, struct http_client *hc, int64_t budget_ms,
                const struct auth_user *u, const struct authz_attrs *at,
                char *reason, size_t reasonlen, char *err, size_t errlen)
{
    struct buf body;
    unsigned char key[32];
    bool allowed, cacheable;
    enum authz_decision d = AUTHZ_ERROR;

    reason[0] = '\0';
    err[0] = '\0';
    if (auth_user_in_group(u, "system:masters") || always_allowed(z, at))
        return AUTHZ_ALLOW;
    if (z->kc == NULL) {
        snprintf(err, errlen, "no authorization client");
        return AUTHZ_ERROR;
    }
    buf_init(&body, MAX_DOC);
    if (sar_body(u, at, &body, err, errlen) != 0)
        return AUTHZ_ERROR;
    size_t attr_len = strlen(at->verb) + strlen(nz(at->path)) +
                      strlen(nz(at->namespace)) + strlen(nz(at->group)) +
                      strlen(nz(at->version)) + strlen(nz(at->resource)) +
                      strlen(nz(at->subresource)) + strlen(nz(at->name));
    cacheable = attr_len <= MAX_CACHED_ATTRS &&
                certs_sha256(body.data, body.len, key) == 0;
    if (cacheable && cache_get(z, key, &allowed, reason, reasonlen)) {
        d = allowed ? AUTHZ_ALLOW : AUTHZ_DENY;
        goto done;
    }
    int64_t limit = budget_ms < REVIEW_TIMEOUT_MS ? budget_ms
                                                  : REVIEW_TIMEOUT_MS;
    int64_t end = server_now_ms() + (limit > 0 ? limit : 1);
    double delay = 500;
    for (int attempt = 0; attempt < 5; attempt++) {
        bool retry;
        int64_t left = end - server_now_ms();
        if (left <= 0)
            break;
        int r = sar_once(z, hc, &body, (long)left, reason, reasonlen, &retry,
                         err, errlen);
        if (r >= 0) {
            d = r ? AUTHZ_ALLOW : AUTHZ_DENY;
            if (cacheable)
                cache_put(z, key, r == 1, reason);
            goto done;
        }
        if (!retry)
            goto done;
        double j = delay * (1.0 + 0.2 * ((double)rand() / RAND_MAX));
        if (server_now_ms() + (int64_t)j >= end)
            break;
        struct timespec ts = { (time_t)(j / 1000),
                               (long)((long long)j % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        delay *= 1.5;
    }
    if (err[0] == '\0')
        snprintf(err, errlen, "subjectaccessreviews: timed out");
done:
    buf_free(&body);
    return d;
}

/* Go's sanitizer for the forbidden sentence: & < > as HTML entities. */
static void
add_sanitized(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': buf_adds(b, "&amp;"); break;
        case '<': buf_adds(b, "&lt;"); break;
        case '>': buf_adds(b, "&gt;"); break;
        default: buf_addc(b, s[i]); break;
        }
    }
}

static void
addq(struct buf *b, const char *s)
{
    goquote(b, s, strlen(s));
}

void
authz_forbidden(struct server_response *resp, const struct auth_user *u,
                const struct authz_attrs *at, const char *reason)
{
    struct buf sent, msg, gr;
    struct status_details det = {0};

    buf_init(&sent, 1 << 20);
    buf_init(&msg, 1 << 20);
    buf_init(&gr, 1 << 16);
    buf_adds(&sent, "User ");
    addq(&sent, u != NULL ? u->name : "");
    buf_addf(&sent, " cannot %s ", at->verb);
    if (!at->is_resource) {
        buf_adds(&sent, "path ");
        addq(&sent, at->path);
    } else {
        struct buf res;
        buf_init(&res, 1 << 16);
        buf_adds(&res, nz(at->resource));
        if (at->subresource != NULL && at->subresource[0] != '\0')
            buf_addf(&res, "/%s", at->subresource);
        buf_adds(&sent, "resource ");
        addq(&sent, res.data ? res.data : "");
        buf_free(&res);
        buf_adds(&sent, " in API group ");
        addq(&sent, nz(at->group));
        if (at->namespace != NULL && at->namespace[0] != '\0') {
            buf_adds(&sent, " in the namespace ");
            addq(&sent, at->namespace);
        } else {
            buf_adds(&sent, " at the cluster scope");
        }
    }
    /* GroupResource text: resource, plus ".group" when the group is set */
    if (at->is_resource && at->resource != NULL && at->resource[0] != '\0') {
        buf_adds(&gr, at->resource);
        if (at->group != NULL && at->group[0] != '\0')
            buf_addf(&gr, ".%s", at->group);
    }
    if (gr.len == 0) {
        buf_adds(&msg, "forbidden: ");
    } else if (at->name != NULL && at->name[0] != '\0') {
        buf_addf(&msg, "%s \"%s\" is forbidden: ", gr.data, at->name);
    } else {
        buf_addf(&msg, "%s is forbidden: ", gr.data);
    }
    add_sanitized(&msg, sent.data ? sent.data : "", sent.len);
    if (reason != NULL && reason[0] != '\0')
        buf_addf(&msg, ": %s", reason);
    if (at->is_resource) {
        det.name = at->name;
        det.group = at->group;
        det.kind = at->resource;
    }
    status_write(resp, 403, "Forbidden", msg.data ? msg.data : "forbidden",
                 &det);
    buf_free(&sent);
    buf_free(&msg);
    buf_free(&gr);
}

/* -- The filter chain ---------------------------------------------------- */

struct chain_thread {
    void *next;                 /* the API handler's thread context */
    struct http_client *hc;     /* this thread's review client */
};

void
authz_chain_init(struct authz_chain *c, const struct authz_chain_config *cfg)
{
    c->cfg = *cfg;
    if (c->cfg.request_timeout_ms <= 0)
        c->cfg.request_timeout_ms = 60000;
    atomic_init(&c->inflight, 0);
}

void *
authz_chain_thread_init(void *chain)
{
    struct authz_chain *c = chain;
    struct chain_thread *t = calloc(1, sizeof *t);
    char err[512];

    if (t == NULL)
        return NULL;
    t->hc = http_client_new(err, sizeof err);
    if (t->hc == NULL)
        LOGE("authentication/authorization HTTP client: %s", err);
    if (c->cfg.next_thread_init != NULL)
        t->next = c->cfg.next_thread_init(c->cfg.next_ctx);
    return t;
}

void
authz_chain_thread_fini(void *chain, void *thread_ctx)
{
    struct authz_chain *c = chain;
    struct chain_thread *t = thread_ctx;

    if (t == NULL)
        return;
    if (c->cfg.next_thread_fini != NULL)
        c->cfg.next_thread_fini(c->cfg.next_ctx, t->next);
    http_client_free(t->hc);
    free(t);
}

/* Go's 500 for an authorizer failure: text/plain, request URI quoted,
 * & < > escaped. */
static void
authorizer_error(struct server_response *resp,
                 const struct server_request *req, const char *err)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    buf_adds(&b, "Internal Server Error: ");
    struct buf q;
    buf_init(&q, 1 << 20);
    addq(&q, req->raw_path);
    buf_addf(&q, ": %s", err);
    add_sanitized(&b, q.data ? q.data : "", q.len);
    buf_addc(&b, '\n');
    buf_free(&q);
    server_response_header(resp, "X-Content-Type-Options", "nosniff");
    server_response_text(resp, 500, "text/plain; charset=utf-8",
                         b.data ? b.data : "Internal Server Error\n");
    buf_free(&b);
}

void
authz_chain_handle(void *chain, const struct server_request *req,
                   struct server_response *resp)
{
    struct authz_chain *c = chain;
    struct chain_thread *t = req->thread_ctx;
    struct http_client *hc = t != NULL ? t->hc : NULL;
    struct auth_user user = {0};
    struct authz_attrs at;
    bool counted = false, have_attrs = false;
    char err[1024], reason[512];
    int64_t timeout_ms;

    /* 1. the request deadline (?timeout= errors come before authn) */
    if (httputil_request_timeout(server_request_query(req, "timeout"),
                                 c->cfg.request_timeout_ms, &timeout_ms, err,
                                 sizeof err) != 0) {
        status_bad_request(resp, err);
        return;
    }
    /* 2. authentication */
    if (authn_authenticate(c->cfg.authn, req, hc,
                           server_request_remaining_ms(req, timeout_ms) +
                           DEADLINE_GRACE_MS, &user, err, sizeof err) != 0) {
        LOGE("Unable to authenticate the request: %s", err);
        status_unauthorized(resp);
        goto done;
    }
    /* 3. in-flight limit; system:masters is exempt */
    if (c->cfg.max_inflight > 0 &&
        !auth_user_in_group(&user, "system:masters")) {
        counted = true;
        if (atomic_fetch_add(&c->inflight, 1) >= c->cfg.max_inflight) {
            status_too_many_requests(resp);
            goto done;
        }
    }
    /* 4. authorization */
    if (authz_attrs_from_request(req, &at) != 0) {
        status_route_not_found(resp);
        goto done;
    }
    have_attrs = true;
    switch (authz_authorize(c->cfg.authz, hc,
                            server_request_remaining_ms(req, timeout_ms) +
                            DEADLINE_GRACE_MS, &user, &at, reason,
                            sizeof reason, err, sizeof err)) {
    case AUTHZ_ALLOW:
        break;
    case AUTHZ_DENY:
        LOGV(2, "Forbidden: %s, Reason: \"%s\"", req->path, reason);
        authz_forbidden(resp, &user, &at, reason);
        goto done;
    default:
        LOGE("An error occurred while authorizing %s: %s", req->path, err);
        authorizer_error(resp, req, err);
        goto done;
    }
    /* 5. the handler, with its own thread context */
    if (server_request_remaining_ms(req, timeout_ms) > 0) {
        struct server_request r2 = *req;
        r2.thread_ctx = t != NULL ? t->next : NULL;
        c->cfg.next(c->cfg.next_ctx, &r2, resp);
    }
done:
    /* 6. the deadline wraps everything after the ?timeout= check, as Go's
     * timeout filter sits outside authentication and authorization: an
     * answer that came too late is a 504 (the handlers and the reviews
     * bound their upstream calls by the same deadline). */
    if (server_request_remaining_ms(req, timeout_ms) <= DEADLINE_SLACK_MS) {
        for (size_t i = 0; i < resp->nheaders; i++) {
            free(resp->headers[i].name);
            free(resp->headers[i].value);
        }
        resp->nheaders = 0;
        status_timeout(resp);
    }
    if (counted)
        atomic_fetch_sub(&c->inflight, 1);
    if (have_attrs)
        authz_attrs_free(&at);
    auth_user_free(&user);
}
