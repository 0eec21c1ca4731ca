-- spec/ffi_prom.lua: the FFI declarations of src/prom.h and
-- src/http_client.h that the Prometheus client specs share. ffi.cdef is
-- process-global in a busted run and refuses redefinitions, so they are
-- declared once here (require caches the module). Keep them in step with
-- the headers.
local ffi = require "ffi"

ffi.cdef [[
struct http_client;
struct http_client *http_client_new(char *err, size_t errlen);
void http_client_free(struct http_client *c);
int http_client_global_init(void);

struct prom_options {
    const char *url;
    const char *verb;
    const char *const *headers;
    size_t nheaders;
    const char *token_file;
    const char *auth_token;
    const char *auth_token_file;
    const char *auth_basic_user;
    const char *auth_basic_pass;
    const void *tls;
    long timeout_ms;
    size_t max_get_length;
    long query_cache_ttl_ms;
    size_t query_cache_max;
};
struct prom_client;
struct prom_shape {
    const char *name;
    const char **labels;
    size_t nlabels;
    size_t count;
};
struct prom_shapes {
    size_t n;
    struct prom_shape *v;
    size_t total_series;
    void *arena;
};
struct prom_sample {
    size_t nlabels;
    const char **keys;
    const char **values;
    double value;
    double ts;
};
struct prom_result {
    int type;
    size_t n;
    struct prom_sample *samples;
    void *arena;
    double time;
    int refs;
};
struct prom_wire {
    char method[8];
    char *url;
    char *body;
    size_t body_len;
};
struct prom_stats {
    unsigned long long queries, requests, coalesced, cache_hits;
};
struct prom_client *prom_client_new(const struct prom_options *opts, char *err, size_t errlen);
void prom_client_free(struct prom_client *p);
int prom_series(struct prom_client *p, struct http_client *hc, const char *match,
                double start, struct prom_shapes **out, char *err, size_t errlen);
void prom_shapes_free(struct prom_shapes *s);
int prom_query(struct prom_client *p, struct http_client *hc, const char *promql,
               double time, double timeout_s, struct prom_result **out,
               char *err, size_t errlen);
void prom_result_free(struct prom_result *r);
void prom_stats(struct prom_client *p, struct prom_stats *out);
int prom_format_time(double t, char *out, size_t outlen);
int prom_format_duration(double seconds, char *out, size_t outlen);
int prom_build_request(const struct prom_client *p, const char *endpoint,
                       const char *const *kv, struct prom_wire *out,
                       char *err, size_t errlen);
void prom_wire_free(struct prom_wire *w);
void prom_canonical_header(const char *name, size_t len, char *out, size_t outlen);
]]
ffi.cdef [[
int prom_query_many(struct prom_client *p, struct http_client *hc, size_t n,
                    const char *const *promqls, double time, double timeout_s,
                    struct prom_result **outs, char *errs, size_t errlen);
]]

return true
