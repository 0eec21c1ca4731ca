/* flags.h: pflag-compatible command-line parsing into struct options.
 * Provides: the complete flag set of prometheus-adapter v0.12 (spec-server.md
 * §8.2, audit included) plus promlua-adapter's own flags, driven by one
 * declarative table in flags.c (name, type, default, offset, help, status);
 * parsing with Go/pflag semantics and messages; --help usage; warnings for
 * flags that are accepted but not (yet) implemented.
 * Uses: libc and log.h only.
 * Must never: exit the process (main decides from the return code), or keep
 * pointers into argv (every string in struct options is owned by it). */
#ifndef ADAPTER_FLAGS_H
#define ADAPTER_FLAGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A list of owned strings ([]string, stringArray, namedCertKey flags). */
struct strv {
    char **v;
    size_t n;
};

/* Upper bound on the number of table entries (checked at compile time). */
#define FLAGS_MAX 128

/* Every duration is stored as int64 milliseconds (Go syntax on the command
 * line: "1m30s", "500ms", "1.5h", "0"). Strings are owned (never NULL after
 * flags_parse, "" when empty); free everything with options_free. */
struct options {
    /* prometheus-adapter's own */
    char *prometheus_url;
    bool prometheus_auth_incluster;
    char *prometheus_auth_config;
    char *prometheus_ca_file;
    char *prometheus_client_tls_cert_file;
    char *prometheus_client_tls_key_file;
    char *prometheus_token_file;
    struct strv prometheus_header;          /* "Name=value" entries */
    char *prometheus_verb;
    char *config;
    int64_t metrics_relist_interval_ms;
    int64_t metrics_max_age_ms;
    bool disable_http2;
    /* custom-metrics-apiserver AdapterBase */
    char *lister_kubeconfig;
    int64_t discovery_interval_ms;
    double client_qps;
    int client_burst;
    /* secure serving */
    char *bind_address;
    int secure_port;
    char *cert_dir;
    char *tls_cert_file;
    char *tls_private_key_file;
    struct strv tls_cipher_suites;
    char *tls_min_version;
    struct strv tls_sni_cert_key;
    int http2_max_streams_per_connection;
    bool permit_port_sharing;
    bool permit_address_sharing;
    /* delegated authentication */
    char *authentication_kubeconfig;
    int64_t authentication_token_webhook_cache_ttl_ms;
    char *client_ca_file;
    char *requestheader_client_ca_file;
    struct strv requestheader_username_headers;
    struct strv requestheader_group_headers;
    struct strv requestheader_extra_headers_prefix;
    struct strv requestheader_allowed_names;
    bool authentication_skip_lookup;
    bool authentication_tolerate_lookup_failure;
    /* delegated authorization */
    char *authorization_kubeconfig;
    int64_t authorization_webhook_cache_authorized_ttl_ms;
    int64_t authorization_webhook_cache_unauthorized_ttl_ms;
    struct strv authorization_always_allow_paths;
    /* audit (accepted; not implemented) */
    char *audit_policy_file;
    char *audit_log_path;
    int audit_log_maxage;
    int audit_log_maxbackup;
    int audit_log_maxsize;
    char *audit_log_format;
    char *audit_log_version;
    bool audit_log_compress;
    char *audit_log_mode;
    int audit_log_batch_buffer_size;
    int audit_log_batch_max_size;
    int64_t audit_log_batch_max_wait_ms;
    bool audit_log_batch_throttle_enable;
    double audit_log_batch_throttle_qps;
    int audit_log_batch_throttle_burst;
    bool audit_log_truncate_enabled;
    int64_t audit_log_truncate_max_batch_size;
    int64_t audit_log_truncate_max_event_size;
    char *audit_webhook_config_file;
    int64_t audit_webhook_initial_backoff_ms;
    char *audit_webhook_version;
    char *audit_webhook_mode;
    int audit_webhook_batch_buffer_size;
    int audit_webhook_batch_max_size;
    int64_t audit_webhook_batch_max_wait_ms;
    bool audit_webhook_batch_throttle_enable;
    double audit_webhook_batch_throttle_qps;
    int audit_webhook_batch_throttle_burst;
    bool audit_webhook_truncate_enabled;
    int64_t audit_webhook_truncate_max_batch_size;
    int64_t audit_webhook_truncate_max_event_size;
    /* features */
    bool profiling;
    bool contention_profiling;
    char *debug_socket_path;
    bool enable_priority_and_fairness;
    /* logging */
    int v;
    char *vmodule;
    int64_t log_flush_frequency_ms;
    /* promlua-adapter's own */
    char *lua_dir;
    struct strv lua_script;                 /* repeatable, no comma split */
    int64_t lua_hook_timeout_ms;
    int64_t prometheus_timeout_ms;
    int prometheus_max_get_length;
    int64_t query_cache_ttl_ms;
    int64_t request_timeout_ms;
    int max_requests_inflight;
    char *metrics_bind_address;
    char *logging_format;
    int64_t shutdown_delay_duration_ms;

    /* Which table entries were given on the command line (by table index);
     * read through flags_was_set. */
    unsigned char set_[FLAGS_MAX];
};

enum flags_result {
    FLAGS_OK = 0,      /* parsed; continue start-up */
    FLAGS_HELP = 1,    /* usage printed to stdout; exit 0 */
    FLAGS_ERROR = 2,   /* err holds the pflag message; usage already printed
                        * to stderr; exit 2 */
};

/* Fills *o with the defaults, then applies argv (argv[0] and every other
 * positional word are ignored). Prints deprecation notices to stderr as
 * pflag does. On FLAGS_ERROR *o still owns whatever was parsed: call
 * options_free in every case. */
int flags_parse(int argc, char **argv, struct options *o,
                char *err, size_t errlen);
void flags_usage(FILE *f);
void options_free(struct options *o);
/* name without the leading dashes, e.g. "secure-port" (or "v"). */
bool flags_was_set(const struct options *o, const char *name);
/* Logs a warning for each flag given on the command line with a value other
 * than its default whose feature is not implemented (yet). */
void flags_warn_unimplemented(const struct options *o);

/* The effective value of flag `name` in pflag's text form (Value.String():
 * "10m0s", "[a,b]", "true", "0.5") written to out; returns out, or NULL
 * for an unknown name. For logs, debugging and the specs (through FFI). */
const char *flags_value(const struct options *o, const char *name, char *out,
                        size_t outlen);
/* sizeof(struct options), for callers that cannot see the struct (FFI). */
size_t flags_options_size(void);

/* Logs every flag's effective value at --v >= 1 as "FLAG: --name=\"value\""
 * (component-base's PrintFlags), values in pflag's text form. */
void flags_log(const struct options *o);

/* Go time.Duration.String() of a millisecond count ("1m30s", "500ms",
 * "0s", "1h0m0s") into out. */
void flags_format_duration(int64_t ms, char *out, size_t outlen);

/* Go time.ParseDuration into milliseconds (truncated toward zero); the
 * message is Go's ("time: invalid duration \"x\""). Exposed for reuse. */
int flags_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
#endif
