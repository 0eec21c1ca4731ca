/* gotls.h: the start-up checks Go (and so prometheus-adapter and client-go)
 * makes on PEM, base64 and key material, with Go's acceptance rules and
 * error texts, so that bad TLS input is refused with the same messages.
 * Provides: gotls_b64_decode (base64.StdEncoding.Decode), gotls_pem_next
 * (encoding/pem.Decode), gotls_count_certs (x509.CertPool.AppendCertsFromPEM),
 * gotls_root_pool (client-go's rootCertPool), gotls_x509_key_pair
 * (crypto/tls.X509KeyPair).
 * Uses: OpenSSL 3 for the DER structures (certificates, keys); the PEM
 * framing and base64 are Go's algorithms written out here, because
 * OpenSSL's PEM reader accepts and rejects different inputs.
 * No global state; safe from any thread. Never logs key material. */
#ifndef ADAPTER_GOTLS_H
#define ADAPTER_GOTLS_H
#include <stdbool.h>
#include <stddef.h>

/* Go's base64.StdEncoding.Decode of s[0..n) into out (room for
 * n / 4 * 3 + 3 bytes): '\r' and '\n' are skipped, padding is required.
 * Returns 0 with *outlen set, or -1 with *bad = the offset Go's
 * CorruptInputError reports ("illegal base64 data at input byte <bad>"). */
int gotls_b64_decode(const char *s, size_t n, unsigned char *out,
                     size_t *outlen, size_t *bad);

/* One PEM block. type points into the input; der is owned (free it). */
struct gotls_pem {
    const char *type;
    size_t type_len;
    bool has_headers;          /* "Key: value" lines before the base64 */
    unsigned char *der;
    size_t der_len;
};

/* Go's pem.Decode on data[0..n): 1 with *blk filled and *next = the offset
 * of the rest of the input; 0 when no further block is found; -1 when out
 * of memory. */
int gotls_pem_next(const char *data, size_t n, struct gotls_pem *blk,
                   size_t *next);

/* How many certificates x509.CertPool.AppendCertsFromPEM would add (blocks
 * of type CERTIFICATE without headers that parse); -1 when out of memory. */
int gotls_count_certs(const char *data, size_t n);

/* client-go's rootCertPool on non-empty CA data: 0 when at least one
 * certificate is usable, else -1 with err "unable to load root
 * certificates: <unable to parse bytes as PEM block | failed to parse
 * certificate: ... | no valid certificate authority data seen>". */
int gotls_root_pool(const char *data, size_t n, char *err, size_t errlen);

/* crypto/tls.X509KeyPair: 0, or -1 with Go's error text in err ("tls:
 * failed to find any PEM data in certificate input", "tls: private key
 * does not match public key", ...). */
int gotls_x509_key_pair(const char *cert, size_t cert_len, const char *key,
                        size_t key_len, char *err, size_t errlen);
#endif
