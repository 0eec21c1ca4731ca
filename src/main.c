/* main.c: wiring and lifecycle of promlua-adapter, nothing else.
 * Order (PA's, spec-server.md §8.4): flags -> Prometheus client -> config
 * (validated by the Lua engine) -> Kubernetes client and resource map ->
 * relist thread -> serving certificate -> HTTPS server; then wait for
 * SIGTERM/SIGINT and tear down in reverse.
 * Uses every module; owns every long-lived object. */
#include "api.h"
#include "auth.h"
#include "authz.h"
#include "cache.h"
#include "certs.h"
#include "cli.h"
#include "engine.h"
#include "flags.h"
#include "goquote.h"
#include "http_client.h"
#include "kcache.h"
#include "kube.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "relist.h"
#include "reload.h"
#include "server.h"
#include <errno.h>
#include <malloc.h>
#include <luajit.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FATAL_EXIT 255
/* Handler threads: concurrent requests that may wait on Prometheus. */
#define SERVER_WORKERS 16

/* certs_watch callback (watch thread): swap in the rotated serving pair. */
static void
reload_serving_cert(void *srv, const char *cert_pem, const char *key_pem)
{
    char err[1024];
    if (server_set_certificate(srv, cert_pem, key_pem, err, sizeof err) != 0)
        LOGE("unable to use the new serving certificate: %s", err);
}

/* The delegated authentication / authorization client: the kubeconfig
 * flag, else in-cluster (fatal when neither works, as Go). */
static struct kube_client *
delegated_client(const char *kubeconfig, const char *what, char *err,
                 size_t errlen)
{
    struct kube_config cfg = {0};
    char e[4096];
    struct kube_client *kc;

    if (kube_config_load(*kubeconfig ? kubeconfig : NULL, &cfg, e,
                         sizeof e) != 0) {
        snprintf(err, errlen, "failed to get delegated %s kubeconfig: %s",
                 what, e);
        return NULL;
    }
    kc = kube_client_new(&cfg, 10000, e, sizeof e);
    kube_config_free(&cfg);
    if (kc == NULL)
        snprintf(err, errlen, "failed to get delegated %s kubeconfig: %s",
                 what, e);
    return kc;
}

/* Prometheus client from the flags (spec-server.md §9.3 precedence). */
static struct prom_client *
make_prom(const struct options *o, struct kube_config *auth, char *err,
          size_t errlen)
{
    struct http_tls tls = {0};
    struct prom_options po = {
        .url = o->prometheus_url, .verb = o->prometheus_verb,
        /* a counted list: strv is not NULL-terminated */
        .headers = o->prometheus_header.n
                       ? (const char *const *)o->prometheus_header.v : NULL,
        .nheaders = o->prometheus_header.n,
        .token_file = *o->prometheus_token_file ? o->prometheus_token_file : NULL,
        .timeout_ms = (long)o->prometheus_timeout_ms,
        .max_get_length = (size_t)o->prometheus_max_get_length,
        .query_cache_ttl_ms = (long)o->query_cache_ttl_ms,
    };
    if (prom_check_url(po.url, po.verb, err, errlen) != 0)
        return NULL;
    if (*o->prometheus_ca_file) {
        tls.ca_file = o->prometheus_ca_file;
        tls.min_tls = 12;
        if (*o->prometheus_client_tls_cert_file && *o->prometheus_client_tls_key_file) {
            tls.cert_file = o->prometheus_client_tls_cert_file;
            tls.key_file = o->prometheus_client_tls_key_file;
        }
        if (prom_check_tls_files(tls.ca_file, tls.cert_file, tls.key_file,
                                 err, errlen) != 0)
            return NULL;
        po.tls = &tls;
    } else if (o->prometheus_auth_incluster && *o->prometheus_auth_config) {
        snprintf(err, errlen, "may not use both in-cluster auth and an explicit "
                 "kubeconfig at the same time");
        return NULL;
    } else if (*o->prometheus_auth_config || o->prometheus_auth_incluster) {
        /* PA's makeKubeconfigHTTPClient wraps client-go's errors: loading
         * and validating the config, then building the transport (-2) */
        char e[4096];
        int lrc = kube_config_load(o->prometheus_auth_incluster
                                       ? NULL : o->prometheus_auth_config,
                                   auth, e, sizeof e);
        if (lrc == -2) {
            snprintf(err, errlen, "unable to construct client transport for "
                     "connecting to Prometheus: %s", e);
            return NULL;
        }
        if (lrc != 0 && o->prometheus_auth_incluster) {
            snprintf(err, errlen, "unable to construct in-cluster auth "
                     "configuration for connecting to Prometheus: %s", e);
            return NULL;
        }
        if (lrc != 0) {
            struct buf q;
            buf_init(&q, 8192);
            if (goquote(&q, o->prometheus_auth_config,
                        strlen(o->prometheus_auth_config)) != 0 ||
                buf_addc(&q, '\0') != 0)
                snprintf(err, errlen, "unable to construct auth configuration "
                         "for connecting to Prometheus: %s", e);
            else
                snprintf(err, errlen, "unable to construct auth configuration "
                         "from %s for connecting to Prometheus: %s", q.data, e);
            buf_free(&q);
            return NULL;
        }
        po.tls = &auth->tls;
        po.auth_token = auth->token;
        po.auth_token_file = auth->token_file;
        po.auth_basic_user = auth->username;
        po.auth_basic_pass = auth->password;
    }
    return prom_client_new(&po, err, errlen);
}

/* reload callback (reloading thread): the APIs served follow the new
 * config, and the relist thread rebuilds its engine and relists now. */
static void
config_swapped(void *ctx, const struct config_snap *snap)
{
    struct api *a = ctx;
    atomic_store(&a->has_custom, snap->has_custom);
    atomic_store(&a->has_external, snap->has_external);
    atomic_store(&a->has_resource, snap->has_resource);
    relist_reload(a->relist);
}

/* Shutdown watchdog, started when shutdown begins: a second SIGTERM or
 * SIGINT while requests drain exits at once (as Go's apiserver does), and
 * a handler still blocked a second after the drain bound cannot hold the
 * process (the pool join would wait for it). */
struct shutdown_watch {
    sigset_t sigs;
    int drain_ms;
};

static void *
second_signal(void *arg)
{
    struct shutdown_watch *w = arg;
    double deadline = metrics_now() + (w->drain_ms + 1000) / 1000.0;
    for (;;) {
        double left = deadline - metrics_now();
        if (left <= 0)
            break;
        struct timespec ts = { (time_t)left,
                               (long)((left - (double)(time_t)left) * 1e9) };
        int sig = sigtimedwait(&w->sigs, NULL, &ts);
        if (sig > 0) {
            LOGW("received signal %d again, exiting immediately", sig);
            _exit(1);
        }
        /* EINTR is not the timeout: a ptrace stop (LeakSanitizer's
         * stop-the-world at exit, a debugger) interrupts the wait, and
         * exiting then would cut the leak check short. */
        if (errno != EINTR)
            break;
    }
    LOGW("requests still running %d ms after shutdown began; exiting",
         w->drain_ms);
    _exit(0);
    return NULL;
}

/* "host:port", ":port" or "[v6]:port" of --metrics-bind-address. */
static int
split_host_port(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1])
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -1;
    size_t n = (size_t)(colon - s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int
main(int argc, char **argv)
{
    struct options o;
    char err[8192];
    int rc = FATAL_EXIT;

    /* Subcommands (docs/operations.md): check-config, explain. */
    if (argc > 1 && !strcmp(argv[1], "check-config"))
        return cli_check_config(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "explain"))
        return cli_explain(argc - 1, argv + 1, make_prom);

    switch (flags_parse(argc, argv, &o, err, sizeof err)) {
    case FLAGS_OK: break;
    case FLAGS_HELP: options_free(&o); return 0;
    default:
        fprintf(stderr, "Error: %s\n", err);
        options_free(&o);
        return 2;
    }
    /* glibc gives each thread that allocates its own malloc arena and
     * keeps freed memory in it: with 16 workers building multi-megabyte
     * answers, RSS after a burst settled near 100 MB. Two arenas bound
     * that; the hot allocations are short-lived per-request buffers. */
    mallopt(M_ARENA_MAX, 2);
    log_set_verbosity(o.v);
    if (log_set_format(o.logging_format, err, sizeof err) != 0) {
        fprintf(stderr, "Error: invalid argument \"%s\" for \"--logging-format\" "
                "flag: %s\n", o.logging_format, err);
        options_free(&o);
        return 2;
    }
    metrics_set(METRICS_BUILD_INFO, ADAPTER_VERSION, LUAJIT_VERSION, 1);
    flags_log(&o);
    flags_warn_unimplemented(&o);

    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct kube_config prom_auth = {0}, lister_cfg = {0};
    struct prom_client *prom = NULL;
    struct kube_client *kube = NULL;
    struct kcache_set *kcache = NULL;
    struct engine *eng = NULL;
    struct relist *relist = NULL;
    struct server *srv = NULL, *msrv = NULL;
    struct reload *reloader = NULL;
    struct config_snap *csnap = NULL;
    struct config_store store;
    bool store_ok = false;
    struct kube_client *authn_kc = NULL, *authz_kc = NULL;
    struct authn *authn = NULL;
    struct authz *authz = NULL;
    struct certs_watch *cwatch = NULL;
    struct authz_chain chain;
    char *trust_pem = NULL;
    char *cert_pem = NULL, *key_pem = NULL;
    struct cache cache;
    bool cache_ok = false;
    struct api api = {0};

    if (http_client_global_init() != 0) {
        LOGE("unable to initialise libcurl");
        goto out;
    }
    prom = make_prom(&o, &prom_auth, err, sizeof err);
    if (!prom) {
        LOGE("unable to construct Prometheus client: %s", err);
        goto out;
    }

    if (!*o.config) {
        LOGE("unable to load metrics discovery config: no metrics discovery "
             "configuration file specified (make sure to use --config)");
        goto out;
    }
    /* The config and hook scripts are read once into a snapshot that
     * every thread builds its engine from; a reload publishes another. */
    if (config_snap_load(o.config, (const char *const *)o.lua_script.v,
                         o.lua_script.n, (long)o.lua_hook_timeout_ms, &csnap,
                         err, sizeof err) != 0) {
        LOGE("unable to load metrics discovery config: unable to load metrics "
             "discovery config file: %s", err);
        goto out;
    }
    const char *lua_dir = *o.lua_dir ? o.lua_dir : NULL;
    struct engine_hooks hooks;
    config_snap_hooks(csnap, &hooks);
    eng = engine_new(csnap->text, csnap->len, o.config, lua_dir, &hooks, true,
                     err, sizeof err);
    if (!eng) {
        /* One line per problem, "FILE:LINE: key.path: message". */
        fprintf(stderr, "%s\n", err);
        LOGE("unable to load metrics discovery config: %s", o.config);
        goto out;
    }
    csnap->has_custom = engine_has(eng, "custom");
    csnap->has_external = engine_has(eng, "external");
    csnap->has_resource = engine_has(eng, "resource");
    atomic_init(&api.has_custom, csnap->has_custom);
    atomic_init(&api.has_external, csnap->has_external);
    atomic_init(&api.has_resource, csnap->has_resource);
    config_store_init(&store, csnap);
    csnap = NULL;
    store_ok = true;

    int64_t max_age = o.metrics_max_age_ms ? o.metrics_max_age_ms
                                           : o.metrics_relist_interval_ms;
    if (api.has_custom && max_age < o.metrics_relist_interval_ms) {
        LOGE("unable to construct custom metrics provider: max age must not be "
             "less than relist interval");
        goto out;
    }

    if (kube_config_load(*o.lister_kubeconfig ? o.lister_kubeconfig : NULL,
                         &lister_cfg, err, sizeof err) != 0) {
        LOGE("unable to construct lister client config: %s", err);
        goto out;
    }
    kube = kube_client_new(&lister_cfg, 30000, err, sizeof err);
    if (!kube) {
        LOGE("unable to construct lister client: %s", err);
        goto out;
    }
    kube_client_set_rate_limit(kube, o.client_qps, o.client_burst);
    kcache = kcache_set_new(kube, err, sizeof err);
    if (!kcache) {
        LOGE("unable to construct object caches: %s", err);
        goto out;
    }

    if (cache_init(&cache) != 0) {
        LOGE("out of memory");
        goto out;
    }
    cache_ok = true;
    struct relist_opts ro = {
        .engine = eng, .prom = prom, .kube = kube, .cache = &cache,
        .interval_ms = (long)o.metrics_relist_interval_ms,
        .max_age_ms = (long)max_age,
        .discovery_interval_ms = (long)o.discovery_interval_ms,
        .config = &store, .config_file = o.config, .lua_dir = lua_dir,
    };
    eng = NULL;   /* owned by the relist from here, even on failure */
    relist = relist_start(&ro, err, sizeof err);
    if (!relist) {
        LOGE("unable to construct custom metrics provider: unable to construct "
             "RESTMapper: %s", err);
        goto out;
    }

    if (certs_load(o.tls_cert_file, o.tls_private_key_file, o.cert_dir,
                   o.bind_address, &cert_pem, &key_pem, err, sizeof err) != 0) {
        LOGE("unable to load serving certificate: %s", err);
        goto out;
    }
    api.cache = &cache;
    api.relist = relist;
    api.prom = prom;
    api.kcache = kcache;
    api.config = &store;
    api.config_file = o.config;
    api.lua_dir = lua_dir;
    api.request_timeout_ms = o.request_timeout_ms;
    api.prom_timeout_ms = o.prometheus_timeout_ms;
    api.secure_port = o.secure_port;
    atomic_init(&api.shutting_down, false);
    /* Delegated authentication and authorization (spec-server 6). */
    authn_kc = delegated_client(o.authentication_kubeconfig, "authentication",
                                err, sizeof err);
    if (!authn_kc) {
        LOGE("%s", err);
        goto out;
    }
    authn = authn_new(&o, authn_kc, err, sizeof err);
    if (!authn) {
        LOGE("%s", err);
        goto out;
    }
    authz_kc = delegated_client(o.authorization_kubeconfig, "authorization",
                                err, sizeof err);
    if (!authz_kc) {
        LOGE("%s", err);
        goto out;
    }
    authz = authz_new(&o, authz_kc, err, sizeof err);
    if (!authz) {
        LOGE("%s", err);
        goto out;
    }
    struct authz_chain_config cc = {
        .authn = authn, .authz = authz,
        .request_timeout_ms = o.request_timeout_ms,
        .max_inflight = o.max_requests_inflight,
        .next = api_handle, .next_ctx = &api,
        .next_thread_init = api_thread_init,
        .next_thread_fini = api_thread_fini,
    };
    authz_chain_init(&chain, &cc);
    trust_pem = authn_trust_pem(authn);
    api.next = authz_chain_handle;
    api.next_ctx = &chain;
    api.next_thread_init = authz_chain_thread_init;
    api.next_thread_fini = authz_chain_thread_fini;
    struct server_config sc = {
        .bind_address = o.bind_address, .port = o.secure_port, .tls = true,
        .cert_pem = cert_pem, .key_pem = key_pem,
        .trust_pem = trust_pem,
        .tls_min_version = o.tls_min_version,
        .cipher_suites = NULL,
        /* Two I/O threads do TLS and HTTP; handlers run on a pool of
         * workers, each with its own Lua engine and HTTP client built on
         * first use, so requests waiting on Prometheus never hold up other
         * connections (and identical waits can coalesce). */
        .threads = 2,
        .workers = SERVER_WORKERS,
        .reuse_port = o.permit_port_sharing,
        .reuse_addr = o.permit_address_sharing,
        /* request metrics around the filter chain (api_serve) */
        .handler = api_serve, .ctx = &api,
        .thread_init = api_serve_thread_init,
        .thread_fini = api_serve_thread_fini,
    };
    struct buf suites;
    buf_init(&suites, 1 << 16);
    for (size_t i = 0; i < o.tls_cipher_suites.n; i++) {
        if (i)
            buf_addc(&suites, ',');
        buf_adds(&suites, o.tls_cipher_suites.v[i]);
    }
    sc.cipher_suites = suites.data;
    srv = server_new(&sc, err, sizeof err);
    buf_free(&suites);
    if (!srv || server_start(srv, err, sizeof err) != 0) {
        LOGE("%s", err);
        goto out;
    }
    /* cert-manager rotation: re-read the serving pair when it changes. */
    cwatch = certs_watch_start(o.tls_cert_file, o.tls_private_key_file,
                               o.cert_dir, 1000, reload_serving_cert, srv,
                               err, sizeof err);
    if (!cwatch)
        LOGW("serving certificate rotation disabled: %s", err);
    LOGI("serving securely on %s:%d", *o.bind_address ? o.bind_address : "0.0.0.0",
         server_port(srv));

    /* Optional plain-HTTP /metrics listener, without authentication. */
    if (*o.metrics_bind_address) {
        char host[256];
        int mport = 0;
        if (split_host_port(o.metrics_bind_address, host, sizeof host,
                            &mport) != 0) {
            LOGE("invalid --metrics-bind-address \"%s\": want host:port",
                 o.metrics_bind_address);
            goto out;
        }
        struct server_config mc = {
            .bind_address = host, .port = mport, .tls = false, .threads = 2,
            .handler = api_metrics_handle, .ctx = &api,
        };
        msrv = server_new(&mc, err, sizeof err);
        if (!msrv || server_start(msrv, err, sizeof err) != 0) {
            LOGE("metrics listener: %s", err);
            goto out;
        }
        LOGI("serving metrics on http://%s:%d/metrics", *host ? host : "0.0.0.0",
             server_port(msrv));
    }

    /* Reload on SIGHUP (below) and on changes of the files (watcher). */
    struct reload_opts rlo = {
        .store = &store, .config_file = o.config,
        .scripts = (const char *const *)o.lua_script.v,
        .nscripts = o.lua_script.n,
        .hook_timeout_ms = (long)o.lua_hook_timeout_ms,
        .lua_dir = lua_dir, .debounce_ms = 500, .watch = true,
        .on_swap = config_swapped, .ctx = &api,
    };
    reloader = reload_start(&rlo, err, sizeof err);
    if (!reloader) {
        LOGW("config file watching disabled (SIGHUP still reloads): %s", err);
        rlo.watch = false;
        reloader = reload_start(&rlo, err, sizeof err);
    }

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        LOGI("received SIGHUP, reloading %s", o.config);
        if (reloader)
            reload_now(reloader, err, sizeof err);
    }
    /* Graceful shutdown: /readyz fails from now on, the listener stops
     * accepting and in-flight requests drain for up to
     * --shutdown-delay-duration (60s when unset); a second signal exits
     * at once. */
    LOGI("received signal %d, shutting down", sig);
    atomic_store(&api.shutting_down, true);
    int drain_ms = o.shutdown_delay_duration_ms > 0
                       ? (int)o.shutdown_delay_duration_ms : 60000;
    static struct shutdown_watch watch;
    watch.sigs = sigs;
    watch.drain_ms = drain_ms;
    sigdelset(&watch.sigs, SIGHUP);
    pthread_t sigthr;
    if (pthread_create(&sigthr, NULL, second_signal, &watch) == 0)
        pthread_detach(sigthr);
    server_stop(srv, drain_ms);
    server_stop(msrv, 1000);
    LOGI("in-flight requests drained, exiting");
    rc = 0;
out:
    reload_stop(reloader);
    server_free(msrv);
    certs_watch_stop(cwatch);
    server_free(srv);
    authz_free(authz);
    authn_free(authn);
    kube_client_free(authz_kc);
    kube_client_free(authn_kc);
    free(trust_pem);
    relist_stop(relist);
    kcache_set_free(kcache);
    kube_client_free(kube);
    kube_config_free(&lister_cfg);
    engine_free(eng);
    prom_client_free(prom);
    kube_config_free(&prom_auth);
    if (cache_ok)
        cache_destroy(&cache);
    if (store_ok)
        config_store_destroy(&store);
    config_snap_free(csnap);
    metrics_free_all();
    free(cert_pem);
    free(key_pem);
    options_free(&o);
    return rc;
}
