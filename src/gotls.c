/* gotls.c: Go's PEM, base64 and key-pair start-up checks (see gotls.h).
 * The PEM framing follows encoding/pem.Decode (the linear version: find an
 * END line, then the last BEGIN line before it), base64 follows
 * base64.StdEncoding.Decode; certificates and keys are DER-parsed by
 * OpenSSL 3. Every buffer made here is freed here, except gotls_pem.der,
 * which the caller owns. */
#include "gotls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

static void
seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* -- base64 (Go's StdEncoding) ----------------------------------------------- */

static int
b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static size_t
skip_newlines(const char *s, size_t n, size_t si)
{
    while (si < n && (s[si] == '\n' || s[si] == '\r'))
        si++;
    return si;
}

/* One 4-character quantum from si, as Go's decodeQuantum: returns the
 * bytes written (0-3), *si advanced, or -1 with *bad. */
static int
b64_quantum(const char *s, size_t n, size_t *sip, unsigned char *out,
            size_t *bad)
{
    unsigned char d[4] = {0, 0, 0, 0};
    size_t si = *sip;
    int dlen = 4, j;
    bool trailing = false;
    size_t trailing_at = 0;

    for (j = 0; j < 4; j++) {
        if (si == n) {
            if (j == 0) {
                *sip = si;
                return 0;
            }
            *bad = si - (size_t)j;      /* an incomplete quantum */
            return -1;
        }
        unsigned char in = (unsigned char)s[si++];
        int v = b64val(in);
        if (v >= 0) {
            d[j] = (unsigned char)v;
            continue;
        }
        if (in == '\n' || in == '\r') {
            j--;
            continue;
        }
        if (in != '=') {
            *bad = si - 1;
            return -1;
        }
        /* padding: only after two or three characters */
        if (j < 2) {
            *bad = si - 1;
            return -1;
        }
        if (j == 2) {                   /* "==" expected */
            si = skip_newlines(s, n, si);
            if (si == n) {
                *bad = n;
                return -1;
            }
            if (s[si] != '=') {
                *bad = si - 1;
                return -1;
            }
            si++;
        }
        si = skip_newlines(s, n, si);
        if (si < n) {
            trailing = true;            /* data after the padding */
            trailing_at = si;
        }
        dlen = j;
        break;
    }
    unsigned val = (unsigned)d[0] << 18 | (unsigned)d[1] << 12 |
                   (unsigned)d[2] << 6 | d[3];
    out[0] = (unsigned char)(val >> 16);
    out[1] = (unsigned char)(val >> 8);
    out[2] = (unsigned char)val;
    *sip = si;
    if (trailing) {
        *bad = trailing_at;
        return -1;
    }
    return dlen - 1;
}

int
gotls_b64_decode(const char *s, size_t n, unsigned char *out,
                 size_t *outlen, size_t *bad)
{
    size_t si = 0, o = 0;

    while (si < n) {
        int w = b64_quantum(s, n, &si, out + o, bad);
        if (w < 0)
            return -1;
        o += (size_t)w;
    }
    *outlen = o;
    return 0;
}

/* -- PEM (Go's encoding/pem.Decode) -------------------------------------------- */

/* Go's getLine: the line up to '\n' (a '\r' before it and trailing spaces
 * and tabs removed); returns its length, *consumed = bytes up to and
 * including the '\n' (all of them when there is none). */
static size_t
pem_line(const char *d, size_t n, size_t *consumed)
{
    const char *nl = memchr(d, '\n', n);
    size_t i = nl ? (size_t)(nl - d) : n;

    *consumed = nl ? i + 1 : n;
    if (nl && i > 0 && d[i - 1] == '\r')
        i--;
    while (i > 0 && (d[i - 1] == ' ' || d[i - 1] == '\t'))
        i--;
    return i;
}

static ssize_t
find(const char *hay, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= n; i++) {
        const char *p = memchr(hay + i, needle[0], n - nl + 1 - i);
        if (!p)
            return -1;
        i = (size_t)(p - hay);
        if (memcmp(p, needle, nl) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static ssize_t
find_last(const char *hay, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    if (n < nl)
        return -1;
    for (size_t i = n - nl + 1; i-- > 0;)
        if (memcmp(hay + i, needle, nl) == 0)
            return (ssize_t)i;
    return -1;
}

/* Base64 body of a block: spaces and tabs removed, then Go's decoder. */
static int
pem_body(const char *s, size_t n, unsigned char **der, size_t *der_len)
{
    char *clean = malloc(n + 1);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    size_t m = 0, bad;
    int rc = -1;

    if (!clean || !out)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            clean[m++] = s[i];
    if (gotls_b64_decode(clean, m, out, der_len, &bad) != 0) {
        rc = 1;                         /* not base64: not a block */
        goto done;
    }
    *der = out;
    out = NULL;
    rc = 0;
done:
    free(clean);
    free(out);
    return rc;
}

int
gotls_pem_next(const char *data, size_t n, struct gotls_pem *blk,
               size_t *next)
{
    static const char BEGIN[] = "-----BEGIN ", END[] = "\n-----END ";
    const size_t BL = sizeof BEGIN - 1, EL = sizeof END - 1;
    const char *rest = data;
    size_t rlen = n, c;
    ssize_t end_trailer = 0;

    memset(blk, 0, sizeof *blk);
    for (;;) {
        /* skip past the END line an earlier attempt already saw */
        if (end_trailer < 0 || (size_t)end_trailer > rlen)
            return 0;
        rest += end_trailer;
        rlen -= (size_t)end_trailer;

        ssize_t end = find(rest, rlen, END);
        if (end < 0)
            return 0;
        end_trailer = end + (ssize_t)EL;
        ssize_t begin = find_last(rest, (size_t)end, BEGIN);
        if (begin < 0 || (begin > 0 && rest[begin - 1] != '\n'))
            continue;
        size_t adv = (size_t)begin + BL;
        rest += adv;
        rlen -= adv;
        end -= (ssize_t)adv;
        end_trailer -= (ssize_t)adv;

        const char *type = rest;
        size_t tl = pem_line(rest, rlen, &c);
        rest += c;
        rlen -= c;
        end -= (ssize_t)c;
        end_trailer -= (ssize_t)c;
        if (tl < 5 || memcmp(type + tl - 5, "-----", 5) != 0)
            continue;
        tl -= 5;

        bool headers = false;
        for (;;) {
            if (rlen == 0)
                return 0;
            size_t ll = pem_line(rest, rlen, &c);
            if (!memchr(rest, ':', ll))
                break;
            headers = true;
            rest += c;
            rlen -= c;
            end -= (ssize_t)c;
            end_trailer -= (ssize_t)c;
        }
        if (headers && end < 0)
            continue;
        if (end_trailer < 0 || (size_t)end_trailer > rlen)
            continue;

        /* "-----END " + the same type + "-----", then only blanks */
        const char *trailer = rest + end_trailer;
        size_t tlen = rlen - (size_t)end_trailer;
        if (tlen < tl + 5 || memcmp(trailer, type, tl) != 0 ||
            memcmp(trailer + tl, "-----", 5) != 0)
            continue;
        if (pem_line(trailer + tl + 5, tlen - tl - 5, &c) != 0)
            continue;

        unsigned char *der = NULL;
        size_t der_len = 0;
        if (end > 0) {
            int r = pem_body(rest, (size_t)end, &der, &der_len);
            if (r < 0)
                return -1;
            if (r > 0)
                continue;
        } else if (!(der = malloc(1))) {
            return -1;
        }
        /* the rest starts after the END line (end may be -1: an empty
         * block whose END follows the BEGIN line directly) */
        size_t pos = (size_t)(end + (ssize_t)EL - 1);
        pem_line(rest + pos, rlen - pos, &c);
        blk->type = type;
        blk->type_len = tl;
        blk->has_headers = headers;
        blk->der = der;
        blk->der_len = der_len;
        *next = (size_t)(rest + pos + c - data);
        return 1;
    }
}

static bool
type_is(const struct gotls_pem *b, const char *t)
{
    return b->type_len == strlen(t) && memcmp(b->type, t, b->type_len) == 0;
}

/* -- Certificates and keys (OpenSSL) ------------------------------------------ */

/* x509.ParseCertificate: the certificate, or NULL with Go's error. */
static X509 *
parse_cert(const unsigned char *der, size_t len, char *err, size_t errlen)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);

    if (!x) {
        seterr(err, errlen, "x509: malformed certificate");
    } else if ((size_t)(p - der) != len) {
        X509_free(x);
        x = NULL;
        seterr(err, errlen, "x509: trailing data");
    }
    ERR_clear_error();
    return x;
}

int
gotls_count_certs(const char *data, size_t n)
{
    size_t off = 0, next;
    int count = 0;

    while (off < n) {
        struct gotls_pem b;
        int r = gotls_pem_next(data + off, n - off, &b, &next);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        off += next;
        if (type_is(&b, "CERTIFICATE") && !b.has_headers) {
            X509 *x = parse_cert(b.der, b.der_len, NULL, 0);
            if (x)
                count++;
            X509_free(x);
        }
        free(b.der);
    }
    return count;
}

int
gotls_root_pool(const char *data, size_t n, char *err, size_t errlen)
{
    char why[256];
    size_t off = 0, next;
    int c = gotls_count_certs(data, n);

    if (c > 0)
        return 0;
    if (c < 0) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    /* client-go's createErrorParsingCAData: why no certificate was found */
    while (off < n) {
        struct gotls_pem b;
        int r = gotls_pem_next(data + off, n - off, &b, &next);
        if (r < 0) {
            seterr(err, errlen, "out of memory");
            return -1;
        }
        if (r == 0) {
            seterr(err, errlen, "unable to load root certificates: unable "
                   "to parse bytes as PEM block");
            return -1;
        }
        off += next;
        if (type_is(&b, "CERTIFICATE") && !b.has_headers) {
            X509 *x = parse_cert(b.der, b.der_len, why, sizeof why);
            free(b.der);
            if (!x) {
                if (err && errlen)
                    snprintf(err, errlen, "unable to load root certificates: "
                             "failed to parse certificate: %s", why);
                return -1;
            }
            X509_free(x);
        } else {
            free(b.der);
        }
    }
    seterr(err, errlen, "unable to load root certificates: no valid "
           "certificate authority data seen");
    return -1;
}

/* Go's tls parsePrivateKey: PKCS#1 RSA, PKCS#8 (RSA, ECDSA, Ed25519) or
 * SEC 1 EC. NULL with Go's error otherwise. */
static EVP_PKEY *
parse_private_key(const unsigned char *der, size_t len, char *err,
                  size_t errlen)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *k = NULL;

    if (p8) {
        k = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
        if (k) {
            int id = EVP_PKEY_get_base_id(k);
            if (id == EVP_PKEY_RSA || id == EVP_PKEY_EC ||
                id == EVP_PKEY_ED25519)
                goto done;
            EVP_PKEY_free(k);
            k = NULL;
            if (id == EVP_PKEY_X25519) {
                /* Go parses it (crypto/ecdh) but TLS cannot sign with it */
                seterr(err, errlen, "tls: found unknown private key type in "
                       "PKCS#8 wrapping");
                goto done;
            }
        }
    }
    p = der;
    if ((k = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len)))
        goto done;
    p = der;
    if ((k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)len)))
        goto done;
    seterr(err, errlen, "tls: failed to parse private key");
done:
    ERR_clear_error();
    return k;
}

/* Counts a skipped block and appends " TYPE" (or "TYPE" first) to the
 * skipped-type list of a message; a list too long for the buffer is cut.
 * With one block skipped, the list is that block's type. */
static void
skipped_add(char *list, size_t cap, int *n, const struct gotls_pem *b)
{
    size_t l = strlen(list);
    (*n)++;
    if (l + 1 < cap)
        snprintf(list + l, cap - l, "%s%.*s", l ? " " : "", (int)b->type_len,
                 b->type);
}

int
gotls_x509_key_pair(const char *cert, size_t cert_len, const char *key,
                    size_t key_len, char *err, size_t errlen)
{
    char skipped[512] = "";
    unsigned char *cert_der = NULL, *key_der = NULL;
    size_t cert_der_len = 0, key_der_len = 0, off = 0, next;
    int nskipped = 0, rc = -1;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    struct gotls_pem b;
    int r;

    while ((r = gotls_pem_next(cert + off, cert_len - off, &b, &next)) > 0) {
        off += next;
        if (type_is(&b, "CERTIFICATE")) {
            if (!cert_der) {            /* the leaf; the chain is not used */
                cert_der = b.der;
                cert_der_len = b.der_len;
                continue;
            }
        } else {
            skipped_add(skipped, sizeof skipped, &nskipped, &b);
        }
        free(b.der);
    }
    if (r < 0)
        goto oom;
    if (!cert_der) {
        size_t fl = strlen(skipped);
        if (nskipped == 0)
            seterr(err, errlen, "tls: failed to find any PEM data in "
                   "certificate input");
        else if (nskipped == 1 && fl >= 11 &&
                 strcmp(skipped + fl - 11, "PRIVATE KEY") == 0)
            seterr(err, errlen, "tls: failed to find certificate PEM data in "
                   "certificate input, but did find a private key; PEM "
                   "inputs may have been switched");
        else if (err && errlen)
            snprintf(err, errlen, "tls: failed to find \"CERTIFICATE\" PEM "
                     "block in certificate input after skipping PEM blocks "
                     "of the following types: [%s]", skipped);
        goto done;
    }

    skipped[0] = '\0';
    nskipped = 0;
    off = 0;
    while ((r = gotls_pem_next(key + off, key_len - off, &b, &next)) > 0) {
        off += next;
        if (type_is(&b, "PRIVATE KEY") ||
            (b.type_len >= 12 &&
             memcmp(b.type + b.type_len - 12, " PRIVATE KEY", 12) == 0)) {
            key_der = b.der;
            key_der_len = b.der_len;
            break;
        }
        skipped_add(skipped, sizeof skipped, &nskipped, &b);
        free(b.der);
    }
    if (r < 0)
        goto oom;
    if (!key_der) {
        if (nskipped == 0)
            seterr(err, errlen, "tls: failed to find any PEM data in key "
                   "input");
        else if (nskipped == 1 && strcmp(skipped, "CERTIFICATE") == 0)
            seterr(err, errlen, "tls: found a certificate rather than a key "
                   "in the PEM for the private key");
        else if (err && errlen)
            snprintf(err, errlen, "tls: failed to find PEM block with type "
                     "ending in \"PRIVATE KEY\" in key input after skipping "
                     "PEM blocks of the following types: [%s]", skipped);
        goto done;
    }

    if (!(x = parse_cert(cert_der, cert_der_len, err, errlen)))
        goto done;
    if (!(k = parse_private_key(key_der, key_der_len, err, errlen)))
        goto done;
    EVP_PKEY *pub = X509_get0_pubkey(x);
    int pid = pub ? EVP_PKEY_get_base_id(pub) : NID_undef;
    if (pid != EVP_PKEY_RSA && pid != EVP_PKEY_EC && pid != EVP_PKEY_ED25519) {
        seterr(err, errlen, "tls: unknown public key algorithm");
        goto done;
    }
    if (EVP_PKEY_get_base_id(k) != pid) {
        seterr(err, errlen, "tls: private key type does not match public "
               "key type");
        goto done;
    }
    if (EVP_PKEY_eq(pub, k) != 1) {
        seterr(err, errlen, "tls: private key does not match public key");
        goto done;
    }
    rc = 0;
    goto done;
oom:
    seterr(err, errlen, "out of memory");
done:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    free(cert_der);
    if (key_der) {
        OPENSSL_cleanse(key_der, key_der_len);
        free(key_der);
    }
    return rc;
}
