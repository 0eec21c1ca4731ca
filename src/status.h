/* status.h: Kubernetes metav1.Status error bodies (spec-server 3.1-3.2).
 * Provides status_write (any Status: Go's key order, empty members omitted,
 * details optional) and one function per catalogue entry so handlers never
 * spell the messages themselves. Uses jsonw.h and server.h (only the
 * response struct). Must never fail silently: if the JSON cannot be built
 * (out of memory) the response still carries the status code and a
 * plain-text message. Thread-safe (no state). */
#ifndef ADAPTER_STATUS_H
#define ADAPTER_STATUS_H
#include <stdbool.h>
#include <stddef.h>
#include "server.h"

struct status_cause {
    const char *reason;         /* NULL/"" omitted */
    const char *message;
    const char *field;
};

/* Borrowed strings; NULL or "" members are omitted, as Go's omitempty. */
struct status_details {
    const char *name;
    const char *group;
    const char *kind;
    const char *uid;
    const struct status_cause *causes;
    size_t ncauses;
    int retry_after_seconds;    /* > 0 also sets the Retry-After header */
};

/* Writes {"kind":"Status",...,"code":code} into resp (status = code,
 * application/json, compact + "\n"). reason NULL/"" is omitted (Go's
 * "unknown" errors); details NULL omits "details", an all-empty struct
 * writes "details":{}. */
void status_write(struct server_response *resp, int code, const char *reason,
                  const char *message, const struct status_details *details);
/* Same, indented by two spaces without the newline when pretty is set. */
void status_write_opt(struct server_response *resp, int code,
                      const char *reason, const char *message,
                      const struct status_details *details, bool pretty);

/* -- Catalogue (spec-server 3.2) -- */
/* 404 NotFound "the server could not find the metric <m> for <gr>" plus
 * " <name>" when name is non-NULL; no details. */
void status_metric_not_found(struct server_response *resp, const char *metric,
                             const char *group_resource, const char *name);
/* 404 NotFound with a caller-built message and details (resource-metrics
 * cases: `pods "x" not found` {name,kind}); details NULL = omitted. */
void status_not_found(struct server_response *resp, const char *message,
                      const struct status_details *details);
/* 500 InternalError "Internal error occurred: <cause>",
 * details {"causes":[{"message":"<cause>"}]}. */
void status_internal_error(struct server_response *resp, const char *cause);
/* 500 with no reason and the raw message (Go's untyped errors). */
void status_unknown_error(struct server_response *resp, const char *message);
void status_bad_request(struct server_response *resp, const char *message);
/* 404 "the server could not find the requested resource", details {}. */
void status_route_not_found(struct server_response *resp);
/* 405 "the server does not allow this method on the requested resource",
 * details {}. */
void status_method_not_allowed(struct server_response *resp);
/* 406 NotAcceptable listing application/json; indented JSON, no newline
 * (Go writes it with WriteRawJSON). */
void status_not_acceptable(struct server_response *resp);
/* 504 Timeout "Timeout: request did not complete within the allotted
 * timeout", details {}. */
void status_timeout(struct server_response *resp);
/* 401 Unauthorized "Unauthorized". */
void status_unauthorized(struct server_response *resp);
/* 429 text/plain "Too many requests, please try again later.\n" with
 * Retry-After: 1 (not a Status, as Go). */
void status_too_many_requests(struct server_response *resp);
/* 503 ServiceUnavailable with retryAfterSeconds (and Retry-After). */
void status_unavailable(struct server_response *resp, const char *message,
                        int retry_after_seconds);
#endif
