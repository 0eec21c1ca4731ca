/* metrics.c: the adapter's own metrics registry and its text rendering
 * (see metrics.h). Uses buf.h, pthreads and libc only; never logs (log.c
 * may one day count lines through it) and never calls out.
 * Each family is a static table entry with its own mutex and a singly
 * linked list of label sets, newest first; lists stay short (routes,
 * rules, endpoints), so a linear lookup under the lock is cheaper than
 * anything cleverer. */
#include "metrics.h"
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind { COUNTER, GAUGE, HISTOGRAM };

#define MAX_BUCKETS 12

static const double http_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
static const double relist_buckets[] = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
};

struct series {
    struct series *next;
    char *l1, *l2;                  /* owned; NULL when unused */
    double value;                   /* counter/gauge, or histogram sum */
    unsigned long long count;       /* histogram observations */
    unsigned long long buckets[MAX_BUCKETS]; /* non-cumulative */
};

struct family {
    const char *name;               /* without the prefix */
    const char *help;
    enum kind kind;
    const char *label1, *label2;    /* NULL when absent */
    const double *bounds;           /* histogram upper bounds */
    size_t nbounds;
    pthread_mutex_t mu;
    struct series *head;            /* guarded by mu */
    size_t n;
};

#define FAM(nm, hp, k, a, b) { nm, hp, k, a, b, NULL, 0, \
    PTHREAD_MUTEX_INITIALIZER, NULL, 0 }
#define HIST(nm, hp, a, b, bk) { nm, hp, HISTOGRAM, a, b, bk, \
    sizeof bk / sizeof bk[0], PTHREAD_MUTEX_INITIALIZER, NULL, 0 }

/* Indexed by enum metrics_id; the order must match metrics.h. */
static struct family fams[METRICS_COUNT] = {
    FAM("build_info", "Build information; the value is always 1.", GAUGE,
        "version", "luajit"),
    FAM("config_last_reload_successful",
        "Whether the last configuration load or reload succeeded (1) or was "
        "refused (0).", GAUGE, NULL, NULL),
    FAM("config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration load or reload.",
        GAUGE, NULL, NULL),
    FAM("config_reloads_total",
        "Configuration reload attempts by outcome (success, failure).",
        COUNTER, "outcome", NULL),
    FAM("http_requests_total",
        "HTTP requests answered, by API route and status code.", COUNTER,
        "route", "code"),
    HIST("http_request_duration_seconds",
         "HTTP request latency, by API route and status code.", "route",
         "code", http_buckets),
    FAM("http_requests_inflight", "HTTP requests being answered right now.",
        GAUGE, NULL, NULL),
    HIST("prometheus_request_duration_seconds",
         "Latency of Prometheus API calls, by endpoint (series, query).",
         "endpoint", NULL, http_buckets),
    FAM("prometheus_request_errors_total",
        "Failed Prometheus API calls (transport error or a status other than "
        "2xx), by endpoint.", COUNTER, "endpoint", NULL),
    HIST("kubernetes_request_duration_seconds",
         "Latency of Kubernetes API calls, by verb (discovery, list, "
         "tokenreview, subjectaccessreview, configmap).", "verb", NULL,
         http_buckets),
    FAM("kubernetes_request_errors_total",
        "Failed Kubernetes API calls by verb (those of the latency "
        "histogram, and watch): a transport error or a status other than "
        "2xx (watch: a WATCH that failed in transport).", COUNTER, "verb",
        NULL),
    FAM("kubernetes_watches_total",
        "WATCH requests made by the object caches and the authentication "
        "ConfigMap reader, counted as each starts (each ends, then is "
        "renewed).", COUNTER, NULL, NULL),
    FAM("hook_failures_total",
        "Lua hook calls that raised an error or returned a wrong shape.",
        COUNTER, "hook", NULL),
    FAM("cache_lookups_total",
        "Cache lookups by cache (registry: the metric registry per request; "
        "query: the --query-cache-ttl cache) and result (hit, miss).",
        COUNTER, "cache", "result"),
    HIST("relist_duration_seconds",
         "Duration of one relist (series queries and discovery), by kind.",
         "kind", NULL, relist_buckets),
    FAM("relist_runs_total", "Relists by kind and outcome (success, failure).",
        COUNTER, "kind", "outcome"),
    FAM("rule_last_relist_successful",
        "Whether the last relist of a rule's seriesQuery succeeded (1) or "
        "failed and its previous metrics were kept (0).", GAUGE, "rule",
        NULL),
    FAM("rule_series",
        "Distinct series names a rule turned into metrics at the last "
        "relist.", GAUGE, "rule", NULL),
    FAM("rule_metrics",
        "Registry entries (metric x resource) a rule produced at the last "
        "relist.", GAUGE, "rule", NULL),
    FAM("rule_last_relist_duration_seconds",
        "Time the last relist spent fetching a rule's seriesQuery from "
        "Prometheus, retries included (rules sharing a query share it).",
        GAUGE, "rule", NULL),
    FAM("resource_query_failures_total",
        "metrics.k8s.io CPU/memory query batches that failed (error or a "
        "non-vector answer) and were left out of the answer, by kind (pods: "
        "a namespace skipped; nodes: the node list emptied).", COUNTER,
        "kind", NULL),
};

static bool
eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Finds or creates the label set; f->mu must be held. NULL when the cap
 * is reached or memory is short. */
static struct series *
lookup(struct family *f, const char *l1, const char *l2)
{
    if (!f->label1)
        l1 = NULL;
    if (!f->label2)
        l2 = NULL;
    if (f->label1 && !l1)
        l1 = "";
    if (f->label2 && !l2)
        l2 = "";
    for (struct series *s = f->head; s; s = s->next)
        if (eq(s->l1, l1) && eq(s->l2, l2))
            return s;
    if (f->n >= METRICS_MAX_SERIES)
        return NULL;
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->l1 = l1 ? strdup(l1) : NULL;
    s->l2 = l2 ? strdup(l2) : NULL;
    if ((l1 && !s->l1) || (l2 && !s->l2)) {
        free(s->l1);
        free(s->l2);
        free(s);
        return NULL;
    }
    s->next = f->head;
    f->head = s;
    f->n++;
    return s;
}

void
metrics_add(enum metrics_id id, const char *l1, const char *l2, double v)
{
    if ((unsigned)id >= METRICS_COUNT)
        return;
    struct family *f = &fams[id];
    if (f->kind == HISTOGRAM || (f->kind == COUNTER && !(v >= 0)))
        return;
    pthread_mutex_lock(&f->mu);
    struct series *s = lookup(f, l1, l2);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&f->mu);
}

void
metrics_set(enum metrics_id id, const char *l1, const char *l2, double v)
{
    if ((unsigned)id >= METRICS_COUNT || fams[id].kind != GAUGE)
        return;
    struct family *f = &fams[id];
    pthread_mutex_lock(&f->mu);
    struct series *s = lookup(f, l1, l2);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&f->mu);
}

void
metrics_observe(enum metrics_id id, const char *l1, const char *l2, double v)
{
    if ((unsigned)id >= METRICS_COUNT || fams[id].kind != HISTOGRAM)
        return;
    struct family *f = &fams[id];
    pthread_mutex_lock(&f->mu);
    struct series *s = lookup(f, l1, l2);
    if (s) {
        s->value += v;
        s->count++;
        for (size_t i = 0; i < f->nbounds; i++)
            if (v <= f->bounds[i]) {
                s->buckets[i]++;
                break;
            }
    }
    pthread_mutex_unlock(&f->mu);
}

static void
free_list(struct series *s)
{
    while (s) {
        struct series *next = s->next;
        free(s->l1);
        free(s->l2);
        free(s);
        s = next;
    }
}

void
metrics_reset(enum metrics_id id)
{
    if ((unsigned)id >= METRICS_COUNT)
        return;
    struct family *f = &fams[id];
    pthread_mutex_lock(&f->mu);
    struct series *old = f->head;
    f->head = NULL;
    f->n = 0;
    pthread_mutex_unlock(&f->mu);
    free_list(old);
}

double
metrics_value(enum metrics_id id, const char *l1, const char *l2)
{
    if ((unsigned)id >= METRICS_COUNT)
        return 0;
    struct family *f = &fams[id];
    double v = 0;
    if (!f->label1)
        l1 = NULL;
    if (!f->label2)
        l2 = NULL;
    pthread_mutex_lock(&f->mu);
    for (struct series *s = f->head; s; s = s->next)
        if (eq(s->l1, l1 ? l1 : (f->label1 ? "" : NULL)) &&
            eq(s->l2, l2 ? l2 : (f->label2 ? "" : NULL))) {
            v = f->kind == HISTOGRAM ? (double)s->count : s->value;
            break;
        }
    pthread_mutex_unlock(&f->mu);
    return v;
}

void
metrics_hook_failure(const char *hook)
{
    metrics_add(METRICS_HOOK_FAILURES, hook ? hook : "unknown", NULL, 1);
}

double
metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -- Rendering ----------------------------------------------------------- */

/* Go's strconv.FormatFloat(v, 'g', -1, 64) is what client_golang writes;
 * %.17g round-trips and integers print without a fraction. */
static void
add_num(struct buf *b, double v)
{
    if (isnan(v))
        buf_adds(b, "NaN");
    else if (isinf(v))
        buf_adds(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_addf(b, "%.0f", v);
    else {
        char tmp[64];
        /* the shortest of %.15g..%.17g that reads back the same */
        for (int p = 15; p <= 17; p++) {
            snprintf(tmp, sizeof tmp, "%.*g", p, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        buf_adds(b, tmp);
    }
}

/* Label value escaping of the text format: backslash, quote, newline. */
static void
add_label(struct buf *b, bool *first, const char *name, const char *value)
{
    buf_addc(b, *first ? '{' : ',');
    *first = false;
    buf_adds(b, name);
    buf_adds(b, "=\"");
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            buf_adds(b, "\\\\");
        else if (*p == '"')
            buf_adds(b, "\\\"");
        else if (*p == '\n')
            buf_adds(b, "\\n");
        else
            buf_addc(b, *p);
    }
    buf_addc(b, '"');
}

static void
add_line(struct buf *b, const struct family *f, const char *suffix,
         const struct series *s, const char *le, double v)
{
    bool first = true;
    buf_adds(b, METRICS_PREFIX);
    buf_adds(b, f->name);
    buf_adds(b, suffix);
    if (f->label1)
        add_label(b, &first, f->label1, s->l1 ? s->l1 : "");
    if (f->label2)
        add_label(b, &first, f->label2, s->l2 ? s->l2 : "");
    if (le)
        add_label(b, &first, "le", le);
    if (!first)
        buf_addc(b, '}');
    buf_addc(b, ' ');
    add_num(b, v);
    buf_addc(b, '\n');
}

static void
render_family(struct buf *b, struct family *f)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    buf_addf(b, "# HELP %s%s %s\n", METRICS_PREFIX, f->name, f->help);
    buf_addf(b, "# TYPE %s%s %s\n", METRICS_PREFIX, f->name, types[f->kind]);
    pthread_mutex_lock(&f->mu);
    /* Label-less gauges with no observation yet still render a 0 sample,
     * so the family is always scrapeable (config_last_reload_*). */
    if (!f->head && !f->label1 && f->kind != HISTOGRAM) {
        struct series zero = {0};
        add_line(b, f, "", &zero, NULL, 0);
    }
    for (const struct series *s = f->head; s; s = s->next) {
        if (f->kind != HISTOGRAM) {
            add_line(b, f, "", s, NULL, s->value);
            continue;
        }
        unsigned long long cum = 0;
        for (size_t i = 0; i < f->nbounds; i++) {
            struct buf le;
            buf_init(&le, 64);
            add_num(&le, f->bounds[i]);
            cum += s->buckets[i];
            add_line(b, f, "_bucket", s, le.data ? le.data : "0", (double)cum);
            buf_free(&le);
        }
        add_line(b, f, "_bucket", s, "+Inf", (double)s->count);
        add_line(b, f, "_sum", s, NULL, s->value);
        add_line(b, f, "_count", s, NULL, (double)s->count);
    }
    pthread_mutex_unlock(&f->mu);
}

int
metrics_render(struct buf *out)
{
    for (size_t i = 0; i < METRICS_COUNT; i++) {
        render_family(out, &fams[i]);
        if (!out->data)
            return -1;   /* the bound was hit: buf freed its contents */
    }
    return 0;
}

void
metrics_free_all(void)
{
    for (size_t i = 0; i < METRICS_COUNT; i++)
        metrics_reset((enum metrics_id)i);
}
