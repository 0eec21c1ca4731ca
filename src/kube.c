/* kube.c: Kubernetes client configuration, requests and discovery (see
 * kube.h). Uses http_client.h, libyaml (document API, kubeconfig only),
 * yajl's tree parser (discovery documents are small), gotls.h (Go's
 * base64 for the *-data fields, client-go's CA and key-pair checks),
 * metrics.h (kube_do_measured records latency and errors by verb).
 * Thread affinity: a kube_client is shared; its mutable parts (the token
 * cache, the fallback http_client, the counter) are under its mutex.
 * Never logs tokens, passwords or key material. */
#include "kube.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"
#include "gotls.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* src/yaml.h shares libyaml's header name and shadows it through -Isrc;
 * with this macro it include_next's the library header (see yaml.h). */
#define ADAPTER_YAML_LIBYAML
#include <yaml.h>
#include <yajl/yajl_tree.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define DEFAULT_TIMEOUT_MS 30000L
#define DISCOVERY_MAX_BODY (16u << 20)

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


/* -- kubeconfig ------------------------------------------------------------- */

void
kube_config_free(struct kube_config *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->ca_file);
    free(c->ca_pem);
    free(c->cert_file);
    free(c->cert_pem);
    free(c->key_file);
    free(c->key_pem);
    free(c->server_name);
    free(c->token);
    free(c->token_file);
    free(c->username);
    free(c->password);
    memset(c, 0, sizeof(*c));
}

/* Points tls at the owned strings (after loading or moving the struct). */
static void
wire_tls(struct kube_config *c)
{
    bool insecure = c->tls.insecure;
    memset(&c->tls, 0, sizeof(c->tls));
    c->tls.ca_file = c->ca_file;
    c->tls.ca_pem = c->ca_pem;
    c->tls.cert_file = c->cert_file;
    c->tls.key_file = c->key_file;
    c->tls.cert_pem = c->cert_pem;
    c->tls.key_pem = c->key_pem;
    c->tls.server_name = c->server_name;
    c->tls.insecure = insecure;
}

static const yaml_node_t *
ymap_get(yaml_document_t *d, const yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
         p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE
            && k->data.scalar.length == strlen(key)
            && !memcmp(k->data.scalar.value, key, k->data.scalar.length))
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

/* Scalar text or NULL (absent, not a scalar, or a YAML null). */
static const char *
yscalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
        && (!strcmp(v, "null") || !strcmp(v, "~") || !*v))
        return NULL;
    return v;
}

/* Finds the entry of a named list (contexts/clusters/users) and returns its
 * `inner` mapping. */
static const yaml_node_t *
named_entry(yaml_document_t *d, const yaml_node_t *root, const char *list,
            const char *name, const char *inner)
{
    const yaml_node_t *seq = ymap_get(d, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++) {
        const yaml_node_t *e = yaml_document_get_node(d, *it);
        const char *n = yscalar(ymap_get(d, e, "name"));
        if (n && !strcmp(n, name)) {
            const yaml_node_t *in = ymap_get(d, e, inner);
            return in ? in : e;   /* an entry without its body is empty */
        }
    }
    return NULL;
}

/* A *-data field decoded as client-go's JSON decoder does it (Go's
 * base64.StdEncoding: '\r' and '\n' skipped, padding required) into a
 * NUL-terminated string. A bad field fails the file's load, with Go's
 * text: error loading config file "<path>": illegal base64 data at input
 * byte <n>. */
static char *
b64_decode(const char *in, const char *path, char *err, size_t errlen)
{
    size_t len = strlen(in), outlen = 0, bad = 0;
    unsigned char *out = len > (size_t)1 << 30 ? NULL : malloc(len / 4 * 3 + 4);

    if (!out) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (gotls_b64_decode(in, len, out, &outlen, &bad) != 0) {
        seterr(err, errlen, "error loading config file \"%s\": illegal "
               "base64 data at input byte %zu", path, bad);
        free(out);
        return NULL;
    }
    out[outlen] = '\0';
    return (char *)out;
}

/* Go's filepath.Clean of an absolute path, in place: "//", "/./" and
 * "/x/../" collapse, no trailing '/'. */
static void
clean_abs_path(char *p)
{
    size_t r = 0, w = 0, n = strlen(p);

    while (r < n) {
        if (p[r] == '/') {
            r++;
            continue;
        }
        size_t e = r;
        while (e < n && p[e] != '/')
            e++;
        if (e - r == 1 && p[r] == '.') {
            /* skip */
        } else if (e - r == 2 && p[r] == '.' && p[r + 1] == '.') {
            while (w > 0 && p[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
        } else {
            p[w++] = '/';
            memmove(p + w, p + r, e - r);
            w += e - r;
        }
        r = e;
    }
    if (w == 0)
        p[w++] = '/';
    p[w] = '\0';
}

/* A path from the kubeconfig: a relative one is joined to the kubeconfig's
 * directory made absolute, and cleaned (client-go's ResolveLocalPaths:
 * filepath.Join(filepath.Abs(dir), p)), so errors name the same path. */
static char *
resolve_path(const char *dir, const char *p)
{
    char cwd[4096] = "";
    size_t n;
    char *r;

    if (!p)
        return NULL;
    if (p[0] == '/' || !dir || !*dir)
        return strdup(p);
    if (dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    n = strlen(cwd) + strlen(dir) + strlen(p) + 3;
    if (!(r = malloc(n)))
        return NULL;
    if (cwd[0])
        snprintf(r, n, "%s/%s/%s", cwd, dir, p);
    else
        snprintf(r, n, "%s/%s", dir, p);
    if (r[0] == '/')
        clean_abs_path(r);
    return r;
}

static int
dup_opt(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static char *
trim_dup(const char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

/* A non-empty scalar of mapping m (client-go treats "" as absent). */
static const char *
ystr(yaml_document_t *d, const yaml_node_t *m, const char *key)
{
    const char *v = yscalar(ymap_get(d, m, key));
    return v && *v ? v : NULL;
}

/* client-go's validation errors, collected in order; printed as one, or as
 * "[a, b]" when there are several (utilerrors.NewAggregate). */
struct verrs {
    int n;
    char list[4096];
};

static void __attribute__((format(printf, 2, 3)))
verr(struct verrs *v, const char *fmt, ...)
{
    size_t l = strlen(v->list);
    va_list ap;

    if (v->n++ > 0 && l + 2 < sizeof v->list) {
        memcpy(v->list + l, ", ", 3);
        l += 2;
    }
    va_start(ap, fmt);
    vsnprintf(v->list + l, sizeof v->list - l, fmt, ap);
    va_end(ap);
}

/* os.Open: 0, or -1 with Go's error ("open <f>: <reason>") in e. */
static int
open_check(const char *path, char *e, size_t elen)
{
    char why[128];
    FILE *f = fopen(path, "rb");

    if (f) {
        fclose(f);
        return 0;
    }
    buf_go_strerror(why, sizeof why, errno);
    snprintf(e, elen, "open %s: %s", path, why);
    return -1;
}

/* The checks client-go makes when it builds the transport (rest.TransportFor
 * -> transport.TLSConfigFor), in its order: -2 with its error text when
 * they fail. The CA, certificate and key files are read; the CA must hold
 * a usable certificate; a client pair given at least partly as *-data must
 * load and match (a pair of files is loaded per connection instead, so
 * only read here). */
static int
check_transport(struct kube_config *c, char *err, size_t errlen)
{
    char *ca = NULL, *cert = NULL, *key = NULL;
    size_t ca_len = 0, cert_len = 0, key_len = 0;
    bool has_ca = c->ca_file || c->ca_pem;
    bool has_pair = (c->cert_file || c->cert_pem) && (c->key_file || c->key_pem);
    int rc = -2;

    if (has_ca && c->tls.insecure) {
        seterr(err, errlen, "specifying a root certificates file with the insecure flag is not supported");
        goto done;
    }
    if ((c->ca_file && !(ca = buf_read_file(c->ca_file, 16u << 20, &ca_len,
                                            err, errlen))) ||
        (c->cert_file && !(cert = buf_read_file(c->cert_file, 16u << 20,
                                                &cert_len, err, errlen))) ||
        (c->key_file && !(key = buf_read_file(c->key_file, 16u << 20,
                                              &key_len, err, errlen))))
        goto done;
    if (c->ca_pem) {
        ca_len = strlen(c->ca_pem);
    } else if (c->ca_file && ca_len == 0) {
        /* an empty CA file means no pool: the system roots */
        free(c->ca_file);
        c->ca_file = NULL;
    }
    if (ca_len > 0 && gotls_root_pool(ca ? ca : c->ca_pem, ca_len, err,
                                      errlen) != 0)
        goto done;
    if (has_pair && !(c->cert_file && c->key_file)) {
        if (c->cert_pem)
            cert_len = strlen(c->cert_pem);
        if (c->key_pem)
            key_len = strlen(c->key_pem);
        if (gotls_x509_key_pair(cert ? cert : c->cert_pem, cert_len,
                                key ? key : c->key_pem, key_len, err,
                                errlen) != 0)
            goto done;
    }
    if (!has_pair && (c->key_file || c->key_pem)) {
        /* a key without a certificate is not used */
        free(c->key_file);
        free(c->key_pem);
        c->key_file = c->key_pem = NULL;
    }
    rc = 0;
done:
    free(ca);
    free(cert);
    if (key) {
        explicit_bzero(key, key_len);
        free(key);
    }
    return rc;
}

static int
load_kubeconfig(const char *path, struct kube_config *c, char *err,
                size_t errlen)
{
    yaml_parser_t p;
    yaml_document_t d;
    bool have_parser = false, have_doc = false;
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    int rc = -1;
    char e[512];
    struct stat st;
    struct verrs v = { .n = 0 };

    /* client-go: a missing explicit file is os.Stat's error; any other
     * read failure is wrapped as a load error */
    if (stat(path, &st) != 0 && errno == ENOENT) {
        buf_go_strerror(e, sizeof e, errno);
        seterr(err, errlen, "stat %s: %s", path, e);
        goto done;
    }
    text = buf_read_file(path, 16u << 20, &len, e, sizeof(e));
    if (!text) {
        seterr(err, errlen, "error loading config file \"%s\": %s", path, e);
        goto done;
    }
    if (!yaml_parser_initialize(&p)) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    have_parser = true;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d)) {
        seterr(err, errlen, "error loading config file \"%s\": yaml: line %zu: %s",
               path, p.problem_mark.line + 1,
               p.problem ? p.problem : "syntax error");
        goto done;
    }
    have_doc = true;
    const yaml_node_t *root = yaml_document_get_root_node(&d);
    const char *cur = yscalar(ymap_get(&d, root, "current-context"));
    if (!cur) {
        seterr(err, errlen, "invalid configuration: no configuration has been provided (%s has no current-context)", path);
        goto done;
    }
    const yaml_node_t *ctx = named_entry(&d, root, "contexts", cur, "context");
    if (!ctx) {
        seterr(err, errlen, "invalid configuration: context was not found for specified context: %s", cur);
        goto done;
    }
    const char *cname = yscalar(ymap_get(&d, ctx, "cluster"));
    const char *uname = yscalar(ymap_get(&d, ctx, "user"));
    const yaml_node_t *cl = cname ? named_entry(&d, root, "clusters", cname,
                                                "cluster") : NULL;
    if (!cl) {
        seterr(err, errlen, "invalid configuration: cluster \"%s\" was not found for context \"%s\"",
               cname ? cname : "", cur);
        goto done;
    }
    const yaml_node_t *us = uname ? named_entry(&d, root, "users", uname,
                                                "user") : NULL;
    if (uname && !us) {
        seterr(err, errlen, "invalid configuration: user \"%s\" was not found for context \"%s\"",
               uname, cur);
        goto done;
    }
    {
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, slash > path ? (size_t)(slash - path) : 1)
                    : strdup(".");
        if (!dir)
            goto oom;
    }

    /* What client-go decodes and resolves when it loads the file: the
     * *-data fields (base64) and the file paths (relative to the file). */
    const char *v_str;
    if ((v_str = ystr(&d, cl, "certificate-authority-data")) &&
        !(c->ca_pem = b64_decode(v_str, path, err, errlen)))
        goto done;
    if ((v_str = ystr(&d, cl, "certificate-authority")) &&
        !(c->ca_file = resolve_path(dir, v_str)))
        goto oom;
    v_str = yscalar(ymap_get(&d, cl, "insecure-skip-tls-verify"));
    c->tls.insecure = v_str && !strcmp(v_str, "true");
    if (dup_opt(&c->server_name, ystr(&d, cl, "tls-server-name")))
        goto oom;
    if (ystr(&d, cl, "proxy-url"))
        LOGW("kubeconfig %s: proxy-url is not supported; connecting directly",
             path);
    if (us) {
        if (ymap_get(&d, us, "exec")) {
            seterr(err, errlen, "kubeconfig %s: user \"%s\": exec credential plugins are not supported", path, uname);
            goto done;
        }
        if (ymap_get(&d, us, "auth-provider")) {
            seterr(err, errlen, "kubeconfig %s: user \"%s\": auth-provider plugins are not supported", path, uname);
            goto done;
        }
        if ((v_str = ystr(&d, us, "client-certificate-data")) &&
            !(c->cert_pem = b64_decode(v_str, path, err, errlen)))
            goto done;
        if ((v_str = ystr(&d, us, "client-key-data")) &&
            !(c->key_pem = b64_decode(v_str, path, err, errlen)))
            goto done;
        if (((v_str = ystr(&d, us, "client-certificate")) &&
             !(c->cert_file = resolve_path(dir, v_str))) ||
            ((v_str = ystr(&d, us, "client-key")) &&
             !(c->key_file = resolve_path(dir, v_str))) ||
            ((v_str = ystr(&d, us, "tokenFile")) &&
             !(c->token_file = resolve_path(dir, v_str))))
            goto oom;
        if ((v_str = ystr(&d, us, "token")) && !(c->token = trim_dup(v_str)))
            goto oom;
        if (dup_opt(&c->username, ystr(&d, us, "username"))
            || dup_opt(&c->password, ystr(&d, us, "password")))
            goto oom;
    }

    /* client-go's ConfirmUsable: every problem of the user, then of the
     * cluster, reported together */
    if (us) {
        const char *methods = NULL;
        if (c->token && (c->username || c->password))
            methods = "token basicAuth";
        if (c->cert_file || c->cert_pem) {
            if (c->cert_file && c->cert_pem)
                verr(&v, "client-cert-data and client-cert are both specified for %s. client-cert-data will override.", uname);
            if (c->key_file && c->key_pem)
                verr(&v, "client-key-data and client-key are both specified for %s; client-key-data will override", uname);
            if (!c->key_file && !c->key_pem)
                verr(&v, "client-key-data or client-key must be specified for %s to use the clientCert authentication method.", uname);
            if (c->cert_file && open_check(c->cert_file, e, sizeof e) != 0)
                verr(&v, "unable to read client-cert %s for %s due to %s",
                     c->cert_file, uname, e);
            if (c->key_file && open_check(c->key_file, e, sizeof e) != 0)
                verr(&v, "unable to read client-key %s for %s due to %s",
                     c->key_file, uname, e);
        }
        if (methods)
            verr(&v, "more than one authentication method found for %s; found [%s], only one is allowed", uname, methods);
    }
    const char *server = ystr(&d, cl, "server");
    if (!server)
        verr(&v, "no server found for cluster \"%s\"", cname);
    if (c->ca_file && c->ca_pem)
        verr(&v, "certificate-authority-data and certificate-authority are both specified for %s. certificate-authority-data will override.", cname);
    if (c->ca_file && open_check(c->ca_file, e, sizeof e) != 0)
        verr(&v, "unable to read certificate-authority %s for %s due to %s",
             c->ca_file, cname, e);
    if (v.n > 0) {
        seterr(err, errlen, v.n > 1 ? "invalid configuration: [%s]"
                                    : "invalid configuration: %s", v.list);
        goto done;
    }

    /* the data wins over the file, as in client-go */
    if (c->ca_pem && c->ca_file) {
        free(c->ca_file);
        c->ca_file = NULL;
    }
    if (c->cert_pem && c->cert_file) {
        free(c->cert_file);
        c->cert_file = NULL;
    }
    if (c->key_pem && c->key_file) {
        free(c->key_file);
        c->key_file = NULL;
    }
    if (c->token && c->token_file) {
        free(c->token_file);            /* a static token wins */
        c->token_file = NULL;
    }
    size_t sl = strlen(server);
    while (sl > 1 && server[sl - 1] == '/')
        sl--;
    if (!(c->server = strndup(server, sl)))
        goto oom;
    /* client-go reads a token file when it builds the config */
    if (c->token_file) {
        char *t = buf_read_file(c->token_file, 1 << 20, NULL, e, sizeof e);
        if (!t) {
            seterr(err, errlen, "%s", e);
            goto done;
        }
        explicit_bzero(t, strlen(t));
        free(t);
    }
    rc = check_transport(c, err, errlen);
    goto done;
oom:
    seterr(err, errlen, "out of memory");
done:
    if (have_doc)
        yaml_document_delete(&d);
    if (have_parser)
        yaml_parser_delete(&p);
    free(text);
    free(dir);
    return rc;
}

static int
load_in_cluster(struct kube_config *c, char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = getenv("PROMLUA_SERVICEACCOUNT_DIR");
    char path[4096], e[256];

    if (!dir || !*dir)
        dir = SA_DIR;
    if (!host || !*host || !port || !*port) {
        seterr(err, errlen, "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined");
        return -1;
    }
    size_t n = strlen(host) + strlen(port) + 16;
    if (!(c->server = malloc(n)))
        goto oom;
    snprintf(c->server, n, strchr(host, ':') ? "https://[%s]:%s"
                                             : "https://%s:%s", host, port);
    c->in_cluster = true;
    snprintf(path, sizeof(path), "%s/token", dir);
    if (!(c->token_file = strdup(path)))
        goto oom;
    /* The token must be readable at start; later reads follow rotation. */
    char *t = buf_read_file(path, 1 << 20, NULL, e, sizeof(e));
    if (!t) {
        seterr(err, errlen, "%s", e);
        return -1;
    }
    free(t);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    /* rest.InClusterConfig: a CA file that does not load is logged and
     * not used (certutil.NewPool's messages) */
    size_t ca_len = 0;
    char *ca = buf_read_file(path, 16u << 20, &ca_len, e, sizeof(e));
    int ncerts = ca ? gotls_count_certs(ca, ca_len) : 0;
    free(ca);
    if (ncerts > 0) {
        if (!(c->ca_file = strdup(path)))
            goto oom;
    } else if (!ca) {
        LOGE("Expected to load root CA config from %s, but got err: %s",
             path, e);
    } else {
        LOGE("Expected to load root CA config from %s, but got err: error "
             "creating pool from %s: data does not contain any valid RSA or "
             "ECDSA certificates", path, path);
    }
    return 0;
oom:
    seterr(err, errlen, "out of memory");
    return -1;
}

int
kube_config_load(const char *path, struct kube_config *out, char *err,
                 size_t errlen)
{
    int rc;
    memset(out, 0, sizeof(*out));
    rc = (path && *path) ? load_kubeconfig(path, out, err, errlen)
                         : load_in_cluster(out, err, errlen);
    if (rc < 0) {
        kube_config_free(out);
        return rc;
    }
    wire_tls(out);
    return 0;
}

char *
kube_config_token(const struct kube_config *c, char *err, size_t errlen)
{
    char e[256];
    if (err && errlen)
        err[0] = '\0';
    if (c->token)
        return strdup(c->token);
    if (!c->token_file)
        return NULL;
    char *raw = buf_read_file(c->token_file, 1 << 20, NULL, e, sizeof(e));
    if (!raw) {
        seterr(err, errlen, "reading token file: %s", e);
        return NULL;
    }
    char *t = trim_dup(raw);
    free(raw);
    if (!t)
        seterr(err, errlen, "out of memory");
    return t;
}

/* -- Client ----------------------------------------------------------------- */

struct kube_client {
    struct kube_config cfg;
    long timeout_ms;
    pthread_mutex_t mu;          /* guards everything below */
    char *token;                 /* cached token-file content */
    struct timespec token_mtime;
    off_t token_size;
    double qps;                  /* token bucket; qps <= 0: unlimited */
    double burst;
    double tokens;
    double last_refill;          /* monotonic seconds */
    struct http_client *own;     /* for callers without a client */
    pthread_mutex_t own_mu;      /* serialises use of `own` */
    unsigned long requests;
};

struct kube_client *
kube_client_new(struct kube_config *cfg, long timeout_ms, char *err,
                size_t errlen)
{
    struct kube_client *kc = calloc(1, sizeof(*kc));
    if (!kc) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    kc->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    wire_tls(&kc->cfg);
    kc->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    pthread_mutex_init(&kc->mu, NULL);
    pthread_mutex_init(&kc->own_mu, NULL);
    return kc;
}

void
kube_client_free(struct kube_client *kc)
{
    if (!kc)
        return;
    http_client_free(kc->own);
    pthread_mutex_destroy(&kc->mu);
    pthread_mutex_destroy(&kc->own_mu);
    free(kc->token);
    kube_config_free(&kc->cfg);
    free(kc);
}

const struct kube_config *
kube_client_config(const struct kube_client *kc)
{
    return &kc->cfg;
}

long
kube_client_timeout_ms(const struct kube_client *kc)
{
    return kc->timeout_ms;
}

unsigned long
kube_request_count(const struct kube_client *kc)
{
    unsigned long n;
    pthread_mutex_lock((pthread_mutex_t *)&kc->mu);
    n = kc->requests;
    pthread_mutex_unlock((pthread_mutex_t *)&kc->mu);
    return n;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
kube_client_set_rate_limit(struct kube_client *kc, double qps, int burst)
{
    pthread_mutex_lock(&kc->mu);
    kc->qps = qps;
    kc->burst = burst > 0 ? burst : 1;
    kc->tokens = kc->burst;
    kc->last_refill = mono_s();
    pthread_mutex_unlock(&kc->mu);
}

/* Takes a token, sleeping (outside the lock) until it is due. Reserving
 * by letting the bucket go negative keeps callers in arrival order. */
static void
rate_wait(struct kube_client *kc)
{
    double wait = 0;
    pthread_mutex_lock(&kc->mu);
    if (kc->qps > 0) {
        double now = mono_s();
        kc->tokens += (now - kc->last_refill) * kc->qps;
        if (kc->tokens > kc->burst)
            kc->tokens = kc->burst;
        kc->last_refill = now;
        kc->tokens -= 1;
        if (kc->tokens < 0)
            wait = -kc->tokens / kc->qps;
    }
    pthread_mutex_unlock(&kc->mu);
    if (wait > 0) {
        struct timespec ts = {(time_t)wait,
                              (long)((wait - (double)(time_t)wait) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

/* Current token (copy for the caller), re-reading the token file when its
 * mtime or size changed: projected service-account tokens rotate. A read
 * failure keeps the previous token (logged), as client-go does. */
static char *
current_token(struct kube_client *kc)
{
    char e[256];
    char *res = NULL;

    if (kc->cfg.token)
        return strdup(kc->cfg.token);
    if (!kc->cfg.token_file)
        return NULL;
    pthread_mutex_lock(&kc->mu);
    struct stat st;
    if (stat(kc->cfg.token_file, &st) == 0
        && (!kc->token || st.st_mtim.tv_sec != kc->token_mtime.tv_sec
            || st.st_mtim.tv_nsec != kc->token_mtime.tv_nsec
            || st.st_size != kc->token_size)) {
        char *t = kube_config_token(&kc->cfg, e, sizeof(e));
        if (t) {
            free(kc->token);
            kc->token = t;
            kc->token_mtime = st.st_mtim;
            kc->token_size = st.st_size;
        } else {
            LOGE("kube client: %s", e);
        }
    }
    if (kc->token)
        res = strdup(kc->token);
    pthread_mutex_unlock(&kc->mu);
    return res;
}

int
kube_do(struct kube_client *kc, struct http_client *hc, const char *path,
        struct http_req *req, struct http_resp *resp, char *err, size_t errlen)
{
    static const char *const def_headers[] = {
        "Accept: application/json, */*", NULL
    };
    struct buf url;
    char *token = NULL;
    int rc = -1;
    bool own = false;

    buf_init(&url, 64 * 1024);
    buf_init(&resp->body, 0);
    resp->status = 0;
    if (buf_adds(&url, kc->cfg.server) < 0 || buf_adds(&url, path) < 0) {
        seterr(err, errlen, "request URL too long");
        goto done;
    }
    token = current_token(kc);
    req->url = url.data;
    req->tls = &kc->cfg.tls;
    req->bearer_token = token;
    req->basic_user = kc->cfg.username;
    req->basic_pass = kc->cfg.password;
    if (!req->method)
        req->method = "GET";
    if (!req->headers)
        req->headers = def_headers;
    if (req->timeout_ms <= 0)
        req->timeout_ms = kc->timeout_ms;

    pthread_mutex_lock(&kc->mu);
    kc->requests++;
    pthread_mutex_unlock(&kc->mu);
    rate_wait(kc);

    if (!hc) {
        pthread_mutex_lock(&kc->own_mu);
        own = true;
        if (!kc->own && !(kc->own = http_client_new(err, errlen)))
            goto done;
        hc = kc->own;
    }
    rc = http_client_do(hc, req, resp, err, errlen);
done:
    if (own)
        pthread_mutex_unlock(&kc->own_mu);
    req->url = NULL;
    req->bearer_token = NULL;
    free(token);
    buf_free(&url);
    return rc;
}

int
kube_do_measured(struct kube_client *kc, struct http_client *hc,
                 const char *verb, const char *path, struct http_req *req,
                 struct http_resp *resp, char *err, size_t errlen)
{
    double t0 = metrics_now();
    int rc = kube_do(kc, hc, path, req, resp, err, errlen);
    metrics_observe(METRICS_KUBE_DURATION, verb, NULL, metrics_now() - t0);
    if (rc != 0 || resp->status < 200 || resp->status > 299)
        metrics_add(METRICS_KUBE_ERRORS, verb, NULL, 1);
    return rc;
}

/* -- Discovery -------------------------------------------------------------- */

struct yajl_val_s *
kube_json_parse(const char *text, char *perr, size_t perrlen)
{
    size_t len = strlen(text);
    char *fixed = NULL;
    yajl_val v;

    /* the whole text can be repaired: outside strings a byte above 0x7F is
     * a syntax error before and after */
    if (utf8_valid_prefix(text, len) != len) {
        if (!(fixed = utf8_repair_dup(text, len, NULL))) {
            seterr(perr, perrlen, "out of memory");
            return NULL;
        }
        text = fixed;
    }
    v = yajl_tree_parse(text, perr, perrlen);
    free(fixed);
    return v;
}

/* GETs a discovery document and parses it; NULL with err on failure. */
static yajl_val
get_json(struct kube_client *kc, const char *path, char *err, size_t errlen)
{
    struct http_req req = {0};
    struct http_resp resp;
    char perr[256];
    yajl_val v = NULL;

    req.max_body = DISCOVERY_MAX_BODY;
    if (kube_do(kc, NULL, path, &req, &resp, err, errlen) < 0)
        goto done;
    if (resp.status != 200) {
        seterr(err, errlen, "GET %s: HTTP %ld", path, resp.status);
        goto done;
    }
    v = kube_json_parse(resp.body.data ? resp.body.data : "", perr,
                        sizeof(perr));
    if (!v) {
        seterr(err, errlen, "GET %s: invalid JSON: %s", path, perr);
        goto done;
    }
    if (!YAJL_IS_OBJECT(v)) {
        seterr(err, errlen, "GET %s: not a JSON object", path);
        yajl_tree_free(v);
        v = NULL;
    }
done:
    buf_free(&resp.body);
    return v;
}

static const char *
jstr(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static yajl_val
jget(yajl_val obj, const char *key, yajl_type t)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(obj, path, t);
}

struct reslist {
    struct kube_resource *v;
    size_t n, cap;
};

static void
res_clear(struct kube_resource *r)
{
    free(r->group);
    free(r->version);
    free(r->resource);
    free(r->singular);
    free(r->kind);
}

void
kube_resources_free(struct kube_resource *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        res_clear(&r[i]);
    free(r);
}

/* Appends the resources of one APIResourceList document. */
static int
add_resources(struct reslist *l, yajl_val doc, const char *group,
              const char *version, bool preferred)
{
    yajl_val arr = jget(doc, "resources", yajl_t_array);
    if (!arr)
        return 0;   /* a group-version with no resources is fine */
    for (size_t i = 0; i < YAJL_GET_ARRAY(arr)->len; i++) {
        yajl_val r = YAJL_GET_ARRAY(arr)->values[i];
        const char *name = jstr(r, "name");
        const char *kind = jstr(r, "kind");
        const char *sing = jstr(r, "singularName");
        if (!name || !*name || strchr(name, '/'))
            continue;   /* subresource (pods/log) or garbage */
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 256;
            struct kube_resource *nv = realloc(l->v, cap * sizeof(*nv));
            if (!nv)
                return -1;
            l->v = nv;
            l->cap = cap;
        }
        struct kube_resource *k = &l->v[l->n];
        memset(k, 0, sizeof(*k));
        k->group = strdup(group);
        k->version = strdup(version);
        k->resource = strdup(name);
        k->kind = strdup(kind ? kind : "");
        if (sing && *sing) {
            k->singular = strdup(sing);
        } else if ((k->singular = strdup(kind ? kind : ""))) {
            for (char *p = k->singular; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        }
        k->namespaced = YAJL_IS_TRUE(jget(r, "namespaced", yajl_t_true));
        k->preferred = preferred;
        if (!k->group || !k->version || !k->resource || !k->kind
            || !k->singular) {
            res_clear(k);
            return -1;
        }
        l->n++;
    }
    return 0;
}

/* Fetches /api/<v> or /apis/<g>/<v> and appends it; failures are logged
 * and skipped (an unavailable aggregated API must not stop discovery). */
static int
add_group_version(struct kube_client *kc, struct reslist *l, const char *group,
                  const char *version, bool preferred)
{
    char path[1024], e[512];
    if (*group)
        snprintf(path, sizeof(path), "/apis/%s/%s", group, version);
    else
        snprintf(path, sizeof(path), "/api/%s", version);
    yajl_val doc = get_json(kc, path, e, sizeof(e));
    if (!doc) {
        LOGW("discovery: skipping %s%s%s: %s", group, *group ? "/" : "",
             version, e);
        return 0;
    }
    int rc = add_resources(l, doc, group, version, preferred);
    yajl_tree_free(doc);
    return rc;
}

int
kube_discover(struct kube_client *kc, struct kube_resource **out, size_t *n,
              char *err, size_t errlen)
{
    struct reslist l = {0};
    yajl_val api = NULL, apis = NULL;
    char e[512];
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (!(api = get_json(kc, "/api", e, sizeof(e)))) {
        seterr(err, errlen, "unable to retrieve the complete list of server APIs: %s", e);
        goto done;
    }
    if (!(apis = get_json(kc, "/apis", e, sizeof(e)))) {
        seterr(err, errlen, "unable to retrieve the complete list of server APIs: %s", e);
        goto done;
    }
    yajl_val vs = jget(api, "versions", yajl_t_array);
    for (size_t i = 0; vs && i < YAJL_GET_ARRAY(vs)->len; i++) {
        yajl_val v = YAJL_GET_ARRAY(vs)->values[i];
        if (!YAJL_IS_STRING(v))
            continue;
        /* the core group's preferred version is the first one listed */
        if (add_group_version(kc, &l, "", YAJL_GET_STRING(v), i == 0) < 0)
            goto oom;
    }
    yajl_val groups = jget(apis, "groups", yajl_t_array);
    for (size_t i = 0; groups && i < YAJL_GET_ARRAY(groups)->len; i++) {
        yajl_val g = YAJL_GET_ARRAY(groups)->values[i];
        const char *gname = jstr(g, "name");
        const char *pathp[] = {"preferredVersion", "version", NULL};
        yajl_val pv = yajl_tree_get(g, pathp, yajl_t_string);
        const char *pref = pv ? YAJL_GET_STRING(pv) : NULL;
        yajl_val gvs = jget(g, "versions", yajl_t_array);
        if (!gname || !gvs)
            continue;
        for (size_t j = 0; j < YAJL_GET_ARRAY(gvs)->len; j++) {
            const char *ver = jstr(YAJL_GET_ARRAY(gvs)->values[j], "version");
            if (!ver)
                continue;
            bool preferred = pref ? !strcmp(pref, ver) : j == 0;
            if (add_group_version(kc, &l, gname, ver, preferred) < 0)
                goto oom;
        }
    }
    *out = l.v;
    *n = l.n;
    l.v = NULL;
    rc = 0;
    goto done;
oom:
    seterr(err, errlen, "out of memory");
done:
    kube_resources_free(l.v, l.n);
    yajl_tree_free(api);
    yajl_tree_free(apis);
    return rc;
}
