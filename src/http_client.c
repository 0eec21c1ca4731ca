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
    CURL *pool[HTTP_MANY_MAX];  /* extra easy handles for http_client_do_many,
                                 * created on first use, kept (TLS session
                                 * cache) until http_client_free */
};

#define CANCEL_POLL_MS 100

/* Per-call state shared with the libcurl callbacks (lives on the stack of
 * http_client_do, or in http_client_do_many's array; borrowed by curl for
 * the duration of the transfer), and what the handle points to until the
 * call ends (headers, URL, credentials, error buffer). */
struct xfer {
    const struct http_req *req;
    struct http_resp *resp;
    size_t max_body;
    size_t received;
    int too_big;        /* body exceeded max_body */
    int consumer_abort; /* on_data returned non-zero */
    int cancelled;      /* req->cancelled returned non-zero */
    CURL *h;            /* the easy handle running it */
    int running;        /* http_client_do_many: on the multi handle now */
    struct curl_slist *headers, *connect_to;
    char *url2;         /* curl memory (tls server-name rewrite) */
    char *auth;
    char errbuf[CURL_ERROR_SIZE];
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
    for (size_t i = 0; i < HTTP_MANY_MAX; i++)
        if (c->pool[i])
            curl_easy_cleanup(c->pool[i]);
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

/* Sets up x->h for one request (every option reset first). Returns 0, or
 * -1 with err (the caller still runs xfer_cleanup). */
static int
xfer_setup(struct xfer *x, const struct http_req *req, struct http_resp *resp,
           char *err, size_t errlen)
{
    CURL *h = x->h;
    const char *method = req->method ? req->method : "GET";
    long connect_ms;

    memset(resp, 0, sizeof *resp);
    x->req = req;
    x->resp = resp;
    x->max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
    buf_init(&resp->body, x->max_body);

    curl_easy_reset(h);
    x->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "promlua-adapter/" ADAPTER_VERSION);
    /* Go's transport asks for gzip only and decompresses transparently. */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)x);
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
            if (append_header(&x->headers, req->headers[i]) != 0)
                goto oom;
    /* No Accept header (Go sends none) and no Expect: 100-continue round
     * trip on large POST bodies, unless the caller set them. */
    if (!has_header(req->headers, "Accept") &&
        append_header(&x->headers, "Accept:") != 0)
        goto oom;
    if (!has_header(req->headers, "Expect") &&
        append_header(&x->headers, "Expect:") != 0)
        goto oom;
    if (req->bearer_token && *req->bearer_token &&
        !has_header(req->headers, "Authorization")) {
        size_t n = strlen(req->bearer_token) + sizeof "Authorization: Bearer ";
        x->auth = malloc(n);
        if (!x->auth)
            goto oom;
        snprintf(x->auth, n, "Authorization: Bearer %s", req->bearer_token);
        if (append_header(&x->headers, x->auth) != 0)
            goto oom;
    }
    /* A bearer token beats basic credentials; callers pass one or the
     * other (prom.c decides the precedence). */
    if (req->basic_user && !has_header(req->headers, "Authorization") &&
        !x->auth) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, req->basic_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD,
                         req->basic_pass ? req->basic_pass : "");
    }

    if (req->tls) {
        set_tls(h, req->tls);
        if (req->tls->server_name && *req->tls->server_name &&
            apply_server_name(h, req->url, req->tls->server_name, &x->url2,
                              &x->connect_to, &x->headers, err, errlen) != 0)
            return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, x->url2 ? x->url2 : req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* The outcome of a finished transfer (cc: its curl result): fills the
 * status, time and Content-Type; 0, or -1 with err. */
static int
xfer_result(struct xfer *x, CURLcode cc, char *err, size_t errlen)
{
    CURL *h = x->h;
    struct http_resp *resp = x->resp;
    char *ct = NULL;

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &resp->total_seconds);
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
    if (cc == CURLE_OK)
        return 0;
    if (x->too_big)
        snprintf(err, errlen, "response body exceeds %zu bytes", x->max_body);
    else if (x->consumer_abort)
        snprintf(err, errlen, "aborted");
    else if (x->cancelled)
        snprintf(err, errlen, "cancelled");
    else
        snprintf(err, errlen, "%s", x->errbuf[0] ? x->errbuf
                                                 : curl_easy_strerror(cc));
    return -1;
}

/* Releases what the handle pointed to for this call. */
static void
xfer_cleanup(struct xfer *x)
{
    /* The handle keeps pointers to these until the next reset; clear them so
     * nothing dangles between calls. */
    if (x->h) {
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(x->h, CURLOPT_CONNECT_TO, NULL);
        curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, NULL);
    }
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->connect_to);
    curl_free(x->url2);
    free(x->auth);
    x->headers = x->connect_to = NULL;
    x->url2 = NULL;
    x->auth = NULL;
}

int
http_client_do(struct http_client *c, const struct http_req *req,
               struct http_resp *resp, char *err, size_t errlen)
{
    struct xfer x;
    int rc = -1;

    memset(&x, 0, sizeof x);
    x.h = c->h;
    if (xfer_setup(&x, req, resp, err, errlen) == 0)
        rc = xfer_result(&x, perform(c, &x), err, errlen);
    xfer_cleanup(&x);
    return rc;
}

/* Starts call on handle h (a setup failure ends it at once). Returns 1
 * when the transfer runs on c->m, 0 when it has ended already. */
static int
many_start(struct http_client *c, CURL *h, struct http_call *call,
           struct xfer *x)
{
    memset(x, 0, sizeof *x);
    x->h = h;
    call->rc = -1;
    call->err[0] = '\0';
    if (xfer_setup(x, call->req, &call->resp, call->err, sizeof call->err) != 0)
        goto ended;
    if (curl_multi_add_handle(c->m, h) != CURLM_OK) {
        snprintf(call->err, sizeof call->err, "curl: cannot start the transfer");
        goto ended;
    }
    x->running = 1;
    return 1;
ended:
    xfer_cleanup(x);
    return 0;
}

/* Ends a running transfer with curl result cc. */
static void
many_end(struct http_client *c, struct http_call *call, struct xfer *x,
         CURLcode cc)
{
    curl_multi_remove_handle(c->m, x->h);
    call->rc = xfer_result(x, cc, call->err, sizeof call->err);
    xfer_cleanup(x);
    x->running = 0;
}

/* Starts the next waiting calls on handle h until one runs; *next moves
 * past every call started. Returns 1 if one is running. */
static int
many_next(struct http_client *c, CURL *h, struct http_call *calls,
          struct xfer *xs, size_t n, size_t *next)
{
    while (*next < n) {
        size_t i = (*next)++;
        if (many_start(c, h, &calls[i], &xs[i]))
            return 1;
    }
    return 0;
}

int
http_client_do_many(struct http_client *c, struct http_call *calls, size_t n,
                    size_t max_parallel)
{
    struct xfer *xs = NULL;
    size_t next = 0, running = 0, nh;
    CURLMsg *msg;
    int left, still = 0, failed = 0;

    if (n == 0)
        return 0;
    if (max_parallel == 0 || max_parallel > HTTP_MANY_MAX)
        max_parallel = HTTP_MANY_MAX;
    nh = n < max_parallel ? n : max_parallel;
    xs = calloc(n, sizeof *xs);
    for (size_t k = 0; xs && k < nh; k++)
        if (!c->pool[k] && !(c->pool[k] = curl_easy_init()))
            nh = k;             /* run on the handles there are */
    for (size_t k = 0; xs && k < nh; k++)
        running += (size_t)many_next(c, c->pool[k], calls, xs, n, &next);
    while (running > 0) {
        if (curl_multi_perform(c->m, &still) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(c->m, &left)) != NULL) {
            struct xfer *x = NULL;
            CURL *h = msg->easy_handle;
            CURLcode cc = msg->data.result;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
            many_end(c, &calls[x - xs], x, cc);   /* msg is stale now */
            running--;
            running += (size_t)many_next(c, h, calls, xs, n, &next);
        }
        /* cancellation, polled as often as http_client_do polls it */
        for (size_t i = 0; i < next; i++) {
            struct xfer *x = &xs[i];
            if (x->running && x->req->cancelled &&
                x->req->cancelled(x->req->ctx)) {
                CURL *h = x->h;
                x->cancelled = 1;
                many_end(c, &calls[i], x, CURLE_ABORTED_BY_CALLBACK);
                running--;
                running += (size_t)many_next(c, h, calls, xs, n, &next);
            }
        }
        if (running == 0)
            break;
        if (curl_multi_poll(c->m, NULL, 0, CANCEL_POLL_MS, NULL) != CURLM_OK)
            break;
    }
    /* after a multi failure (or no memory): end what runs, fail the rest */
    for (size_t i = 0; i < n; i++) {
        if (xs && xs[i].running) {
            many_end(c, &calls[i], &xs[i], CURLE_FAILED_INIT);
        } else if (!xs || i >= next) {
            memset(&calls[i].resp, 0, sizeof calls[i].resp);
            buf_init(&calls[i].resp.body, 0);
            calls[i].rc = -1;
            snprintf(calls[i].err, sizeof calls[i].err, "%s",
                     xs ? "curl multi failure" : "out of memory");
        }
        if (calls[i].rc != 0)
            failed++;
    }
    free(xs);
    return failed;
}

int
http_query_escape(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;

    while (i < len) {
        /* a run of bytes that stay as they are, copied in one call */
        size_t j = i;
        while (j < len) {
            unsigned char ch = (unsigned char)s[j];
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
                  ch == '.' || ch == '~'))
                break;
            j++;
        }
        if (j > i && buf_add(out, s + i, j - i) != 0)
            return -1;
        if (j == len)
            break;
        unsigned char ch = (unsigned char)s[j];
        int rc;
        if (ch == ' ') {
            rc = buf_addc(out, '+');
        } else {
            char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
            rc = buf_add(out, e, 3);
        }
        if (rc != 0)
            return -1;
        i = j + 1;
    }
    return 0;
}
