/* certs.h: the serving certificate (spec-server 7.2) and random ids.
 * Provides certs_load, which applies Go's precedence -- explicit
 * --tls-cert-file/--tls-private-key-file, else <cert-dir>/apiserver.crt +
 * apiserver.key when both exist, else a freshly generated throw-away CA and
 * serving certificate written there (and reused on the next start) -- and
 * hands both PEMs back in memory for the TLS server; and certs_uuid4 for
 * Audit-Id headers. Uses OpenSSL (only this file among the server files)
 * and log.h. Must never log key material. Thread-safe (OpenSSL 3). */
#ifndef ADAPTER_CERTS_H
#define ADAPTER_CERTS_H
#include <stddef.h>

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

/* Writes a random (version 4) UUID, 36 chars + NUL, into out. 0 / -1. */
int certs_uuid4(char out[37]);
#endif
