/* certs.c: serving certificate loading and self-signed generation with
 * OpenSSL 3 (see certs.h). The generated pair matches client-go's
 * GenerateSelfSignedCertKey as used by k8s.io/apiserver: a CA
 * "localhost-ca@<unix>" (RSA 2048, CA:TRUE, digitalSignature +
 * keyEncipherment + keyCertSign) signs "localhost@<unix>" (RSA 2048,
 * digitalSignature + keyEncipherment, serverAuth, SANs localhost and
 * 127.0.0.1 [+ bind IP]); both valid from now-1h for one year. The .crt
 * holds the serving cert then the CA; the .key is PKCS#1. */
#include "certs.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include "buf.h"
#include "log.h"

#define PEM_MAX ((size_t)16 << 20)

/* Appends OpenSSL's last queued error (if any) after msg, and clears the
 * thread's error queue. */
static void
ssl_err(char *err, size_t errlen, const char *msg)
{
    unsigned long e = ERR_get_error();
    char s[256] = "";

    if (e != 0)
        ERR_error_string_n(e, s, sizeof s);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", msg, s[0] ? ": " : "", s);
}


/* Checks that the PEM texts hold a certificate and a private key that
 * belong together. */
static int
check_pair(const char *cert_pem, const char *key_pem, const char *what,
           char *err, size_t errlen)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    char msg[4400];   /* "what" is at most 4200 bytes */
    int rc = -1;

    if (cb == NULL || kb == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    if (x == NULL) {
        snprintf(msg, sizeof msg, "unable to load server certificate %s",
                 what);
        ssl_err(err, errlen, msg);
        goto done;
    }
    k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (k == NULL) {
        snprintf(msg, sizeof msg, "unable to load server private key %s",
                 what);
        ssl_err(err, errlen, msg);
        goto done;
    }
    if (X509_check_private_key(x, k) != 1) {
        snprintf(msg, sizeof msg, "server certificate and private key %s "
                 "do not match", what);
        ssl_err(err, errlen, msg);
        goto done;
    }
    rc = 0;
done:
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

static int
load_pair(const char *cert_file, const char *key_file, char **cert_pem,
          char **key_pem, char *err, size_t errlen)
{
    char what[4200];

    *cert_pem = buf_read_file(cert_file, PEM_MAX, NULL, err, errlen);
    if (*cert_pem == NULL)
        return -1;
    *key_pem = buf_read_file(key_file, PEM_MAX, NULL, err, errlen);
    if (*key_pem == NULL)
        goto fail;
    snprintf(what, sizeof what, "(%s, %s)", cert_file, key_file);
    if (check_pair(*cert_pem, *key_pem, what, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = NULL;
    *key_pem = NULL;
    return -1;
}

/* mkdir -p with mode 0755 for the components created. */
static int
mkdir_p(const char *dir, char *err, size_t errlen)
{
    char *p = strdup(dir);
    int rc = -1;

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;

            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir %s: %s", p, strerror(errno));
                goto done;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    rc = 0;
done:
    free(p);
    return rc;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key, subject CN=cn, signed by (issuer, ikey); issuer
 * NULL makes it self-signed. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
          time_t now, const char *const *exts, const int *nids, size_t next)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *serial = NULL;
    X509_NAME *name;

    if (x == NULL || bn == NULL)
        goto fail;
    /* Random positive serial below 2^63, like Go's rand.Int(MaxInt64). */
    if (!BN_rand(bn, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        BN_is_zero(bn) || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL)
        goto fail;
    if (!X509_set_version(x, 2) || !X509_set_serialNumber(x, serial))
        goto fail;
    if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 365, 0, &now) == NULL)
        goto fail;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0))
        goto fail;
    if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                        : name))
        goto fail;
    if (!X509_set_pubkey(x, key))
        goto fail;
    for (size_t i = 0; i < next; i++)
        if (add_ext(x, issuer ? issuer : x, nids[i], exts[i]) < 0)
            goto fail;
    if (!X509_sign(x, issuer ? ikey : key, EVP_sha256()))
        goto fail;
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return x;
fail:
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* The PEM text of whatever fn writes into a memory BIO. */
static char *
bio_text(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);

    if (out == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

/* Writes text to path with the given mode (0644/0600), replacing it. */
static int
write_file(const char *path, const char *text, mode_t mode, char *err,
           size_t errlen)
{
    size_t n = strlen(text), off = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) < 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(err, errlen, "write %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "close %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static bool
specific_ip(const char *addr, char *san, size_t sanlen)
{
    unsigned char a[16];

    if (addr == NULL || addr[0] == '\0')
        return false;
    if (inet_pton(AF_INET, addr, a) == 1) {
        if (strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "127.0.0.1") == 0)
            return false;
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        static const unsigned char any[16];

        if (memcmp(a, any, 16) == 0)
            return false;
    } else {
        return false;
    }
    snprintf(san, sanlen, ",IP:%s", addr);
    return true;
}

static int
generate(const char *cert_path, const char *key_path, const char *dir,
         const char *bind_address, char **cert_pem, char **key_pem,
         char *err, size_t errlen)
{
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca = NULL, *cert = NULL;
    BIO *cb = NULL, *kb = NULL;
    time_t now = time(NULL);
    char cn[64], san[128] = "DNS:localhost,DNS:localhost,IP:127.0.0.1";
    char ipsan[80];
    static const int ca_nids[] = {
        NID_key_usage, NID_basic_constraints, NID_subject_key_identifier,
    };
    const char *ca_exts[] = {
        "critical,digitalSignature,keyEncipherment,keyCertSign",
        "critical,CA:TRUE", "hash",
    };
    static const int nids[] = {
        NID_key_usage, NID_ext_key_usage, NID_basic_constraints,
        NID_authority_key_identifier, NID_subject_alt_name,
    };
    const char *exts[] = {
        "critical,digitalSignature,keyEncipherment", "serverAuth",
        "critical,CA:FALSE", "keyid", san,
    };
    int rc = -1;

    *cert_pem = *key_pem = NULL;
    /* "localhost" twice: Go lists the public address and "localhost" when
     * the bind address is unspecified; harmless and byte-compatible. */
    if (specific_ip(bind_address, ipsan, sizeof ipsan))
        snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1%s", ipsan);
    ca_key = EVP_RSA_gen(2048);
    key = EVP_RSA_gen(2048);
    if (ca_key == NULL || key == NULL) {
        ssl_err(err, errlen, "unable to generate self signed cert: RSA key");
        goto done;
    }
    snprintf(cn, sizeof cn, "localhost-ca@%lld", (long long)now);
    ca = make_cert(ca_key, cn, NULL, NULL, now, ca_exts, ca_nids, 3);
    snprintf(cn, sizeof cn, "localhost@%lld", (long long)now);
    if (ca != NULL)
        cert = make_cert(key, cn, ca, ca_key, now, exts, nids, 5);
    if (ca == NULL || cert == NULL) {
        ssl_err(err, errlen, "unable to generate self signed cert");
        goto done;
    }
    cb = BIO_new(BIO_s_mem());
    kb = BIO_new(BIO_s_mem());
    if (cb == NULL || kb == NULL || !PEM_write_bio_X509(cb, cert) ||
        !PEM_write_bio_X509(cb, ca) ||
        !PEM_write_bio_PrivateKey_traditional(kb, key, NULL, NULL, 0, NULL,
                                              NULL)) {
        ssl_err(err, errlen, "unable to encode self signed cert");
        goto done;
    }
    *cert_pem = bio_text(cb);
    *key_pem = bio_text(kb);
    if (*cert_pem == NULL || *key_pem == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (mkdir_p(dir, err, errlen) < 0 ||
        write_file(cert_path, *cert_pem, 0644, err, errlen) < 0 ||
        write_file(key_path, *key_pem, 0600, err, errlen) < 0)
        goto done;
    LOGI("Generated self-signed cert (%s, %s)", cert_path, key_path);
    rc = 0;
done:
    if (rc < 0) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
    }
    BIO_free(cb);
    BIO_free(kb);
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return rc;
}

/* "<dir>/<name>", malloc'd; NULL on ENOMEM. */
static char *
join(const char *dir, const char *name)
{
    struct buf b;

    buf_init(&b, 8192);
    if (buf_addf(&b, "%s/%s", dir, name) < 0)
        return NULL;
    return buf_take(&b, NULL);
}

static bool
readable(const char *path)
{
    return access(path, R_OK) == 0;
}

int
certs_load(const char *cert_file, const char *key_file, const char *cert_dir,
           const char *bind_address, char **cert_pem, char **key_pem,
           char *err, size_t errlen)
{
    bool have_cert = cert_file != NULL && cert_file[0] != '\0';
    bool have_key = key_file != NULL && key_file[0] != '\0';
    char *cpath = NULL, *kpath = NULL;
    const char *dir;
    bool cr, kr;
    int rc = -1;

    *cert_pem = *key_pem = NULL;
    if (have_cert || have_key) {
        if (!have_cert || !have_key) {
            snprintf(err, errlen, "--tls-cert-file and --tls-private-key-"
                     "file must be specified together");
            return -1;
        }
        return load_pair(cert_file, key_file, cert_pem, key_pem, err, errlen);
    }
    dir = cert_dir != NULL && cert_dir[0] != '\0' ? cert_dir
                                                  : CERTS_DEFAULT_DIR;
    cpath = join(dir, "apiserver.crt");
    kpath = join(dir, "apiserver.key");
    if (cpath == NULL || kpath == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    cr = readable(cpath);
    kr = readable(kpath);
    if (cr && kr) {
        rc = load_pair(cpath, kpath, cert_pem, key_pem, err, errlen);
        goto done;
    }
    if (cr != kr) {
        snprintf(err, errlen, "error reading %s, certificate and key must "
                 "be supplied as a pair", cr ? kpath : cpath);
        goto done;
    }
    rc = generate(cpath, kpath, dir, bind_address, cert_pem, key_pem, err,
                  errlen);
done:
    free(cpath);
    free(kpath);
    return rc;
}

int
certs_uuid4(char out[37])
{
    unsigned char r[16];

    if (RAND_bytes(r, sizeof r) != 1) {
        ERR_clear_error();
        return -1;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);   /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    return 0;
}

/* -- Serving certificate rotation ---------------------------------------- */

struct file_id {
    bool ok;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct certs_watch {
    char *cert_path;
    char *key_path;
    long interval_ms;
    certs_reload_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;         /* guards stop; cv wakes the poller early */
    pthread_cond_t cv;
    bool stop;
    struct file_id cert_id, key_id;
};

static void
file_id_get(const char *path, struct file_id *id)
{
    struct stat st;

    memset(id, 0, sizeof *id);
    if (stat(path, &st) != 0)
        return;
    id->ok = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    id->ctime = st.st_ctim;
}

static bool
file_id_eq(const struct file_id *a, const struct file_id *b)
{
    return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The poller thread: sleeps interval_ms on the condition variable (so
 * certs_watch_stop wakes it at once), then compares the files' identity.
 * A change is acted on only when both files are present and the pair
 * loads and matches (a writer replacing them one at a time is seen as
 * mismatched first, then as matched on a later tick). */
static void *
watch_main(void *p)
{
    struct certs_watch *w = p;
    char err[1024];

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += w->interval_ms / 1000;
        until.tv_nsec += (w->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->mu);

        struct file_id c, k;
        file_id_get(w->cert_path, &c);
        file_id_get(w->key_path, &k);
        if (c.ok && k.ok &&
            (!file_id_eq(&c, &w->cert_id) || !file_id_eq(&k, &w->key_id))) {
            char *cpem = NULL, *kpem = NULL;
            if (load_pair(w->cert_path, w->key_path, &cpem, &kpem, err,
                          sizeof err) == 0) {
                LOGI("Loaded a new cert/key pair for \"serving-cert::%s::%s\"",
                     w->cert_path, w->key_path);
                w->fn(w->arg, cpem, kpem);
                w->cert_id = c;
                w->key_id = k;
            } else {
                LOGE("reloading the serving certificate: %s (keeping the "
                     "current one)", err);
            }
            free(cpem);
            free(kpem);
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void
watch_free(struct certs_watch *w)
{
    free(w->cert_path);
    free(w->key_path);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

struct certs_watch *
certs_watch_start(const char *cert_file, const char *key_file,
                  const char *cert_dir, long interval_ms, certs_reload_fn fn,
                  void *arg, char *err, size_t errlen)
{
    struct certs_watch *w = calloc(1, sizeof *w);
    const char *dir;
    int e;

    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (cert_file != NULL && cert_file[0] != '\0') {
        w->cert_path = strdup(cert_file);
        w->key_path = strdup(key_file != NULL ? key_file : "");
    } else {
        dir = cert_dir != NULL && cert_dir[0] != '\0' ? cert_dir
                                                      : CERTS_DEFAULT_DIR;
        w->cert_path = join(dir, "apiserver.crt");
        w->key_path = join(dir, "apiserver.key");
    }
    if (w->cert_path == NULL || w->key_path == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    w->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    w->fn = fn;
    w->arg = arg;
    /* The pair certs_load just read is the baseline. */
    file_id_get(w->cert_path, &w->cert_id);
    file_id_get(w->key_path, &w->key_id);
    if ((e = pthread_create(&w->thread, NULL, watch_main, w)) != 0) {
        snprintf(err, errlen, "starting the certificate watcher: %s",
                 strerror(e));
        goto fail;
    }
    return w;
fail:
    watch_free(w);
    return NULL;
}

void
certs_watch_stop(struct certs_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    watch_free(w);
}

/* -- Client certificate verification -------------------------------------- */

struct certs_pool {
    X509_STORE *store;          /* read-only after certs_pool_new */
};

struct certs_pool *
certs_pool_new(const char *pem, char *err, size_t errlen)
{
    struct certs_pool *p = NULL;
    BIO *bio = NULL;
    X509 *x;
    int count = 0;

    if (pem == NULL || pem[0] == '\0') {
        snprintf(err, errlen, "empty CA bundle");
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->store = X509_STORE_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        ssl_err(err, errlen, "reading the CA bundle");
        goto fail;
    }
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(p->store, x);
        X509_free(x);       /* the store took its own reference */
        if (ok != 1) {
            ssl_err(err, errlen, "adding a CA certificate");
            goto fail;
        }
        count++;
    }
    ERR_clear_error();      /* the end of the bundle queues a PEM error */
    if (count == 0) {
        snprintf(err, errlen, "data does not contain any valid RSA or "
                 "ECDSA certificates");
        goto fail;
    }
    BIO_free(bio);
    return p;
fail:
    BIO_free(bio);
    certs_pool_free(p);
    return NULL;
}

void
certs_pool_free(struct certs_pool *p)
{
    if (p == NULL)
        return;
    X509_STORE_free(p->store);
    free(p);
}

void
certs_subject_free(struct certs_subject *s)
{
    if (s == NULL)
        return;
    free(s->cn);
    for (size_t i = 0; i < s->norgs; i++)
        free(s->orgs[i]);
    free(s->orgs);
    memset(s, 0, sizeof *s);
}

/* Malloc'd UTF-8 text of one name entry; NULL on failure. */
static char *
entry_text(X509_NAME_ENTRY *e)
{
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    char *out;

    if (n < 0)
        return NULL;
    out = malloc((size_t)n + 1);
    if (out != NULL) {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return out;
}

static int
subject_of(X509 *leaf, struct certs_subject *out, char *err, size_t errlen)
{
    X509_NAME *name = X509_get_subject_name(leaf);
    int i, n = X509_NAME_entry_count(name);

    memset(out, 0, sizeof *out);
    for (i = 0; i < n; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        char *t;
        if (nid != NID_commonName && nid != NID_organizationName)
            continue;
        if ((t = entry_text(e)) == NULL)
            goto fail;
        if (nid == NID_commonName) {
            /* Go's pkix.Name keeps the last CN it sees. */
            free(out->cn);
            out->cn = t;
        } else {
            char **o = realloc(out->orgs, (out->norgs + 1) * sizeof *o);
            if (o == NULL) {
                free(t);
                goto fail;
            }
            out->orgs = o;
            out->orgs[out->norgs++] = t;
        }
    }
    if (out->cn == NULL && (out->cn = strdup("")) == NULL)
        goto fail;
    return 0;
fail:
    certs_subject_free(out);
    snprintf(err, errlen, "reading the certificate subject: out of memory");
    return -1;
}

/* Go-like text for an OpenSSL verification error. */
static const char *
verify_text(int code)
{
    switch (code) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "x509: certificate signed by unknown authority";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "x509: certificate has expired or is not yet valid";
    case X509_V_ERR_INVALID_PURPOSE:
        return "x509: certificate specifies an incompatible key usage";
    default:
        return NULL;
    }
}

int
certs_verify_client(const struct certs_pool *p,
                    const unsigned char *const *ders, const size_t *lens,
                    size_t n, struct certs_subject *out, char *err,
                    size_t errlen)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *inter = NULL;
    X509_STORE_CTX *ctx = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0) {
        snprintf(err, errlen, "no client certificate");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *q = ders[i];
        X509 *x = d2i_X509(NULL, &q, (long)lens[i]);
        if (x == NULL) {
            ssl_err(err, errlen, "x509: malformed certificate");
            goto done;
        }
        if (i == 0) {
            leaf = x;
            continue;
        }
        if (inter == NULL && (inter = sk_X509_new_null()) == NULL) {
            X509_free(x);
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (!sk_X509_push(inter, x)) {
            X509_free(x);
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    /* X509_STORE is safe for concurrent verification; each request has
     * its own context. */
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL ||
        X509_STORE_CTX_init(ctx, p->store, leaf, inter) != 1) {
        ssl_err(err, errlen, "x509: verification setup");
        goto done;
    }
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx) != 1) {
        int code = X509_STORE_CTX_get_error(ctx);
        const char *go = verify_text(code);
        char *subj = X509_NAME_oneline(X509_get_subject_name(leaf), NULL, 0);
        ERR_clear_error();
        snprintf(err, errlen, "verifying certificate %s failed: %s",
                 subj != NULL ? subj : "?",
                 go != NULL ? go : X509_verify_cert_error_string(code));
        OPENSSL_free(subj);
        goto done;
    }
    rc = subject_of(leaf, out, err, errlen);
done:
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(inter, X509_free);
    X509_free(leaf);
    return rc;
}

int
certs_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}
