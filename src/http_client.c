/* http_client.c: the HTTP(S) client behind prom.c, kube.c and kcache.c;
 * implements http_client.h on libcurl's easy interface.
 * Uses: libcurl (this is the only file that includes curl.h), buf.
 * Must never: share an easy handle between threads, install signal
 * handlers (CURLOPT_NOSIGNAL), or log tokens, passwords or keys.
 *
 * One easy handle per struct http_client. Each call resets the handle's
 * options (curl_easy_reset keeps the connection cache, DNS cache and TLS
 * session cache), so keep-alive connections are reused across calls and no
 * option leaks from one request into the next. */
#include "http_client.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef ADAPTER_VERSION
#define ADAPTER_VERSION "0.1.0"
#endif

#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define DEFAULT_CONNECT_MS 10000L

struct http_client {
    CURLM *m;    /* owns the connection cache; drives h so that a
                  * cancellation is noticed within CANCEL_POLL_MS */
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
};

#define CANCEL_POLL_MS 100

/* Per-call state shared with the libcurl callbacks (lives on the stack of
 * http_client_do; borrowed by curl for the duration of the transfer). */
struct xfer {
    const struct http_req *req;
    struct http_resp *resp;
    size_t max_body;
    size_t received;
    int too_big;        /* body exceeded max_body */
    int consumer_abort; /* on_data returned non-zero */
    int cancelled;      /* req->cancelled returned non-zero */
};

int
http_client_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

struct http_client *
http_client_new(char *err, size_t errlen)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->h = curl_easy_init();
    c->m = curl_multi_init();
    if (!c->h || !c->m) {
        snprintf(err, errlen, "curl initialisation failed");
        http_client_free(c);
        return NULL;
    }
    return c;
}

void
http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    if (c->m)
        curl_multi_cleanup(c->m);
    free(c);
}

static size_t
on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (n > x->max_body - x->received) {
        x->too_big = 1;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    x->received += n;
    if (x->req->on_data) {
        if (x->req->on_data(x->req->ctx, p, n) != 0) {
            x->consumer_abort = 1;
            return 0;
        }
        return n;
    }
    if (buf_add(&x->resp->body, p, n) != 0) {
        x->too_big = 1;
        return 0;
    }
    return n;
}

/* Called by libcurl while the transfer runs (at least about once a second,
 * more often while data flows); a non-zero return aborts it. */
static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
            curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = ud;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (x->req->cancelled && x->req->cancelled(x->req->ctx)) {
        x->cancelled = 1;
        return 1;
    }
    return 0;
}

static int
has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    if (!headers)
        return 0;
    for (size_t i = 0; headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return 1;
    return 0;
}

static int
append_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);
    if (!n)
        return -1;
    *list = n;
    return 0;
}

/* TLS server-name override (kubeconfig tls-server-name): libcurl verifies
 * the certificate against the URL's host name and has no separate option for
 * it, so the URL's host is replaced by the server name and CONNECT_TO sends
 * the connection to the real host; the Host header keeps the real host, as
 * Go's client does. *url_out and *connect_to own curl memory/allocations the
 * caller releases (curl_free, curl_slist_free_all). */
static int
apply_server_name(CURL *h, const char *url, const char *server_name,
                  char **url_out, struct curl_slist **connect_to,
                  struct curl_slist **headers, char *err, size_t errlen)
{
    int rc = -1;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *explicit_port = NULL;
    char line[1024];

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(err, errlen, "invalid URL");
        goto fail;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
            != CURLUE_OK) {
        snprintf(err, errlen, "URL without host");
        goto fail;
    }
    if (snprintf(line, sizeof line, "%s:%s:%s:%s", server_name, port, host,
                 port) >= (int)sizeof line)
        goto toolong;
    if (append_header(connect_to, line) != 0)
        goto oom;
    /* Host as Go sends it: the URL's host, with the port only if given */
    if (curl_url_get(u, CURLUPART_PORT, &explicit_port, 0) != CURLUE_OK)
        explicit_port = NULL;
    if (snprintf(line, sizeof line, "Host: %s%s%s", host,
                 explicit_port ? ":" : "", explicit_port ? explicit_port : "")
        >= (int)sizeof line)
        goto toolong;
    if (append_header(headers, line) != 0)
        goto oom;
    if (curl_url_set(u, CURLUPART_HOST, server_name, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, url_out, 0) != CURLUE_OK) {
        snprintf(err, errlen, "invalid TLS server name");
        goto fail;
    }
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, *connect_to);
    rc = 0;
    goto fail;
toolong:
    snprintf(err, errlen, "host name too long");
    goto fail;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    curl_free(host);
    curl_free(port);
    curl_free(explicit_port);
    curl_url_cleanup(u);
    return rc;
}

static void
set_tls(CURL *h, const struct http_tls *tls)
{
    struct curl_blob blob;

    if (tls->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file);
    if (tls->ca_pem) {
        blob.data = (void *)tls->ca_pem;
        blob.len = strlen(tls->ca_pem);
        blob.flags = CURL_BLOB_COPY;
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (tls->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, tls->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (tls->key_file) {
        curl_easy_setopt(h, CURLOPT_SSLKEY, tls->key_file);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (tls->cert_pem) {
        blob.data = (void *)tls->cert_pem;
        blob.len = strlen(tls->cert_pem);
        blob.flags = CURL_BLOB_COPY;
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (tls->key_pem) {
        blob.data = (void *)tls->key_pem;
        blob.len = strlen(tls->key_pem);
        blob.flags = CURL_BLOB_COPY;
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (tls->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (tls->min_tls == 12)
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    else if (tls->min_tls == 13)
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
}

/* Runs the transfer on the client's multi handle, waking at least every
 * CANCEL_POLL_MS to poll req->cancelled (the progress callback alone may be
 * called only once a second while the peer is silent). */
static CURLcode
perform(struct http_client *c, struct xfer *x)
{
    CURLcode cc = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;

    if (curl_multi_add_handle(c->m, c->h) != CURLM_OK)
        return CURLE_FAILED_INIT;
    while (running) {
        if (curl_multi_perform(c->m, &running) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        if (!running)
            break;
        if (x->req->cancelled && x->req->cancelled(x->req->ctx)) {
            x->cancelled = 1;
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (curl_multi_poll(c->m, NULL, 0, CANCEL_POLL_MS, NULL) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
    }
    while ((msg = curl_multi_info_read(c->m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->h)
            cc = msg->data.result;
    curl_multi_remove_handle(c->m, c->h);
    return cc;
}

int
http_client_do(struct http_client *c, const struct http_req *req,
               struct http_resp *resp, char *err, size_t errlen)
{
    int rc = -1;
    CURL *h = c->h;
    struct curl_slist *headers = NULL, *connect_to = NULL;
    char *url2 = NULL;
    struct xfer x;
    CURLcode cc;
    char *auth = NULL;
    const char *method = req->method ? req->method : "GET";
    long connect_ms;

    memset(resp, 0, sizeof *resp);
    memset(&x, 0, sizeof x);
    x.req = req;
    x.resp = resp;
    x.max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
    buf_init(&resp->body, x.max_body);

    curl_easy_reset(h);
    c->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "promlua-adapter/" ADAPTER_VERSION);
    /* Go's transport asks for gzip only and decompresses transparently. */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    /* A declared Content-Length over the cap fails before any byte is
     * read, instead of buffering max_body bytes of a body that can never
     * fit (on_write still guards chunked and decompressed bodies). */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x.max_body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : 0L);
    connect_ms = req->connect_timeout_ms;
    if (connect_ms <= 0)
        connect_ms = (req->timeout_ms > 0 && req->timeout_ms < DEFAULT_CONNECT_MS)
                         ? req->timeout_ms : DEFAULT_CONNECT_MS;
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (req->body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        }
    }

    /* Caller headers first, in order (repeats are kept: curl sends each
     * list entry as its own line). */
    if (req->headers)
        for (size_t i = 0; req->headers[i]; i++)
            if (append_header(&headers, req->headers[i]) != 0)
                goto oom;
    /* No Accept header (Go sends none) and no Expect: 100-continue round
     * trip on large POST bodies, unless the caller set them. */
    if (!has_header(req->headers, "Accept") &&
        append_header(&headers, "Accept:") != 0)
        goto oom;
    if (!has_header(req->headers, "Expect") &&
        append_header(&headers, "Expect:") != 0)
        goto oom;
    if (req->bearer_token && *req->bearer_token &&
        !has_header(req->headers, "Authorization")) {
        size_t n = strlen(req->bearer_token) + sizeof "Authorization: Bearer ";
        auth = malloc(n);
        if (!auth)
            goto oom;
        snprintf(auth, n, "Authorization: Bearer %s", req->bearer_token);
        if (append_header(&headers, auth) != 0)
            goto oom;
    }
    /* A bearer token beats basic credentials; callers pass one or the
     * other (prom.c decides the precedence). */
    if (req->basic_user && !has_header(req->headers, "Authorization") &&
        !auth) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, req->basic_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD,
                         req->basic_pass ? req->basic_pass : "");
    }

    if (req->tls) {
        set_tls(h, req->tls);
        if (req->tls->server_name && *req->tls->server_name &&
            apply_server_name(h, req->url, req->tls->server_name, &url2,
                              &connect_to, &headers, err, errlen) != 0)
            goto done;
    }
    curl_easy_setopt(h, CURLOPT_URL, url2 ? url2 : req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    cc = perform(c, &x);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &resp->total_seconds);
    {
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
    }
    if (cc != CURLE_OK) {
        if (x.too_big || cc == CURLE_FILESIZE_EXCEEDED)
            snprintf(err, errlen, "response body exceeds %zu bytes",
                     x.max_body);
        else if (x.consumer_abort)
            snprintf(err, errlen, "aborted");
        else if (x.cancelled)
            snprintf(err, errlen, "cancelled");
        else
            snprintf(err, errlen, "%s", c->errbuf[0] ? c->errbuf
                                                     : curl_easy_strerror(cc));
        goto done;
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    /* The handle keeps pointers to these until the next reset; clear them so
     * nothing dangles between calls. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
    curl_free(url2);
    free(auth);
    return rc;
}

int
http_query_escape(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int rc;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
            ch == '~') {
            rc = buf_addc(out, (char)ch);
        } else if (ch == ' ') {
            rc = buf_addc(out, '+');
        } else {
            char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
            rc = buf_add(out, e, 3);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}
