/* flags.c: the option table and a pflag-compatible parser (see flags.h).
 * Uses: libc, log.h. Must never: exit, or keep pointers into argv.
 * The table below is the single source of truth for parsing, defaults,
 * --help and the "accepted but not implemented" warnings: defaults are
 * strings run through the same setter as command-line values, so a default
 * can never disagree with what parsing that text would give. */
#include "flags.h"
#include "log.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

/* -- Table ----------------------------------------------------------------- */

enum opt_type {
    T_BOOL, T_INT, T_INT64, T_FLOAT, T_STRING, T_DURATION,
    T_SLICE,        /* []string: CSV split, repeat appends, first replaces */
    T_ARRAY,        /* stringArray: one entry per occurrence */
    T_IP,           /* net.IP, stored as its text */
    T_CERTKEY,      /* namedCertKey: "cert,key[:names]", repeatable */
    T_LEVEL,        /* klog verbosity (int, shorthand -v) */
};

enum opt_status {
    S_IMPL,         /* implemented (or will be by the module that owns it) */
    S_LATER,        /* accepted; feature planned, not implemented yet */
    S_IGNORED,      /* accepted; never has an effect in this implementation */
};

struct opt {
    const char *name;
    enum opt_type type;
    const char *def;        /* default as command-line text ("" = zero) */
    size_t off;             /* offsetof(struct options, field) */
    enum opt_status status;
    const char *help;
    const char *deprecated; /* pflag deprecation message, or NULL */
};

#define O(n, t, d, f, s, h) { n, t, d, offsetof(struct options, f), s, h, NULL }

static const struct opt opts[] = {
    /* prometheus-adapter */
    O("prometheus-url", T_STRING, "https://localhost", prometheus_url, S_IMPL,
      "URL for connecting to Prometheus."),
    O("prometheus-auth-incluster", T_BOOL, "false", prometheus_auth_incluster,
      S_IMPL, "use auth details from the in-cluster kubeconfig when connecting to prometheus."),
    O("prometheus-auth-config", T_STRING, "", prometheus_auth_config, S_IMPL,
      "kubeconfig file used to configure auth when connecting to Prometheus."),
    O("prometheus-ca-file", T_STRING, "", prometheus_ca_file, S_IMPL,
      "Optional CA file to use when connecting with Prometheus"),
    O("prometheus-client-tls-cert-file", T_STRING, "",
      prometheus_client_tls_cert_file, S_IMPL,
      "Optional client TLS cert file to use when connecting with Prometheus, auto-renewal is not supported"),
    O("prometheus-client-tls-key-file", T_STRING, "",
      prometheus_client_tls_key_file, S_IMPL,
      "Optional client TLS key file to use when connecting with Prometheus, auto-renewal is not supported"),
    O("prometheus-token-file", T_STRING, "", prometheus_token_file, S_IMPL,
      "Optional file containing the bearer token to use when connecting with Prometheus"),
    O("prometheus-header", T_ARRAY, "", prometheus_header, S_IMPL,
      "Optional header to set on requests to prometheus-url. Can be repeated"),
    O("prometheus-verb", T_STRING, "GET", prometheus_verb, S_IMPL,
      "HTTP verb to set on requests to Prometheus. Possible values: \"GET\", \"POST\""),
    O("config", T_STRING, "", config, S_IMPL,
      "Configuration file containing details of how to transform between Prometheus metrics and custom metrics API resources"),
    O("metrics-relist-interval", T_DURATION, "10m0s", metrics_relist_interval_ms,
      S_IMPL, "interval at which to re-list the set of all available metrics from Prometheus"),
    O("metrics-max-age", T_DURATION, "0s", metrics_max_age_ms, S_IMPL,
      "period for which to query the set of available metrics from Prometheus"),
    O("disable-http2", T_BOOL, "false", disable_http2, S_IGNORED,
      "Disable HTTP/2 support (the server always speaks HTTP/1.1)"),
    /* AdapterBase */
    O("lister-kubeconfig", T_STRING, "", lister_kubeconfig, S_IMPL,
      "kubeconfig file pointing at the 'core' kubernetes server with enough rights to list any described objects"),
    O("discovery-interval", T_DURATION, "0s", discovery_interval_ms, S_IMPL,
      "Interval at which to refresh API discovery information (0s: every 10m)"),
    O("client-qps", T_FLOAT, "5", client_qps, S_IMPL,
      "Rate limit for the Kubernetes client (queries per second)"),
    O("client-burst", T_INT, "10", client_burst, S_IMPL,
      "Burst for the Kubernetes client rate limit"),
    /* secure serving */
    O("bind-address", T_IP, "0.0.0.0", bind_address, S_IMPL,
      "The IP address on which to listen for the --secure-port port. If blank or an unspecified address (0.0.0.0 or ::), all interfaces and IP address families will be used."),
    O("secure-port", T_INT, "443", secure_port, S_IMPL,
      "The port on which to serve HTTPS with authentication and authorization. If 0, don't serve HTTPS at all."),
    O("cert-dir", T_STRING, "apiserver.local.config/certificates", cert_dir,
      S_IMPL, "The directory where the TLS certs are located. If --tls-cert-file and --tls-private-key-file are provided, this flag will be ignored."),
    O("tls-cert-file", T_STRING, "", tls_cert_file, S_IMPL,
      "File containing the default x509 Certificate for HTTPS. (CA cert, if any, concatenated after server cert)."),
    O("tls-private-key-file", T_STRING, "", tls_private_key_file, S_IMPL,
      "File containing the default x509 private key matching --tls-cert-file."),
    O("tls-cipher-suites", T_SLICE, "", tls_cipher_suites, S_IMPL,
      "Comma-separated list of cipher suites for the server. If omitted, the default Go cipher suites will be used."),
    O("tls-min-version", T_STRING, "", tls_min_version, S_IMPL,
      "Minimum TLS version supported. Possible values: VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13"),
    O("tls-sni-cert-key", T_CERTKEY, "", tls_sni_cert_key, S_LATER,
      "A pair of x509 certificate and private key file paths, optionally suffixed with a list of domain patterns. Repeatable."),
    O("http2-max-streams-per-connection", T_INT, "0",
      http2_max_streams_per_connection, S_IGNORED,
      "The limit that the server gives to clients for the maximum number of streams in an HTTP/2 connection."),
    O("permit-port-sharing", T_BOOL, "false", permit_port_sharing, S_LATER,
      "If true, SO_REUSEPORT will be used when binding the port."),
    O("permit-address-sharing", T_BOOL, "false", permit_address_sharing,
      S_LATER, "If true, SO_REUSEADDR will be used when binding the port."),
    /* delegated authentication */
    O("authentication-kubeconfig", T_STRING, "", authentication_kubeconfig,
      S_IMPL, "kubeconfig file pointing at the 'core' kubernetes server with enough rights to create tokenreviews.authentication.k8s.io."),
    O("authentication-token-webhook-cache-ttl", T_DURATION, "10s",
      authentication_token_webhook_cache_ttl_ms, S_IMPL,
      "The duration to cache responses from the webhook token authenticator."),
    O("client-ca-file", T_STRING, "", client_ca_file, S_IMPL,
      "If set, any request presenting a client certificate signed by one of the authorities in the client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate."),
    O("requestheader-client-ca-file", T_STRING, "", requestheader_client_ca_file,
      S_IMPL, "Root certificate bundle to use to verify client certificates on incoming requests before trusting usernames in headers specified by --requestheader-username-headers."),
    O("requestheader-username-headers", T_SLICE, "x-remote-user",
      requestheader_username_headers, S_IMPL,
      "List of request headers to inspect for usernames. X-Remote-User is common."),
    O("requestheader-group-headers", T_SLICE, "x-remote-group",
      requestheader_group_headers, S_IMPL,
      "List of request headers to inspect for groups. X-Remote-Group is suggested."),
    O("requestheader-extra-headers-prefix", T_SLICE, "x-remote-extra-",
      requestheader_extra_headers_prefix, S_IMPL,
      "List of request header prefixes to inspect. X-Remote-Extra- is suggested."),
    O("requestheader-allowed-names", T_SLICE, "", requestheader_allowed_names,
      S_IMPL, "List of client certificate common names to allow to provide usernames in headers specified by --requestheader-username-headers. If empty, any client certificate validated by the authorities in --requestheader-client-ca-file is allowed."),
    O("authentication-skip-lookup", T_BOOL, "false", authentication_skip_lookup,
      S_IMPL, "If false, the authentication-kubeconfig will be used to lookup missing authentication configuration from the cluster."),
    O("authentication-tolerate-lookup-failure", T_BOOL, "false",
      authentication_tolerate_lookup_failure, S_IMPL,
      "If true, failures to look up missing authentication configuration from the cluster are not considered fatal."),
    /* delegated authorization */
    O("authorization-kubeconfig", T_STRING, "", authorization_kubeconfig, S_IMPL,
      "kubeconfig file pointing at the 'core' kubernetes server with enough rights to create subjectaccessreviews.authorization.k8s.io."),
    O("authorization-webhook-cache-authorized-ttl", T_DURATION, "10s",
      authorization_webhook_cache_authorized_ttl_ms, S_IMPL,
      "The duration to cache 'authorized' responses from the webhook authorizer."),
    O("authorization-webhook-cache-unauthorized-ttl", T_DURATION, "10s",
      authorization_webhook_cache_unauthorized_ttl_ms, S_IMPL,
      "The duration to cache 'unauthorized' responses from the webhook authorizer."),
    O("authorization-always-allow-paths", T_SLICE, "/healthz,/readyz,/livez",
      authorization_always_allow_paths, S_IMPL,
      "A list of HTTP paths to skip during authorization, i.e. these are authorized without contacting the 'core' kubernetes server."),
    /* audit */
    O("audit-policy-file", T_STRING, "", audit_policy_file, S_LATER,
      "Path to the file that defines the audit policy configuration."),
    O("audit-log-path", T_STRING, "", audit_log_path, S_LATER,
      "If set, all requests coming to the apiserver will be logged to this file.  '-' means standard out."),
    O("audit-log-maxage", T_INT, "0", audit_log_maxage, S_LATER,
      "The maximum number of days to retain old audit log files based on the timestamp encoded in their filename."),
    O("audit-log-maxbackup", T_INT, "0", audit_log_maxbackup, S_LATER,
      "The maximum number of old audit log files to retain. Setting a value of 0 will mean there's no restriction on the number of files."),
    O("audit-log-maxsize", T_INT, "0", audit_log_maxsize, S_LATER,
      "The maximum size in megabytes of the audit log file before it gets rotated."),
    O("audit-log-format", T_STRING, "json", audit_log_format, S_LATER,
      "Format of saved audits. \"legacy\" indicates 1-line text format for each event. \"json\" indicates structured json format."),
    O("audit-log-version", T_STRING, "audit.k8s.io/v1", audit_log_version,
      S_LATER, "API group and version used for serializing audit events written to log."),
    O("audit-log-compress", T_BOOL, "false", audit_log_compress, S_LATER,
      "If set, the rotated log files will be compressed using gzip."),
    O("audit-log-mode", T_STRING, "blocking", audit_log_mode, S_LATER,
      "Strategy for sending audit events. Known modes are batch,blocking,blocking-strict."),
    O("audit-log-batch-buffer-size", T_INT, "10000", audit_log_batch_buffer_size,
      S_LATER, "The size of the buffer to store events before batching and writing. Only used in batch mode."),
    O("audit-log-batch-max-size", T_INT, "1", audit_log_batch_max_size, S_LATER,
      "The maximum size of a batch. Only used in batch mode."),
    O("audit-log-batch-max-wait", T_DURATION, "0s", audit_log_batch_max_wait_ms,
      S_LATER, "The amount of time to wait before force writing the batch that hadn't reached the max size. Only used in batch mode."),
    O("audit-log-batch-throttle-enable", T_BOOL, "false",
      audit_log_batch_throttle_enable, S_LATER,
      "Whether batching throttling is enabled. Only used in batch mode."),
    O("audit-log-batch-throttle-qps", T_FLOAT, "0", audit_log_batch_throttle_qps,
      S_LATER, "Maximum average number of batches per second. Only used in batch mode."),
    O("audit-log-batch-throttle-burst", T_INT, "0",
      audit_log_batch_throttle_burst, S_LATER,
      "Maximum number of requests sent at the same moment if ThrottleQPS was not utilized before. Only used in batch mode."),
    O("audit-log-truncate-enabled", T_BOOL, "false", audit_log_truncate_enabled,
      S_LATER, "Whether event and batch truncating is enabled."),
    O("audit-log-truncate-max-batch-size", T_INT64, "10485760",
      audit_log_truncate_max_batch_size, S_LATER,
      "Maximum size of the batch sent to the underlying backend."),
    O("audit-log-truncate-max-event-size", T_INT64, "102400",
      audit_log_truncate_max_event_size, S_LATER,
      "Maximum size of the audit event sent to the underlying backend."),
    O("audit-webhook-config-file", T_STRING, "", audit_webhook_config_file,
      S_LATER, "Path to a kubeconfig formatted file that defines the audit webhook configuration."),
    O("audit-webhook-initial-backoff", T_DURATION, "10s",
      audit_webhook_initial_backoff_ms, S_LATER,
      "The amount of time to wait before retrying the first failed request."),
    { "audit-webhook-batch-initial-backoff", T_DURATION, "10s",
      offsetof(struct options, audit_webhook_initial_backoff_ms), S_LATER,
      "The amount of time to wait before retrying the first failed request.",
      "Deprecated, use --audit-webhook-initial-backoff instead." },
    O("audit-webhook-version", T_STRING, "audit.k8s.io/v1", audit_webhook_version,
      S_LATER, "API group and version used for serializing audit events written to webhook."),
    O("audit-webhook-mode", T_STRING, "batch", audit_webhook_mode, S_LATER,
      "Strategy for sending audit events. Known modes are batch,blocking,blocking-strict."),
    O("audit-webhook-batch-buffer-size", T_INT, "10000",
      audit_webhook_batch_buffer_size, S_LATER,
      "The size of the buffer to store events before batching and writing. Only used in batch mode."),
    O("audit-webhook-batch-max-size", T_INT, "400", audit_webhook_batch_max_size,
      S_LATER, "The maximum size of a batch. Only used in batch mode."),
    O("audit-webhook-batch-max-wait", T_DURATION, "30s",
      audit_webhook_batch_max_wait_ms, S_LATER,
      "The amount of time to wait before force writing the batch that hadn't reached the max size. Only used in batch mode."),
    O("audit-webhook-batch-throttle-enable", T_BOOL, "true",
      audit_webhook_batch_throttle_enable, S_LATER,
      "Whether batching throttling is enabled. Only used in batch mode."),
    O("audit-webhook-batch-throttle-qps", T_FLOAT, "10",
      audit_webhook_batch_throttle_qps, S_LATER,
      "Maximum average number of batches per second. Only used in batch mode."),
    O("audit-webhook-batch-throttle-burst", T_INT, "15",
      audit_webhook_batch_throttle_burst, S_LATER,
      "Maximum number of requests sent at the same moment if ThrottleQPS was not utilized before. Only used in batch mode."),
    O("audit-webhook-truncate-enabled", T_BOOL, "false",
      audit_webhook_truncate_enabled, S_LATER,
      "Whether event and batch truncating is enabled."),
    O("audit-webhook-truncate-max-batch-size", T_INT64, "10485760",
      audit_webhook_truncate_max_batch_size, S_LATER,
      "Maximum size of the batch sent to the underlying backend."),
    O("audit-webhook-truncate-max-event-size", T_INT64, "102400",
      audit_webhook_truncate_max_event_size, S_LATER,
      "Maximum size of the audit event sent to the underlying backend."),
    /* features */
    O("profiling", T_BOOL, "true", profiling, S_IGNORED,
      "Enable profiling via web interface host:port/debug/pprof/ (no effect here)"),
    O("contention-profiling", T_BOOL, "false", contention_profiling, S_IGNORED,
      "Enable block profiling, if profiling is enabled (no effect here)"),
    O("debug-socket-path", T_STRING, "", debug_socket_path, S_IGNORED,
      "Use an unprotected (no authn/authz) unix-domain socket for profiling with the given path"),
    O("enable-priority-and-fairness", T_BOOL, "false",
      enable_priority_and_fairness, S_IGNORED,
      "If true, replace the max-in-flight handler with an enhanced one that queues and dispatches with priority and fairness"),
    /* logging */
    O("v", T_LEVEL, "0", v, S_IMPL, "number for the log level verbosity"),
    O("vmodule", T_STRING, "", vmodule, S_IGNORED,
      "comma-separated list of pattern=N settings for file-filtered logging (only works for text log format)"),
    O("log-flush-frequency", T_DURATION, "5s", log_flush_frequency_ms,
      S_IGNORED, "Maximum number of seconds between log flushes (lines are written unbuffered)"),
    /* promlua-adapter */
    O("lua-dir", T_STRING, "", lua_dir, S_IMPL,
      "Directory whose Lua modules override the built-in lua/adapter modules"),
    O("lua-script", T_ARRAY, "", lua_script, S_IMPL,
      "Lua hook file loaded at start-up (repeatable; later files override earlier ones)"),
    O("lua-hook-timeout", T_DURATION, "1s", lua_hook_timeout_ms, S_IMPL,
      "Upper bound on the time a Lua hook may run for one call"),
    O("prometheus-timeout", T_DURATION, "30s", prometheus_timeout_ms, S_IMPL,
      "Timeout of each Prometheus API call"),
    O("prometheus-max-get-length", T_INT, "8192", prometheus_max_get_length,
      S_IMPL, "Longest GET URL sent to Prometheus; longer queries are sent as POST"),
    O("query-cache-ttl", T_DURATION, "0s", query_cache_ttl_ms, S_IMPL,
      "How long identical Prometheus query results are reused (0s: no cache)"),
    O("request-timeout", T_DURATION, "1m0s", request_timeout_ms, S_IMPL,
      "Deadline of each API request"),
    O("max-requests-inflight", T_INT, "400", max_requests_inflight, S_IMPL,
      "Maximum number of API requests served at the same time (0: no limit)"),
    O("metrics-bind-address", T_STRING, "", metrics_bind_address, S_IMPL,
      "host:port of a plain-HTTP listener for /metrics (empty: /metrics only on the secure port)"),
    O("logging-format", T_STRING, "text", logging_format, S_IMPL,
      "Sets the log format. Permitted formats: \"text\", \"json\"."),
    O("shutdown-delay-duration", T_DURATION, "0s", shutdown_delay_duration_ms,
      S_IMPL, "Time to keep serving after SIGTERM before the listener closes"),
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))
_Static_assert(sizeof(opts) / sizeof(opts[0]) <= FLAGS_MAX,
               "raise FLAGS_MAX");

/* -- Helpers ---------------------------------------------------------------- */

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

/* Go %q of an argv word, enough for messages: escapes quotes, backslashes
 * and control bytes; other bytes (UTF-8) pass through. */
static void
goq(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (; *s && o + 6 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

static const struct opt *
find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

static void
strv_clear(struct strv *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int
strv_push(struct strv *l, const char *s, size_t len)
{
    char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    l->v = nv;
    char *c = strndup(s, len);
    if (!c)
        return -1;
    l->v[l->n++] = c;
    return 0;
}

/* -- Value parsers (Go strconv / time semantics) ---------------------------- */

int
flags_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen)
{
    static const struct { const char *u; int64_t ns; } units[] = {
        {"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"\xce\xbcs", 1000},
        {"ms", 1000000}, {"s", 1000000000LL}, {"m", 60000000000LL},
        {"h", 3600000000000LL},
    };
    char q[256];
    const char *orig = s;
    bool neg = false;
    double total = 0;   /* nanoseconds; a double keeps fractions exact enough */

    goq(q, sizeof(q), orig);
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (!strcmp(s, "0")) {
        *ms = 0;
        return 0;
    }
    if (!*s)
        goto invalid;
    while (*s) {
        double v = 0, f = 0, scale = 1;
        bool pre = false, post = false;
        if (!(*s == '.' || isdigit((unsigned char)*s)))
            goto invalid;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            pre = true;
        }
        if (*s == '.') {
            s++;
            while (isdigit((unsigned char)*s)) {
                f = f * 10 + (*s++ - '0');
                scale *= 10;
                post = true;
            }
        }
        if (!pre && !post)
            goto invalid;
        size_t ul = 0;
        while (s[ul] && s[ul] != '.' && !isdigit((unsigned char)s[ul]))
            ul++;
        if (ul == 0) {
            seterr(err, errlen, "time: missing unit in duration %s", q);
            return -1;
        }
        int64_t unit = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strlen(units[i].u) == ul && !strncmp(units[i].u, s, ul))
                unit = units[i].ns;
        if (!unit) {
            char u[64], uq[140];
            snprintf(u, sizeof(u), "%.*s", (int)(ul < 63 ? ul : 63), s);
            goq(uq, sizeof(uq), u);
            seterr(err, errlen, "time: unknown unit %s in duration %s", uq, q);
            return -1;
        }
        s += ul;
        total += v * (double)unit + f * ((double)unit / scale);
        if (total > 9223372036854775807.0)
            goto invalid;
    }
    *ms = (int64_t)(total / 1e6) * (neg ? -1 : 1);
    return 0;
invalid:
    seterr(err, errlen, "time: invalid duration %s", q);
    return -1;
}

/* strconv.ParseInt(s, 0, bits): optional sign, then 0x/0o/0b/0 prefixes
 * select the base; strtoull alone would accept spaces and "0x". */
static int
parse_int(const char *s, int bits, bool base10, long long *out, char *err,
          size_t errlen)
{
    char q[256];
    const char *p = s;
    bool neg = false;
    int base = 10;
    char *end;

    goq(q, sizeof(q), s);
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (base10) {
        /* strconv.ParseInt(s, 10, bits): digits only */
    } else if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        base = 8;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) {
        base = 2;
        p += 2;
    } else if (p[0] == '0' && p[1]) {
        base = 8;
        p += 1;
    }
    if (!isalnum((unsigned char)*p))
        goto syntax;
    errno = 0;
    unsigned long long m = strtoull(p, &end, base);
    if (*end)
        goto syntax;
    unsigned long long lim = bits == 32 ? 2147483647ULL
                                        : 9223372036854775807ULL;
    if (errno == ERANGE || m > lim + (neg ? 1 : 0)) {
        seterr(err, errlen, "strconv.ParseInt: parsing %s: value out of range",
               q);
        return -1;
    }
    *out = neg ? (long long)(0 - m) : (long long)m;
    return 0;
syntax:
    seterr(err, errlen, "strconv.ParseInt: parsing %s: invalid syntax", q);
    return -1;
}

static int
parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
    static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(s, t[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, f[i])) {
            *out = false;
            return 0;
        }
    }
    char q[256];
    goq(q, sizeof(q), s);
    seterr(err, errlen, "strconv.ParseBool: parsing %s: invalid syntax", q);
    return -1;
}

static int
parse_float(const char *s, double *out, char *err, size_t errlen)
{
    char q[256];
    char *end;
    goq(q, sizeof(q), s);
    if (!*s || isspace((unsigned char)*s))
        goto syntax;
    errno = 0;
    double v = strtod(s, &end);
    if (*end)
        goto syntax;
    /* strtod takes "nan(...)"/hex floats; Go takes NaN, Inf too. */
    if (errno == ERANGE && isinf(v)) {
        seterr(err, errlen,
               "strconv.ParseFloat: parsing %s: value out of range", q);
        return -1;
    }
    *out = v;
    return 0;
syntax:
    seterr(err, errlen, "strconv.ParseFloat: parsing %s: invalid syntax", q);
    return -1;
}

/* encoding/csv of one record, as pflag's readAsCSV: fields separated by
 * ',', a field starting with '"' is quoted ("" is a literal quote). */
static int
csv_split(struct strv *l, const char *s, char *err, size_t errlen)
{
    if (!*s)
        return 0;   /* "" is the empty slice */
    for (;;) {
        if (*s == '"') {
            char tmp[4096];
            size_t n = 0;
            s++;
            for (;;) {
                if (!*s) {
                    seterr(err, errlen,
                           "parse error on line 1, column %zu: extraneous or missing \" in quoted-field",
                           n + 1);
                    return -1;
                }
                if (*s == '"') {
                    if (s[1] == '"') {
                        s += 2;
                        if (n < sizeof(tmp) - 1)
                            tmp[n++] = '"';
                        continue;
                    }
                    s++;
                    break;
                }
                if (n < sizeof(tmp) - 1)
                    tmp[n++] = *s;
                s++;
            }
            if (*s && *s != ',') {
                seterr(err, errlen,
                       "parse error on line 1, column %zu: extraneous or missing \" in quoted-field",
                       n + 2);
                return -1;
            }
            if (strv_push(l, tmp, n) < 0)
                goto oom;
        } else {
            size_t n = strcspn(s, ",");
            if (memchr(s, '"', n)) {
                seterr(err, errlen,
                       "parse error on line 1, column %zu: bare \" in non-quoted-field",
                       (size_t)((const char *)memchr(s, '"', n) - s) + 1);
                return -1;
            }
            if (strv_push(l, s, n) < 0)
                goto oom;
            s += n;
        }
        if (!*s)
            return 0;
        s++;    /* ',' */
    }
oom:
    seterr(err, errlen, "out of memory");
    return -1;
}

/* Stores text into the field of `op`. `first` says whether this is the
 * first command-line occurrence (slices then drop their default). The
 * message left in err is the pflag "reason" part. */
static int
set_value(struct options *o, const struct opt *op, const char *val, bool first,
          char *err, size_t errlen)
{
    void *f = (char *)o + op->off;
    long long iv;

    switch (op->type) {
    case T_BOOL:
        return parse_bool(val, (bool *)f, err, errlen);
    case T_INT:
    case T_LEVEL:
        /* klog's Level is strconv.ParseInt(v, 10, 32): no base prefixes */
        if (parse_int(val, op->type == T_LEVEL ? 32 : 64, op->type == T_LEVEL,
                      &iv, err, errlen) < 0)
            return -1;
        if (iv > 2147483647LL || iv < -2147483648LL) {
            char q[256];
            goq(q, sizeof(q), val);
            seterr(err, errlen,
                   "strconv.ParseInt: parsing %s: value out of range", q);
            return -1;
        }
        *(int *)f = (int)iv;
        return 0;
    case T_INT64:
        if (parse_int(val, 64, false, &iv, err, errlen) < 0)
            return -1;
        *(int64_t *)f = iv;
        return 0;
    case T_FLOAT:
        return parse_float(val, (double *)f, err, errlen);
    case T_DURATION:
        return flags_parse_duration(val, (int64_t *)f, err, errlen);
    case T_IP: {
        /* net.ParseIP(strings.TrimSpace(s)) */
        char tmp[INET6_ADDRSTRLEN + 8];
        unsigned char bin[16];
        const char *b = val;
        while (isspace((unsigned char)*b))
            b++;
        size_t n = strlen(b);
        while (n && isspace((unsigned char)b[n - 1]))
            n--;
        if (n >= sizeof(tmp))
            goto badip;
        memcpy(tmp, b, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET, tmp, bin) != 1
            && inet_pton(AF_INET6, tmp, bin) != 1)
            goto badip;
        char *c = strdup(tmp);
        if (!c)
            goto oom;
        free(*(char **)f);
        *(char **)f = c;
        return 0;
    badip: {
            char q[256];
            goq(q, sizeof(q), val);
            seterr(err, errlen, "failed to parse IP: %s", q);
            return -1;
        }
    }
    case T_STRING: {
        char *c = strdup(val);
        if (!c)
            goto oom;
        free(*(char **)f);
        *(char **)f = c;
        return 0;
    }
    case T_SLICE: {
        struct strv add = {0};
        if (csv_split(&add, val, err, errlen) < 0) {
            strv_clear(&add);
            return -1;
        }
        struct strv *l = f;
        if (first)
            strv_clear(l);
        for (size_t i = 0; i < add.n; i++)
            if (strv_push(l, add.v[i], strlen(add.v[i])) < 0) {
                strv_clear(&add);
                goto oom;
            }
        strv_clear(&add);
        return 0;
    }
    case T_CERTKEY: {
        /* k8s NamedCertKey.Set: "cert,key[:names]", exactly one comma
         * before the colon */
        const char *colon = strchr(val, ':');
        size_t pre = colon ? (size_t)(colon - val) : strlen(val);
        const char *comma = memchr(val, ',', pre);
        if (!comma || memchr(comma + 1, ',', pre - (size_t)(comma - val) - 1)) {
            seterr(err, errlen,
                   "expected comma separated certificate and key file paths");
            return -1;
        }
    }
        /* fall through */
    case T_ARRAY:
        /* pflag stringArray: every occurrence appends, even "" */
        if (strv_push((struct strv *)f, val, strlen(val)) < 0)
            goto oom;
        return 0;
    }
    return 0;
oom:
    seterr(err, errlen, "out of memory");
    return -1;
}

/* -- Public API ------------------------------------------------------------- */

void
options_free(struct options *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < NOPTS; i++) {
        void *f = (char *)o + opts[i].off;
        switch (opts[i].type) {
        case T_STRING:
        case T_IP:
            free(*(char **)f);
            *(char **)f = NULL;
            break;
        case T_SLICE:
        case T_ARRAY:
        case T_CERTKEY:
            strv_clear(f);
            break;
        default:
            break;
        }
    }
}

static int
set_defaults(struct options *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *op = &opts[i];
        if (op->deprecated)
            continue;   /* an alias shares its field with the real flag */
        if ((op->type == T_ARRAY || op->type == T_CERTKEY) && !*op->def)
            continue;
        char e[256];
        if (set_value(o, op, op->def, false, e, sizeof(e)) < 0) {
            seterr(err, errlen, "bad default for --%s: %s", op->name, e);
            return -1;
        }
    }
    return 0;
}

static bool
takes_no_arg(const struct opt *op)
{
    return op->type == T_BOOL;   /* pflag NoOptDefVal "true" */
}

/* Applies one value, recording the flag as set; builds the pflag message. */
static int
apply(struct options *o, const struct opt *op, const char *val,
      char *err, size_t errlen)
{
    size_t idx = (size_t)(op - opts);
    char e[512], q[256];
    bool first = !o->set_[idx];
    /* Deprecated aliases share a field: "first" is about the field. */
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].off == op->off && o->set_[i])
            first = false;
    if (set_value(o, op, val, first, e, sizeof(e)) < 0) {
        goq(q, sizeof(q), val);
        seterr(err, errlen, "invalid argument %s for \"--%s\" flag: %s", q,
               op->name, e);
        return -1;
    }
    o->set_[idx] = 1;
    if (op->deprecated)
        fprintf(stderr, "Flag --%s has been deprecated, %s\n", op->name,
                op->deprecated);
    return 0;
}

int
flags_parse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
    char e[1024];
    if (set_defaults(o, err, errlen) < 0)
        return FLAGS_ERROR;   /* a table bug; message says which flag */

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0')
            continue;   /* positional words (Helm's extra /adapter) */
        if (a[1] == '-' && a[2] == '\0')
            break;      /* "--" ends the flags */
        if (a[1] == '-') {
            const char *name = a + 2;
            if (name[0] == '-' || name[0] == '=') {
                seterr(e, sizeof(e), "bad flag syntax: %s", a);
                goto fail;
            }
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            if ((nlen == 4 && !strncmp(name, "help", 4))) {
                flags_usage(stdout);
                return FLAGS_HELP;
            }
            const struct opt *op = find_opt(name, nlen);
            if (!op) {
                seterr(e, sizeof(e), "unknown flag: --%.*s", (int)nlen, name);
                goto fail;
            }
            const char *val;
            if (eq)
                val = eq + 1;
            else if (takes_no_arg(op))
                val = "true";
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                seterr(e, sizeof(e), "flag needs an argument: --%s", op->name);
                goto fail;
            }
            if (apply(o, op, val, e, sizeof(e)) < 0)
                goto fail;
            continue;
        }
        /* Shorthands: only -v and -h exist. pflag walks the letters. */
        const char *sh = a + 1;
        while (*sh) {
            char c = *sh;
            if (c == 'h') {
                flags_usage(stdout);
                return FLAGS_HELP;
            }
            if (c != 'v') {
                seterr(e, sizeof(e), "unknown shorthand flag: '%c' in %s", c,
                       a);
                goto fail;
            }
            const struct opt *op = find_opt("v", 1);
            const char *val;
            if (sh[1] == '=')
                val = sh + 2;
            else if (sh[1])
                val = sh + 1;       /* -v4 */
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                seterr(e, sizeof(e), "flag needs an argument: 'v' in -v");
                goto fail;
            }
            if (apply(o, op, val, e, sizeof(e)) < 0)
                goto fail;
            break;
        }
    }
    return FLAGS_OK;
fail:
    seterr(err, errlen, "%s", e);
    fprintf(stderr, "%s\n", e);
    flags_usage(stderr);
    return FLAGS_ERROR;
}

static const char *
type_name(enum opt_type t)
{
    switch (t) {
    case T_BOOL: return "";
    case T_INT: return "int";
    case T_INT64: return "int64";
    case T_FLOAT: return "float";
    case T_STRING: return "string";
    case T_DURATION: return "duration";
    case T_SLICE: return "strings";
    case T_ARRAY: return "stringArray";
    case T_IP: return "ip";
    case T_CERTKEY: return "namedCertKey";
    case T_LEVEL: return "Level";
    }
    return "";
}

/* Whether pflag would print "(default ...)": it omits zero values. */
static bool
zero_default(const struct opt *op)
{
    const char *d = op->def;
    return !*d || !strcmp(d, "false") || !strcmp(d, "0") || !strcmp(d, "0s");
}

void
flags_usage(FILE *f)
{
    fprintf(f, "Usage of promlua-adapter:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *op = &opts[i];
        char left[128];
        const char *tn = type_name(op->type);
        if (op->deprecated)
            continue;   /* pflag hides deprecated flags from usage */
        snprintf(left, sizeof(left), "%s--%s%s%s",
                 op->type == T_LEVEL ? "  -v, " : "      ", op->name,
                 *tn ? " " : "", tn);
        fprintf(f, "%-50s %s", left, op->help);
        if (!zero_default(op)) {
            if (op->type == T_SLICE)
                fprintf(f, " (default [%s])", op->def);
            else if (op->type == T_STRING)
                fprintf(f, " (default \"%s\")", op->def);
            else
                fprintf(f, " (default %s)", op->def);
        }
        fputc('\n', f);
    }
}

bool
flags_was_set(const struct options *o, const char *name)
{
    const struct opt *op = find_opt(name, strlen(name));
    return op && o->set_[op - opts];
}

/* Whether the field differs from the table default (compares by parsing
 * the default into a scratch struct). */
static bool
differs_from_default(const struct options *o, const struct opt *op)
{
    struct options d;
    char e[64];
    bool diff = true;
    memset(&d, 0, sizeof(d));
    if (set_value(&d, op, op->def, false, e, sizeof(e)) < 0)
        goto done;
    const void *a = (const char *)o + op->off, *b = (const char *)&d + op->off;
    switch (op->type) {
    case T_BOOL: diff = *(const bool *)a != *(const bool *)b; break;
    case T_INT: case T_LEVEL: diff = *(const int *)a != *(const int *)b; break;
    case T_INT64: case T_DURATION:
        diff = *(const int64_t *)a != *(const int64_t *)b;
        break;
    case T_FLOAT: diff = *(const double *)a != *(const double *)b; break;
    case T_STRING: case T_IP:
        diff = strcmp(*(char *const *)a, *(char *const *)b) != 0;
        break;
    case T_SLICE: case T_ARRAY: case T_CERTKEY: {
        const struct strv *x = a, *y = b;
        diff = x->n != y->n;
        for (size_t i = 0; !diff && i < x->n; i++)
            diff = strcmp(x->v[i], y->v[i]) != 0;
        break;
    }
    }
done:
    /* free the scratch field only */
    if (op->type == T_STRING || op->type == T_IP)
        free(*(char **)((char *)&d + op->off));
    else if (op->type == T_SLICE || op->type == T_ARRAY
             || op->type == T_CERTKEY)
        strv_clear((struct strv *)((char *)&d + op->off));
    return diff;
}

void
flags_warn_unimplemented(const struct options *o)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *op = &opts[i];
        if (op->status == S_IMPL || !o->set_[i])
            continue;
        if (!differs_from_default(o, op))
            continue;
        if (op->status == S_LATER)
            LOGW("flag --%s is accepted but not implemented yet", op->name);
        else
            LOGW("flag --%s is accepted but has no effect in promlua-adapter",
                 op->name);
    }
}

/* -- Effective values ------------------------------------------------------- */

void
flags_format_duration(int64_t ms, char *out, size_t outlen)
{
    /* Go: "0s"; under a second "Nms" (or fractional); else h/m/s with the
     * seconds part carrying any fraction ("1.5s", "1h0m0s"). */
    bool neg = ms < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    char frac[8] = "";
    if (u == 0) {
        snprintf(out, outlen, "0s");
        return;
    }
    if (u < 1000) {
        snprintf(out, outlen, "%s%llums", neg ? "-" : "",
                 (unsigned long long)u);
        return;
    }
    uint64_t h = u / 3600000, m = u / 60000 % 60, sec = u / 1000 % 60;
    unsigned msr = (unsigned)(u % 1000);
    if (msr) {
        snprintf(frac, sizeof(frac), ".%03u", msr);
        for (size_t n = strlen(frac); frac[n - 1] == '0'; n--)
            frac[n - 1] = '\0';
    }
    if (h)
        snprintf(out, outlen, "%s%lluh%llum%llu%ss", neg ? "-" : "",
                 (unsigned long long)h, (unsigned long long)m,
                 (unsigned long long)sec, frac);
    else if (m)
        snprintf(out, outlen, "%s%llum%llu%ss", neg ? "-" : "",
                 (unsigned long long)m, (unsigned long long)sec, frac);
    else
        snprintf(out, outlen, "%s%llu%ss", neg ? "-" : "",
                 (unsigned long long)sec, frac);
}

/* pflag's Value.String() of one field into out. */
static void
format_value(const struct options *o, const struct opt *op, char *out,
             size_t outlen)
{
    const void *f = (const char *)o + op->off;
    size_t used = 0;
    switch (op->type) {
    case T_BOOL:
        snprintf(out, outlen, "%s", *(const bool *)f ? "true" : "false");
        return;
    case T_INT:
    case T_LEVEL:
        snprintf(out, outlen, "%d", *(const int *)f);
        return;
    case T_INT64:
        snprintf(out, outlen, "%lld", (long long)*(const int64_t *)f);
        return;
    case T_FLOAT: {
        /* strconv.FormatFloat(v, 'g', -1, 64): shortest digits that
         * round-trip; exponent form when exp < -4 || exp >= 6 (Go uses 6
         * as the precision for that decision in shortest mode). */
        double v = *(const double *)f;
        char t[64];
        int p = 1;
        for (; p <= 17; p++) {
            snprintf(t, sizeof(t), "%.*e", p - 1, v);
            if (strtod(t, NULL) == v)
                break;
        }
        const char *e = strchr(t, 'e');
        int exp = e ? atoi(e + 1) : 0;
        if (!isfinite(v) || exp < -4 || exp >= 6) {
            if (isnan(v))
                snprintf(out, outlen, "NaN");
            else if (isinf(v))
                snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
            else
                snprintf(out, outlen, "%s", t);
        } else {
            int dec = p - 1 - exp;
            snprintf(out, outlen, "%.*f", dec > 0 ? dec : 0, v);
        }
        return;
    }
    case T_DURATION:
        flags_format_duration(*(const int64_t *)f, out, outlen);
        return;
    case T_STRING:
    case T_IP:
        snprintf(out, outlen, "%s", *(char *const *)f ? *(char *const *)f
                                                       : "");
        return;
    case T_SLICE:
    case T_ARRAY:
    case T_CERTKEY: {
        /* "[" + encoding/csv record + "]", as pflag's writeAsCSV */
        const struct strv *l = f;
        used += (size_t)snprintf(out, outlen, "[");
        for (size_t i = 0; i < l->n && used < outlen; i++) {
            const char *v = l->v[i];
            bool quote = *v && (strpbrk(v, ",\"\r\n") || v[0] == ' '
                                || v[0] == '\t' || !strcmp(v, "\\."));
            if (i)
                used += (size_t)snprintf(out + used, outlen - used, ",");
            if (!quote) {
                if (used < outlen)
                    used += (size_t)snprintf(out + used, outlen - used, "%s",
                                             v);
                continue;
            }
            if (used + 1 < outlen)
                out[used++] = '"';
            for (; *v && used + 2 < outlen; v++) {
                if (*v == '"')
                    out[used++] = '"';
                out[used++] = *v;
            }
            if (used + 1 < outlen)
                out[used++] = '"';
            out[used < outlen ? used : outlen - 1] = '\0';
        }
        if (used < outlen)
            snprintf(out + used, outlen - used, "]");
        return;
    }
    }
}

const char *
flags_value(const struct options *o, const char *name, char *out,
            size_t outlen)
{
    const struct opt *op = find_opt(name, strlen(name));
    if (!op || !outlen)
        return NULL;
    format_value(o, op, out, outlen);
    return out;
}

size_t
flags_options_size(void)
{
    return sizeof(struct options);
}

void
flags_log(const struct options *o)
{
    if (log_verbosity() < 1)
        return;
    for (size_t i = 0; i < NOPTS; i++) {
        char val[2048], q[2100];
        if (opts[i].deprecated)
            continue;
        format_value(o, &opts[i], val, sizeof(val));
        goq(q, sizeof(q), val);
        LOGV(1, "FLAG: --%s=%s", opts[i].name, q);
    }
}
