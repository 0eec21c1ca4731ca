/* metrics.h: the adapter's own metrics, served on /metrics.
 * Provides: a process-wide registry of a fixed set of families (counters,
 * gauges, histograms with at most two labels each), named
 * promlua_adapter_*, and their rendering in the Prometheus text exposition
 * format (version 0.0.4).
 * Uses: buf.h and pthreads only. Never logs, never calls Lua or the
 * network, so any module (including log.c's callers and hooks) may record.
 * Threads: every call is thread-safe. One short mutex-held section per
 * observation (lookup of the label set in a small list, then the update);
 * rendering copies nothing it does not own and holds one family's lock at
 * a time. The number of label sets per family is capped (METRICS_MAX_SERIES);
 * observations beyond the cap are dropped rather than growing memory. */
#ifndef ADAPTER_METRICS_H
#define ADAPTER_METRICS_H
#include <stddef.h>
#include "buf.h"

#define METRICS_PREFIX "promlua_adapter_"
#define METRICS_MAX_SERIES 4096

/* The families. Label names are listed after each (l1, l2); pass NULL for
 * labels a family does not have. */
enum metrics_id {
    METRICS_BUILD_INFO,        /* gauge {version, luajit} = 1 */
    METRICS_RELOAD_OK,         /* gauge config_last_reload_successful */
    METRICS_RELOAD_TS,         /* gauge config_last_reload_success_timestamp_seconds */
    METRICS_RELOADS,           /* counter config_reloads_total {outcome} */
    METRICS_HTTP_REQUESTS,     /* counter http_requests_total {route, code} */
    METRICS_HTTP_DURATION,     /* histogram http_request_duration_seconds {route, code} */
    METRICS_HTTP_INFLIGHT,     /* gauge http_requests_inflight */
    METRICS_PROM_DURATION,     /* histogram prometheus_request_duration_seconds {endpoint} */
    METRICS_PROM_ERRORS,       /* counter prometheus_request_errors_total {endpoint} */
    METRICS_KUBE_DURATION,     /* histogram kubernetes_request_duration_seconds {verb}
                                * (discovery, list, tokenreview,
                                * subjectaccessreview, configmap) */
    METRICS_KUBE_ERRORS,       /* counter kubernetes_request_errors_total {verb}
                                * (the same, plus watch) */
    METRICS_KUBE_WATCHES,      /* counter kubernetes_watches_total */
    METRICS_HOOK_FAILURES,     /* counter hook_failures_total {hook} */
    METRICS_CACHE_LOOKUPS,     /* counter cache_lookups_total {cache, result} */
    METRICS_RELIST_DURATION,   /* histogram relist_duration_seconds {kind} */
    METRICS_RELIST_RUNS,       /* counter relist_runs_total {kind, outcome} */
    METRICS_RULE_RELIST_OK,    /* gauge rule_last_relist_successful {rule} */
    METRICS_RULE_SERIES,       /* gauge rule_series {rule} */
    METRICS_RULE_METRICS,      /* gauge rule_metrics {rule} */
    /* Appended after the first set so the ids above (which the FFI specs
     * use as numbers) keep their values. */
    METRICS_RULE_RELIST_DURATION, /* gauge rule_last_relist_duration_seconds {rule} */
    METRICS_RESOURCE_FAILURES, /* counter resource_query_failures_total {kind} */
    METRICS_COUNT
};

/* counter/gauge += v (histograms: ignored). */
void metrics_add(enum metrics_id id, const char *l1, const char *l2, double v);
/* gauge = v (counters: ignored, they only go up). */
void metrics_set(enum metrics_id id, const char *l1, const char *l2, double v);
/* histogram observation v (seconds). */
void metrics_observe(enum metrics_id id, const char *l1, const char *l2,
                     double v);
/* Drops every label set of a family (per-rule gauges before a relist
 * publishes the new set, so rules removed by a reload disappear). */
void metrics_reset(enum metrics_id id);
/* Current value of a counter/gauge label set (histograms: the count);
 * 0 when absent. For tests and the explain command. */
double metrics_value(enum metrics_id id, const char *l1, const char *l2);

/* The counter engineer L's Lua hooks increment when a hook errors or
 * returns a wrong shape: hook_failures_total{hook}. */
void metrics_hook_failure(const char *hook);

/* Monotonic clock in seconds, for timing observations. */
double metrics_now(void);

/* Appends the whole registry in text format to out. 0 / -1 (buffer
 * bound reached). */
int metrics_render(struct buf *out);
/* Frees every label set (end of main, so leak checkers stay quiet). The
 * registry stays usable. */
void metrics_free_all(void);
#endif
