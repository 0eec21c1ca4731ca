/* status.c: Status bodies (see status.h). Key order follows Go's
 * metav1.Status field order: kind, apiVersion, metadata, status, message,
 * reason, details, code; inside details: name, group, kind, uid, causes,
 * retryAfterSeconds; inside a cause: reason, message, field. */
#include "status.h"

#include <stdio.h>
#include <string.h>
#include "jsonw.h"
#include "log.h"

static bool
nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static void
kv_opt(struct jsonw *w, const char *key, const char *val)
{
    if (nonempty(val))
        jsonw_kv_string(w, key, val);
}

/* Builds the document; errors are sticky in the writer and reported by
 * jsonw_finish, so the individual calls are not checked. */
static void
build(struct jsonw *w, int code, const char *reason, const char *message,
      const struct status_details *d)
{
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "Status");
    jsonw_kv_string(w, "apiVersion", "v1");
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_map_close(w);
    jsonw_kv_string(w, "status", "Failure");
    kv_opt(w, "message", message);
    kv_opt(w, "reason", reason);
    if (d != NULL) {
        jsonw_key(w, "details");
        jsonw_map_open(w);
        kv_opt(w, "name", d->name);
        kv_opt(w, "group", d->group);
        kv_opt(w, "kind", d->kind);
        kv_opt(w, "uid", d->uid);
        if (d->ncauses > 0) {
            jsonw_key(w, "causes");
            jsonw_array_open(w);
            for (size_t i = 0; i < d->ncauses; i++) {
                jsonw_map_open(w);
                kv_opt(w, "reason", d->causes[i].reason);
                kv_opt(w, "message", d->causes[i].message);
                kv_opt(w, "field", d->causes[i].field);
                jsonw_map_close(w);
            }
            jsonw_array_close(w);
        }
        if (d->retry_after_seconds > 0)
            jsonw_kv_int(w, "retryAfterSeconds", d->retry_after_seconds);
        jsonw_map_close(w);
    }
    jsonw_kv_int(w, "code", code);
    jsonw_map_close(w);
}

void
status_write_opt(struct server_response *resp, int code, const char *reason,
                 const char *message, const struct status_details *details,
                 bool pretty)
{
    struct jsonw *w = jsonw_new(0);
    char err[128];

    resp->status = code;
    buf_reset(&resp->body);
    if (details != NULL && details->retry_after_seconds > 0) {
        char n[16];

        snprintf(n, sizeof n, "%d", details->retry_after_seconds);
        server_response_header(resp, "Retry-After", n);
    }
    if (w != NULL) {
        build(w, code, reason, message, details);
        if (jsonw_finish(w, &resp->body, pretty, err, sizeof err) == 0) {
            resp->content_type = "application/json";
            jsonw_free(w);
            return;
        }
        LOGE("status body for %d: %s", code, err);
        jsonw_free(w);
    }
    /* Last resort: the code still reaches the client. */
    buf_reset(&resp->body);
    resp->content_type = "text/plain; charset=utf-8";
    buf_adds(&resp->body, message ? message : "");
}

void
status_write(struct server_response *resp, int code, const char *reason,
             const char *message, const struct status_details *details)
{
    status_write_opt(resp, code, reason, message, details, false);
}

void
status_metric_not_found(struct server_response *resp, const char *metric,
                        const char *group_resource, const char *name)
{
    struct buf m;

    buf_init(&m, 64 * 1024);
    if (buf_addf(&m, "the server could not find the metric %s for %s",
                 metric, group_resource) < 0 ||
        (name != NULL && buf_addf(&m, " %s", name) < 0)) {
        status_write(resp, 404, "NotFound", "the server could not find the "
                     "requested resource", NULL);
        return;
    }
    status_write(resp, 404, "NotFound", m.data, NULL);
    buf_free(&m);
}

void
status_not_found(struct server_response *resp, const char *message,
                 const struct status_details *details)
{
    status_write(resp, 404, "NotFound", message, details);
}

void
status_internal_error(struct server_response *resp, const char *cause)
{
    struct status_cause c = { .message = cause };
    struct status_details d = { .causes = &c, .ncauses = 1 };
    struct buf m;

    buf_init(&m, 64 * 1024);
    if (buf_addf(&m, "Internal error occurred: %s", cause) < 0) {
        status_write(resp, 500, "InternalError", "Internal error occurred",
                     NULL);
        return;
    }
    status_write(resp, 500, "InternalError", m.data, &d);
    buf_free(&m);
}

void
status_unknown_error(struct server_response *resp, const char *message)
{
    status_write(resp, 500, NULL, message, NULL);
}

void
status_bad_request(struct server_response *resp, const char *message)
{
    status_write(resp, 400, "BadRequest", message, NULL);
}

void
status_route_not_found(struct server_response *resp)
{
    struct status_details d = { 0 };

    status_write(resp, 404, "NotFound",
                 "the server could not find the requested resource", &d);
}

void
status_method_not_allowed(struct server_response *resp)
{
    struct status_details d = { 0 };

    status_write(resp, 405, "MethodNotAllowed",
                 "the server does not allow this method on the requested "
                 "resource", &d);
}

void
status_not_acceptable(struct server_response *resp)
{
    status_write_opt(resp, 406, "NotAcceptable",
                     "only the following media types are accepted: "
                     "application/json", NULL, true);
}

void
status_timeout(struct server_response *resp)
{
    struct status_details d = { 0 };

    status_write(resp, 504, "Timeout", "Timeout: request did not complete "
                 "within the allotted timeout", &d);
}

void
status_unauthorized(struct server_response *resp)
{
    status_write(resp, 401, "Unauthorized", "Unauthorized", NULL);
}

void
status_too_many_requests(struct server_response *resp)
{
    server_response_text(resp, 429, "text/plain; charset=utf-8",
                         "Too many requests, please try again later.\n");
    server_response_header(resp, "Retry-After", "1");
}

void
status_unavailable(struct server_response *resp, const char *message,
                   int retry_after_seconds)
{
    struct status_details d = { .retry_after_seconds = retry_after_seconds };

    status_write(resp, 503, "ServiceUnavailable", message, &d);
}
