/* certs.h: the serving certificate (spec-server 7.2) and random ids.
 * Provides certs_load, which applies Go's precedence -- explicit
 * --tls-cert-file/--tls-private-key-file, else <cert-dir>/apiserver.crt +
 * apiserver.key when both exist, else a freshly generated throw-away CA and
 * serving certificate written there (and reused on the next start) -- and
 * hands both PEMs back in memory for the TLS server; and certs_uuid4 for
 * Audit-Id headers; certs_watch, a thread that re-reads the serving pair
 * when its files change (cert-manager rotation, spec-server 7.2); and the
 * X.509 pieces of delegated authentication (spec-server 6.2, 6.3): CA
 * pools and per-request client-chain verification with OpenSSL's
 * X509_verify_cert, plus SHA-256 for cache keys. Uses OpenSSL (only this
 * file among the server and auth files), pthreads and log.h. Must never log
 * key material. Thread-safe (OpenSSL 3). */
#ifndef ADAPTER_CERTS_H
#define ADAPTER_CERTS_H
#include <stddef.h>
#include <stdint.h>

#define CERTS_DEFAULT_DIR "apiserver.local.config/certificates"

/* cert_file/key_file: both set, or both NULL/"" (one alone is an error).
 * cert_dir NULL/"" means CERTS_DEFAULT_DIR. bind_address: a specific IP is
 * added to the generated certificate's SANs ("0.0.0.0"/"::"/"" are not).
 * On success *cert_pem and *key_pem are malloc'd NUL-terminated PEM texts
 * the caller frees; the pair has been checked to load and to match.
 * On failure both are NULL and err says why. */
int certs_load(const char *cert_file, const char *key_file,
               const char *cert_dir, const char *bind_address,
               char **cert_pem, char **key_pem, char *err, size_t errlen);

/* Watches the files certs_load read (same arguments: the explicit pair, or
 * <cert-dir>/apiserver.crt + .key) from a background thread, polling their
 * size, mtime, ctime and inode every interval_ms (0 = 1000). When they
 * change and the new pair loads and matches, fn(arg, cert_pem, key_pem) is
 * called on that thread (the PEMs are freed after fn returns: copy them); a
 * bad pair is logged and the previous one stays. NULL with err on failure
 * (thread creation). */
typedef void (*certs_reload_fn)(void *arg, const char *cert_pem,
                                const char *key_pem);
struct certs_watch;
struct certs_watch *certs_watch_start(const char *cert_file,
                                      const char *key_file,
                                      const char *cert_dir, long interval_ms,
                                      certs_reload_fn fn, void *arg,
                                      char *err, size_t errlen);
/* Stops and joins the thread; NULL is a no-op. */
void certs_watch_stop(struct certs_watch *w);

/* An immutable set of trusted CA certificates (a PEM bundle) for verifying
 * client certificates. Safe to share between threads once built. NULL with
 * err when the bundle holds no certificate or does not parse. */
struct certs_pool;
struct certs_pool *certs_pool_new(const char *pem, char *err, size_t errlen);
void certs_pool_free(struct certs_pool *p);      /* NULL is a no-op */

/* The verified identity of a client certificate. Owned strings. */
struct certs_subject {
    char *cn;                   /* subject CN, "" when absent */
    char **orgs;                /* subject O values, in order */
    size_t norgs;
};
void certs_subject_free(struct certs_subject *s);  /* frees the members */

/* Verifies a peer chain (ders[0] the leaf, the rest intermediates, DER) to
 * the pool at the current time, requiring client-authentication use
 * (OpenSSL's SSL client purpose: an EKU, when present, must list
 * clientAuth). 0 and *out filled, or -1 with the reason in err ("x509:
 * certificate signed by unknown authority" style text). */
int certs_verify_client(const struct certs_pool *p,
                        const unsigned char *const *ders, const size_t *lens,
                        size_t n, struct certs_subject *out,
                        char *err, size_t errlen);

/* SHA-256 of p[0..n) into out. 0 / -1. */
int certs_sha256(const void *p, size_t n, unsigned char out[32]);

/* Writes a random (version 4) UUID, 36 chars + NUL, into out. 0 / -1. */
int certs_uuid4(char out[37]);
#endif
