/* engine.c: C face of one Lua rules engine (see engine.h).
 * Uses lx.h (state, protected calls), yaml.h (node tree), cache.h and
 * prom.h (shapes), luajit.h (the JIT is off while an engine is built),
 * pthreads (the registry of validated inputs, below). The Lua side is
 * lua/adapter/engine.lua; the contract is in docs/architecture.md. Every
 * call into Lua goes through lx_pcall, so a Lua error becomes an error
 * return here, never a longjmp through C.
 * Hooks: engine_new hands the --lua-script texts to engine.new with an io
 * table whose query is l_prom_query (this engine's prom/http clients, set
 * by the owning thread with engine_set_io).
 * Deferred engines: inputs that already built once in this process are
 * copied and built on first use (see "Deferred engines" below); the
 * remembered inputs are this file's only process-wide state. */
#include "engine.h"
#include "log.h"
#include "lx.h"
#include "metrics.h"
#include "prom.h"
#include "yaml.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct engine {
    lua_State *L;   /* NULL while deferred (src set) or after a failed
                     * deferred build (failed set) */
    int ref;        /* registry ref of the Lua engine object */
    char *src;      /* owned: a deferred engine's inputs, flattened
                     * (flatten()); freed once built */
    char *failed;   /* owned: why the deferred build failed; NULL if it
                     * did not (or the message could not be kept) */
    struct prom_client *prom;       /* borrowed (engine_set_io) */
    struct http_client *http;       /* borrowed, the owning thread's */
    long long io_deadline_ms;       /* monotonic; prom.query budget of the
                                     * running compute call, 0 = none */
};

/* Registry key of the metatable of prom.query's result box. */
static char result_box_key;

static long long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- Helpers ------------------------------------------------------------ */

/* Pushes eng[method] and eng: stack +2. */
static void
push_method(struct engine *e, const char *method)
{
    lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->ref);
    lua_getfield(e->L, -1, method);
    lua_insert(e->L, -2);
}

static const char *
field_str(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);   /* the string stays alive: it is held by the table */
    return s;
}

static lua_Integer
field_int(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static bool
field_bool(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static void
set_str(lua_State *L, const char *k, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* Appends "FILE:LINE: path: msg" lines from the array at idx to b. */
static void
format_problems(lua_State *L, int idx, const char *file, struct buf *b,
                bool warn)
{
    size_t n = lua_objlen(L, idx);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        int t = lua_gettop(L);
        const char *path = field_str(L, t, "path");
        const char *msg = field_str(L, t, "msg");
        const char *script = field_str(L, t, "file");
        lua_Integer line = field_int(L, t, "line");
        char one[2048];
        if (script && line > 0)     /* a --lua-script that did not load */
            snprintf(one, sizeof one, "%s:%ld: %s", script, (long)line,
                     msg ? msg : "invalid");
        else if (script)
            snprintf(one, sizeof one, "%s: %s", script, msg ? msg : "invalid");
        else if (path && *path)
            snprintf(one, sizeof one, "%s:%ld: %s: %s", file, (long)line, path,
                     msg ? msg : "invalid");
        else
            snprintf(one, sizeof one, "%s:%ld: %s", file, (long)line,
                     msg ? msg : "invalid");
        if (warn)
            LOGW("%s", one);
        else if (b) {
            if (b->len)
                buf_addc(b, '\n');
            buf_adds(b, one);
        }
        lua_pop(L, 1);
    }
}

/* -- prom.query for compute hooks ------------------------------------- */

/* __gc of the box holding a prom_result while it is turned into Lua
 * tables: if pushing raises (out of memory), the collector frees it. */
static int
l_result_box_gc(lua_State *L)
{
    struct prom_result **box = lua_touserdata(L, 1);
    if (box && *box) {
        prom_result_free(*box);
        *box = NULL;
    }
    return 0;
}

/* Pushes nil, msg, kind: a failed io.query (kind: "fetch", "type" or
 * "budget", which engine.lua maps to the built-in path's answer). */
static int
query_failed(lua_State *L, const char *msg, const char *kind)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, kind);
    return 3;
}

/* io.query(promql[, want]) -> { {labels = {k = v} | nil, value = n,
 * timestamp = s}, ...} | nil, message, kind. Upvalue 1: the struct engine
 * (lightuserdata). A scalar answer is one sample without labels (so that
 * it is served with metricLabels null, as the built-in path serves it);
 * want "vector" fails on any other result type. Blocks in HTTP for at most
 * what is left of the compute call's budget.
 * stack: promql [want] -> samples | nil, msg, kind */
static int
l_prom_query(lua_State *L)
{
    struct engine *e = lua_touserdata(L, lua_upvalueindex(1));
    const char *q = luaL_checkstring(L, 1);
    const char *want = luaL_optstring(L, 2, NULL);
    bool vector_only = want && strcmp(want, "vector") == 0;
    char err[1024];
    if (!e->prom || !e->http) {
        lua_pushnil(L);
        lua_pushstring(L, "prom.query: no Prometheus client on this thread");
        return 2;
    }
    long long left = e->io_deadline_ms ? e->io_deadline_ms - mono_ms() : 30000;
    if (left <= 0)
        return query_failed(L, "prom.query: the request's time budget is spent",
                            "budget");
    struct prom_result **box = lua_newuserdata(L, sizeof *box);
    *box = NULL;
    lua_pushlightuserdata(L, &result_box_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);                    /* promql [want] box */
    if (prom_query(e->prom, e->http, q, prom_now(), (double)left / 1000.0,
                   box, err, sizeof err) != 0) {
        LOGE("hook prom.query: unable to fetch metrics from prometheus: %s "
             "(query %s)", err, q);
        lua_pushfstring(L, "unable to fetch metrics: %s", err);
        return query_failed(L, lua_tostring(L, -1), "fetch");
    }
    struct prom_result *r = *box;
    if (r->type != PROM_VECTOR && (vector_only || r->type != PROM_SCALAR)) {
        prom_result_free(r);
        *box = NULL;
        LOGE("hook prom.query: unexpected result type (query %s)", q);
        return query_failed(L, vector_only
                ? "prom.query: the query returned no vector"
                : "prom.query: the query returned a matrix or string, not a "
                  "vector or scalar", "type");
    }
    bool scalar = r->type == PROM_SCALAR;
    lua_createtable(L, (int)r->n, 0);
    for (size_t i = 0; i < r->n; i++) {
        const struct prom_sample *s = &r->samples[i];
        lua_createtable(L, 0, 3);
        if (!scalar) {
            lua_createtable(L, 0, (int)s->nlabels);
            for (size_t k = 0; k < s->nlabels; k++) {
                lua_pushstring(L, s->values[k]);
                lua_setfield(L, -2, s->keys[k]);
            }
            lua_setfield(L, -2, "labels");
        }
        lua_pushnumber(L, s->value);
        lua_setfield(L, -2, "value");
        lua_pushnumber(L, s->ts);
        lua_setfield(L, -2, "timestamp");
        lua_rawseti(L, -2, (int)i + 1);
    }
    prom_result_free(r);
    *box = NULL;
    return 1;
}

/* io.hook_failure(name): counts one failed hook call in
 * promlua_adapter_hook_failures_total{hook=name}. stack: name -> */
static int
l_hook_failure(lua_State *L)
{
    metrics_hook_failure(luaL_checkstring(L, 1));
    return 0;
}

/* lua_cpcall body: registers the result box metatable.
 * stack: -> */
static int
l_setup_io(lua_State *L)
{
    lua_pushlightuserdata(L, &result_box_key);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_result_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

void
engine_set_io(struct engine *e, struct prom_client *prom,
              struct http_client *http)
{
    if (!e)
        return;
    e->prom = prom;
    e->http = http;
}

/* Pushes engine.new's opts: { file=, scripts = {{path=, text=}...},
 * hook_timeout_ms=, io = { query = l_prom_query, hook_failure =
 * l_hook_failure } }. stack: -> opts */
static void
push_new_opts(struct engine *e, const char *config_file,
              const struct engine_hooks *h)
{
    lua_State *L = e->L;
    lua_newtable(L);
    set_str(L, "file", config_file);
    if (h && h->n) {
        lua_createtable(L, (int)h->n, 0);
        for (size_t i = 0; i < h->n; i++) {
            lua_createtable(L, 0, 2);
            set_str(L, "path", h->paths[i]);
            if (h->texts)
                set_str(L, "text", h->texts[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, "scripts");
    }
    lua_pushinteger(L, h && h->timeout_ms > 0 ? h->timeout_ms : 1000);
    lua_setfield(L, -2, "hook_timeout_ms");
    lua_createtable(L, 0, 1);
    lua_pushlightuserdata(L, e);
    lua_pushcclosure(L, l_prom_query, 1);
    lua_setfield(L, -2, "query");
    lua_pushcfunction(L, l_hook_failure);
    lua_setfield(L, -2, "hook_failure");
    lua_setfield(L, -2, "io");
}

/* -- Lifecycle ---------------------------------------------------------- */

/* Builds e's Lua state and engine object from the inputs. On failure e->L
 * is NULL again and err says why.
 * Memory: loading the modules and compiling the config leave about as much
 * garbage as live data, and pages LuaJIT's allocator once touched stay
 * resident for the state's life. So the build runs with the collector
 * working as it allocates (pause 100: a new cycle as soon as one ends) and
 * ends with a full collection, then the default pause applies; and with
 * the JIT compiler off, since load-time code runs once (it would only
 * leave machine code and trace buffers behind). Hook scripts cannot reach
 * the jit module (sandbox.lua), so switching it back on overrides no one. */
static int
build(struct engine *e, const char *config_text, size_t len,
      const char *config_file, const char *lua_dir,
      const struct engine_hooks *hooks, bool log_warnings, char *err,
      size_t errlen)
{
    struct buf msgs;
    buf_init(&msgs, 1 << 20);
    e->ref = LUA_NOREF;
    e->L = lx_new(lua_dir, err, errlen);
    if (!e->L)
        goto fail;
    lua_State *L = e->L;
    int pause = lua_gc(L, LUA_GCSETPAUSE, 100);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    if (lua_cpcall(L, l_setup_io, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    lua_getglobal(L, "require");
    lua_pushstring(L, "adapter.engine");
    if (lx_pcall(L, 1, 1, err, errlen) != 0)
        goto fail;
    lua_getfield(L, -1, "new");                 /* module, new */
    if (yaml_push_tree(L, config_text, len, config_file, err, errlen) != 0)
        goto fail;
    push_new_opts(e, config_file, hooks);
    if (lx_pcall(L, 2, 3, err, errlen) != 0)    /* module, eng, errs, warns */
        goto fail;
    if (log_warnings && lua_istable(L, -1))
        format_problems(L, lua_gettop(L), config_file, NULL, true);
    if (lua_isnil(L, -3)) {
        if (lua_istable(L, -2))
            format_problems(L, lua_gettop(L) - 1, config_file, &msgs, false);
        snprintf(err, errlen, "%s", msgs.len ? msgs.data : "invalid config");
        goto fail;
    }
    lua_pop(L, 2);
    e->ref = luaL_ref(L, LUA_REGISTRYINDEX);    /* pops eng */
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSETPAUSE, pause);
    lua_gc(L, LUA_GCCOLLECT, 0);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    buf_free(&msgs);
    return 0;
fail:
    buf_free(&msgs);
    lx_free(e->L);
    e->L = NULL;
    e->ref = LUA_NOREF;
    return -1;
}

/* -- Deferred engines -----------------------------------------------------
 * Inputs that already built an engine in this process (main.c's start-up
 * engine, reload.c's check of a new config) cannot fail to build again for
 * config reasons. engine_new hands such inputs (when it is not asked to log
 * warnings) back as a deferred engine: it keeps a copy of them and builds
 * the Lua state in the first call that needs it, on the thread making that
 * call. A request worker that only answers /readyz, /livez or /metrics
 * (kubelet probes land on every worker in turn) then never pays for a Lua
 * engine, about 0.6 MB each. */

/* Largest flattened input kept (config text plus hook scripts); bigger
 * inputs are always built at once. */
#define SRC_MAX ((size_t)64 << 20)
/* Distinct validated inputs remembered: the current config, plus a few
 * generations while a reload is being taken up. */
#define VALIDATED_MAX 4

/* Flattened inputs of a successful build, most recent first; owned here for
 * the life of the process (at most VALIDATED_MAX of them). */
static struct {
    char *data;
    size_t len;
} validated[VALIDATED_MAX];
static pthread_mutex_t validated_mu = PTHREAD_MUTEX_INITIALIZER;

/* One field of a flattened input: its length (SIZE_MAX for NULL), then
 * the bytes and a NUL, so it can be used in place. */
static int
put_field(struct buf *b, const char *s, size_t n)
{
    size_t hdr = s ? n : SIZE_MAX;
    if (buf_add(b, &hdr, sizeof hdr) < 0)
        return -1;
    if (!s)
        return 0;
    if (buf_add(b, s, n) < 0)
        return -1;
    return buf_addc(b, '\0');
}

/* The inputs of engine_new as one byte string (the key of validated[] and
 * what a deferred engine keeps): hook timeout, hook count, config text,
 * config file, lua_dir, then each hook's path and text. */
static int
flatten(struct buf *b, const char *text, size_t len, const char *file,
        const char *lua_dir, const struct engine_hooks *h)
{
    long timeout_ms = h && h->timeout_ms > 0 ? h->timeout_ms : 1000;
    size_t n = h ? h->n : 0;
    if (buf_add(b, &timeout_ms, sizeof timeout_ms) < 0 ||
        buf_add(b, &n, sizeof n) < 0 || put_field(b, text, len) < 0 ||
        put_field(b, file, file ? strlen(file) : 0) < 0 ||
        put_field(b, lua_dir, lua_dir ? strlen(lua_dir) : 0) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *path = h->paths[i];
        const char *t = h->texts ? h->texts[i] : NULL;
        if (put_field(b, path, path ? strlen(path) : 0) < 0 ||
            put_field(b, t, t ? strlen(t) : 0) < 0)
            return -1;
    }
    return 0;
}

/* Reads one put_field field at *p (advanced past it). */
static const char *
get_field(const char **p, size_t *n)
{
    size_t hdr;
    memcpy(&hdr, *p, sizeof hdr);
    *p += sizeof hdr;
    if (hdr == SIZE_MAX) {
        *n = 0;
        return NULL;
    }
    const char *s = *p;
    *p += hdr + 1;
    *n = hdr;
    return s;
}

/* validated_mu held. */
static bool
validated_find(const char *data, size_t len)
{
    for (size_t i = 0; i < VALIDATED_MAX; i++)
        if (validated[i].data && validated[i].len == len &&
            memcmp(validated[i].data, data, len) == 0)
            return true;
    return false;
}

static bool
validated_has(const char *data, size_t len)
{
    pthread_mutex_lock(&validated_mu);
    bool found = validated_find(data, len);
    pthread_mutex_unlock(&validated_mu);
    return found;
}

/* Remembers a flattened input that built (takes data); the oldest entry
 * makes room. */
static void
validated_add(char *data, size_t len)
{
    pthread_mutex_lock(&validated_mu);
    if (validated_find(data, len)) {
        pthread_mutex_unlock(&validated_mu);
        free(data);
        return;
    }
    free(validated[VALIDATED_MAX - 1].data);
    memmove(&validated[1], &validated[0],
            (VALIDATED_MAX - 1) * sizeof validated[0]);
    validated[0].data = data;
    validated[0].len = len;
    pthread_mutex_unlock(&validated_mu);
}

/* Builds a deferred engine from its kept inputs. The outcome is final: a
 * failed build (only possible for lack of memory, or a hook script whose
 * loading is not repeatable) is reported by every later call. */
static int
build_deferred(struct engine *e, char *err, size_t errlen)
{
    const char *p = e->src, *text, *file, *lua_dir;
    long timeout_ms;
    size_t n, len, k;

    memcpy(&timeout_ms, p, sizeof timeout_ms);
    p += sizeof timeout_ms;
    memcpy(&n, p, sizeof n);
    p += sizeof n;
    text = get_field(&p, &len);
    file = get_field(&p, &k);
    lua_dir = get_field(&p, &k);
    const char **paths = calloc(n ? n : 1, sizeof *paths);
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    struct engine_hooks h = {
        .paths = paths, .texts = texts, .n = n, .timeout_ms = timeout_ms,
    };
    int rc = -1;
    if (!paths || !texts) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        paths[i] = get_field(&p, &k);
        texts[i] = get_field(&p, &k);
    }
    rc = build(e, text, len, file, lua_dir, &h, false, err, errlen);
done:
    free(paths);
    free(texts);
    free(e->src);
    e->src = NULL;
    if (rc != 0) {
        char msg[4096];
        snprintf(msg, sizeof msg, "building the rules engine: %s", err);
        snprintf(err, errlen, "%s", msg);
        e->failed = strdup(msg);
    }
    return rc;
}

/* Every entry point that runs Lua starts here: 0 when e has its state
 * (building a deferred engine now), else -1 with the reason in err. */
static int
ready(struct engine *e, char *err, size_t errlen)
{
    if (e->L)
        return 0;
    if (e->src)
        return build_deferred(e, err, errlen);
    snprintf(err, errlen, "%s", e->failed ? e->failed
                                          : "building the rules engine failed");
    return -1;
}

struct engine *
engine_new(const char *config_text, size_t len, const char *config_file,
           const char *lua_dir, const struct engine_hooks *hooks,
           bool log_warnings, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->ref = LUA_NOREF;
    /* Hook scripts named by path only are read by the build itself: their
     * files may change, so only inputs given in full can be deferred. */
    struct buf key;
    buf_init(&key, SRC_MAX);
    bool keyed = (!hooks || !hooks->n || hooks->texts) &&
                 flatten(&key, config_text, len, config_file, lua_dir,
                         hooks) == 0;
    if (keyed && !log_warnings && validated_has(key.data, key.len)) {
        e->src = buf_take(&key, NULL);
        if (e->src)
            return e;
        keyed = false;
    }
    if (build(e, config_text, len, config_file, lua_dir, hooks, log_warnings,
              err, errlen) != 0) {
        buf_free(&key);
        engine_free(e);
        return NULL;
    }
    if (keyed) {
        size_t klen = key.len;
        char *k = buf_take(&key, NULL);
        if (k)
            validated_add(k, klen);
    }
    buf_free(&key);
    return e;
}

void
engine_free(struct engine *e)
{
    if (!e)
        return;
    if (e->L)
        lx_free(e->L);
    free(e->src);
    free(e->failed);
    free(e);
}

bool
engine_has(struct engine *e, const char *kind)
{
    char err[4096];
    if (ready(e, err, sizeof err) != 0) {
        LOGE("engine:has(%s): %s", kind, err);
        return false;
    }
    push_method(e, "has");
    lua_pushstring(e->L, kind);
    if (lx_pcall(e->L, 2, 1, err, sizeof err) != 0) {
        LOGE("engine:has(%s): %s", kind, err);
        return false;
    }
    bool r = lua_toboolean(e->L, -1);
    lua_settop(e->L, 0);
    return r;
}

int
engine_rule_count(struct engine *e, const char *kind)
{
    char err[4096];
    if (ready(e, err, sizeof err) != 0) {
        LOGE("engine:rule_count(%s): %s", kind, err);
        return 0;
    }
    push_method(e, "rule_count");
    lua_pushstring(e->L, kind);
    if (lx_pcall(e->L, 2, 1, err, sizeof err) != 0) {
        LOGE("engine:rule_count(%s): %s", kind, err);
        return 0;
    }
    int n = (int)lua_tointeger(e->L, -1);
    lua_settop(e->L, 0);
    return n;
}

void
engine_strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Calls eng:<method>(kind), which returns a list of strings, and copies
 * it into *out (malloc'd, strings too). */
static int
strv_method(struct engine *e, const char *method, const char *kind,
            char ***out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (ready(e, err, errlen) != 0)
        return -1;
    lua_State *L = e->L;
    push_method(e, method);
    lua_pushstring(L, kind);
    if (lx_pcall(L, 2, 1, err, errlen) != 0)
        return -1;
    size_t cnt = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    char **v = calloc(cnt + 1, sizeof *v);
    if (!v)
        goto oom;
    for (size_t i = 0; i < cnt; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        v[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
        if (!v[i]) {
            engine_strv_free(v, i);
            goto oom;
        }
    }
    lua_settop(L, 0);
    *out = v;
    *n = cnt;
    return 0;
oom:
    lua_settop(L, 0);
    snprintf(err, errlen, "out of memory");
    return -1;
}

int
engine_series_queries(struct engine *e, const char *kind, char ***out,
                      size_t *n, char *err, size_t errlen)
{
    return strv_method(e, "series_queries", kind, out, n, err, errlen);
}

int
engine_rule_queries(struct engine *e, const char *kind, char ***out,
                    size_t *n, char *err, size_t errlen)
{
    return strv_method(e, "rule_queries", kind, out, n, err, errlen);
}

int
engine_set_resources(struct engine *e, const struct cache_resource *r,
                     size_t n, char *err, size_t errlen)
{
    if (ready(e, err, errlen) != 0)
        return -1;
    lua_State *L = e->L;
    push_method(e, "set_resources");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 7);
        set_str(L, "group", r[i].group);
        set_str(L, "version", r[i].version);
        set_str(L, "resource", r[i].resource);
        set_str(L, "singular", r[i].singular);
        set_str(L, "kind", r[i].kind);
        lua_pushboolean(L, r[i].namespaced);
        lua_setfield(L, -2, "namespaced");
        lua_pushboolean(L, r[i].preferred);
        lua_setfield(L, -2, "preferred");
        lua_rawseti(L, -2, (int)i + 1);
    }
    /* set_resources returns nothing, or nil/false plus an error message
     * (a list of messages is joined). */
    if (lx_pcall(L, 2, 2, err, errlen) != 0)
        return -1;
    int rc = 0;
    if (!lua_isnoneornil(L, -1)) {
        if (lua_istable(L, -1)) {
            struct buf b;
            buf_init(&b, 1 << 16);
            size_t k = lua_objlen(L, -1);
            for (size_t i = 1; i <= k; i++) {
                lua_rawgeti(L, -1, (int)i);
                const char *m = lua_istable(L, -1)
                    ? field_str(L, lua_gettop(L), "msg") : lua_tostring(L, -1);
                if (m) {
                    if (b.len)
                        buf_adds(&b, "; ");
                    buf_adds(&b, m);
                }
                lua_pop(L, 1);
            }
            snprintf(err, errlen, "%s", b.len ? b.data : "invalid resources");
            buf_free(&b);
        } else {
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                            : "invalid resources");
        }
        rc = -1;
    }
    lua_settop(L, 0);
    return rc;
}

/* -- Discovery ------------------------------------------------------------ */

/* Pushes { [query] = {shapes = {{name=, labels={...}}, ...}} | {error=} }. */
static void
push_results(lua_State *L, char **queries, struct prom_shapes **shapes,
             char **errors, size_t nq)
{
    lua_createtable(L, 0, (int)nq);
    for (size_t i = 0; i < nq; i++) {
        lua_createtable(L, 0, 1);
        if (!shapes[i]) {
            lua_pushstring(L, errors && errors[i] ? errors[i] : "unknown error");
            lua_setfield(L, -2, "error");
        } else {
            const struct prom_shapes *s = shapes[i];
            lua_createtable(L, (int)s->n, 0);
            for (size_t j = 0; j < s->n; j++) {
                const struct prom_shape *sh = &s->v[j];
                lua_createtable(L, 0, 3);
                lua_pushstring(L, sh->name);
                lua_setfield(L, -2, "name");
                lua_createtable(L, (int)sh->nlabels, 0);
                for (size_t k = 0; k < sh->nlabels; k++) {
                    lua_pushstring(L, sh->labels[k]);
                    lua_rawseti(L, -2, (int)k + 1);
                }
                lua_setfield(L, -2, "labels");
                lua_pushnumber(L, (lua_Number)sh->count);
                lua_setfield(L, -2, "count");
                lua_rawseti(L, -2, (int)j + 1);
            }
            lua_setfield(L, -2, "shapes");
        }
        lua_setfield(L, -2, queries[i]);
    }
}

static int
read_entry(lua_State *L, int t, bool custom, struct cache_snap *snap)
{
    if (custom) {
        struct cache_custom c = {
            .metric = (char *)field_str(L, t, "metric"),
            .resource = (char *)field_str(L, t, "resource"),
            .group = (char *)field_str(L, t, "group"),
            .namespaced = field_bool(L, t, "namespaced"),
            .series = (char *)field_str(L, t, "series"),
            .rule = (int)field_int(L, t, "rule"),
            .resource_label = (char *)field_str(L, t, "resource_label"),
            .namespace_label = (char *)field_str(L, t, "namespace_label"),
            .kind = (char *)field_str(L, t, "kind"),
            .version = (char *)field_str(L, t, "version"),
        };
        if (!c.metric || !c.resource || !c.series || !c.resource_label)
            return 0;   /* malformed entry: skipped (engine bug), not fatal */
        return cache_snap_add_custom(snap, &c);
    }
    struct cache_external x = {
        .metric = (char *)field_str(L, t, "metric"),
        .series = (char *)field_str(L, t, "series"),
        .rule = (int)field_int(L, t, "rule"),
    };
    if (!x.metric || !x.series)
        return 0;
    return cache_snap_add_external(snap, &x);
}

int
engine_discover(struct engine *e, const char *kind, char **queries,
                struct prom_shapes **shapes, char **errors, size_t nq,
                struct cache_snap *snap, int **failed, size_t *nfailed,
                char *err, size_t errlen)
{
    bool custom = strcmp(kind, "custom") == 0;
    *failed = NULL;
    *nfailed = 0;
    if (ready(e, err, errlen) != 0)
        return -1;
    lua_State *L = e->L;
    push_method(e, "discover");
    lua_pushstring(L, kind);
    push_results(L, queries, shapes, errors, nq);
    if (lx_pcall(L, 3, 2, err, errlen) != 0)   /* entries, problems */
        return -1;
    int ent = lua_gettop(L) - 1, prob = lua_gettop(L);
    size_t n = lua_istable(L, ent) ? lua_objlen(L, ent) : 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, ent, (int)i);
        int rc = read_entry(L, lua_gettop(L), custom, snap);
        lua_pop(L, 1);
        if (rc < 0) {
            lua_settop(L, 0);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    size_t np = lua_istable(L, prob) ? lua_objlen(L, prob) : 0;
    int *f = np ? calloc(np, sizeof *f) : NULL;
    for (size_t i = 1; i <= np; i++) {
        lua_rawgeti(L, prob, (int)i);
        int t = lua_gettop(L);
        const char *level = field_str(L, t, "level");
        const char *msg = field_str(L, t, "msg");
        int rule = (int)field_int(L, t, "rule");
        bool is_err = level && strcmp(level, "error") == 0;
        if (is_err) {
            LOGE("%s rule %d: %s", kind, rule, msg ? msg : "failed");
            if (f && rule > 0)
                f[(*nfailed)++] = rule;
        } else {
            LOGW("%s rule %d: %s", kind, rule, msg ? msg : "");
        }
        lua_pop(L, 1);
    }
    *failed = f;
    lua_settop(L, 0);
    return 0;
}

/* -- Rendering ------------------------------------------------------------ */

/* After a render call the stack holds (a, b, c): on success a is the
 * query string; on failure a is nil, b the message, c the status. */
static int
render_result(lua_State *L, struct buf *query, struct buf *selector_json,
              int *status, char *msg, size_t msglen)
{
    int rc = 0;
    if (lua_type(L, -3) == LUA_TSTRING) {
        size_t n;
        const char *q = lua_tolstring(L, -3, &n);
        if (buf_add(query, q, n) < 0)
            goto oom;
        if (selector_json && lua_type(L, -2) == LUA_TSTRING) {
            const char *s = lua_tolstring(L, -2, &n);
            if (buf_add(selector_json, s, n) < 0)
                goto oom;
        }
    } else {
        const char *m = lua_tostring(L, -2);
        snprintf(msg, msglen, "%s", m ? m : "unable to fetch metrics");
        *status = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 500;
        rc = -1;
    }
    lua_settop(L, 0);
    return rc;
oom:
    lua_settop(L, 0);
    *status = 500;
    snprintf(msg, msglen, "out of memory");
    return -1;
}

/* stack: -> req */
static void
push_custom_req(lua_State *L, const struct engine_custom_req *r)
{
    const struct cache_custom *c = r->entry;
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, c->rule);
    lua_setfield(L, -2, "rule");
    set_str(L, "series", c->series);
    set_str(L, "metric", c->metric);
    set_str(L, "resource", c->resource);
    set_str(L, "group", c->group);
    set_str(L, "namespace", r->namespace_ ? r->namespace_ : "");
    set_str(L, "metric_selector", r->metric_selector ? r->metric_selector : "");
    set_str(L, "resource_label", c->resource_label);
    set_str(L, "namespace_label", c->namespace_label);
    lua_createtable(L, (int)r->nnames, 0);
    for (size_t i = 0; i < r->nnames; i++) {
        lua_pushstring(L, r->names[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "names");
    set_str(L, "label_selector", r->label_selector ? r->label_selector : "");
}

int
engine_render_custom(struct engine *e, const struct engine_custom_req *r,
                     struct buf *query, struct buf *selector_json,
                     int *status, char *msg, size_t msglen)
{
    if (ready(e, msg, msglen) != 0) {
        LOGE("render_custom: %s", msg);
        *status = 500;
        return -1;
    }
    lua_State *L = e->L;
    push_method(e, "render_custom");
    push_custom_req(L, r);
    if (lx_pcall(L, 2, 3, msg, msglen) != 0) {
        LOGE("render_custom: %s", msg);
        *status = 500;
        return -1;
    }
    return render_result(L, query, selector_json, status, msg, msglen);
}

/* stack: -> req */
static void
push_external_req(lua_State *L, const struct engine_external_req *r)
{
    const struct cache_external *x = r->entry;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, x->rule);
    lua_setfield(L, -2, "rule");
    set_str(L, "series", x->series);
    set_str(L, "metric", x->metric);
    set_str(L, "namespace", r->namespace_ ? r->namespace_ : "");
    set_str(L, "selector", r->selector ? r->selector : "");
}

int
engine_render_external(struct engine *e, const struct engine_external_req *r,
                       struct buf *query, int *status, char *msg,
                       size_t msglen)
{
    if (ready(e, msg, msglen) != 0) {
        LOGE("render_external: %s", msg);
        *status = 500;
        return -1;
    }
    lua_State *L = e->L;
    push_method(e, "render_external");
    push_external_req(L, r);
    if (lx_pcall(L, 2, 3, msg, msglen) != 0) {
        LOGE("render_external: %s", msg);
        *status = 500;
        return -1;
    }
    return render_result(L, query, NULL, status, msg, msglen);
}

/* -- Compute hooks ---------------------------------------------------------- */

bool
engine_has_compute(struct engine *e, const char *kind, int rule)
{
    char err[4096];
    if (!e)
        return false;
    if (ready(e, err, sizeof err) != 0) {
        LOGE("engine:has_compute(%s, %d): %s", kind, rule, err);
        return false;
    }
    push_method(e, "has_compute");
    lua_pushstring(e->L, kind);
    lua_pushinteger(e->L, rule);
    if (lx_pcall(e->L, 3, 1, err, sizeof err) != 0) {
        LOGE("engine:has_compute(%s, %d): %s", kind, rule, err);
        return false;
    }
    bool r = lua_toboolean(e->L, -1);
    lua_settop(e->L, 0);
    return r;
}

void
engine_samples_free(struct engine_samples *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        struct prom_sample *p = &s->v[i];
        for (size_t k = 0; k < p->nlabels; k++) {
            free((char *)p->keys[k]);
            free((char *)p->values[k]);
        }
        free(p->keys);
        free(p->values);
    }
    free(s->v);
    free(s);
}

struct kv { char *k, *v; };

static int
cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

/* Copies the labels table at idx into p (keys sorted). 0 or -1 (OOM). */
static int
read_labels(lua_State *L, int idx, struct prom_sample *p)
{
    size_t n = 0, cap = 8;
    struct kv *kv = malloc(cap * sizeof *kv);
    if (!kv)
        return -1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {             /* key value */
        /* types were checked in Lua (strings only); skip anything else
         * without lua_tostring, which would convert a key in place */
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            if (n == cap) {
                struct kv *nk = realloc(kv, 2 * cap * sizeof *kv);
                if (!nk) {
                    lua_pop(L, 2);
                    goto oom;
                }
                kv = nk;
                cap *= 2;
            }
            kv[n].k = strdup(lua_tostring(L, -2));
            kv[n].v = strdup(lua_tostring(L, -1));
            n++;
            if (!kv[n - 1].k || !kv[n - 1].v) {
                lua_pop(L, 2);
                goto oom;
            }
        }
        lua_pop(L, 1);
    }
    qsort(kv, n, sizeof *kv, cmp_kv);
    p->keys = calloc(n + 1, sizeof *p->keys);
    p->values = calloc(n + 1, sizeof *p->values);
    if (!p->keys || !p->values) {
        free(p->keys);
        free(p->values);
        p->keys = p->values = NULL;
        goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        p->keys[i] = kv[i].k;
        p->values[i] = kv[i].v;
    }
    p->nlabels = n;
    free(kv);
    return 0;
oom:
    for (size_t i = 0; i < n; i++) {
        free(kv[i].k);
        free(kv[i].v);
    }
    free(kv);
    return -1;
}

/* Pushes t[key] without metamethods (t at idx, a table). stack: -> v */
static void
rawfield(lua_State *L, int idx, const char *key)
{
    lua_pushstring(L, key);
    lua_rawget(L, idx);
}

/* Reads the samples list at idx into a new struct engine_samples. Raw
 * access only (adapter.hooks copied the hook's samples inside its time
 * guard; no script code may run here). A sample whose labels are nil
 * keeps keys NULL: it is served as a scalar answer is (metricLabels
 * null). */
static struct engine_samples *
read_samples(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx);
    struct engine_samples *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->v = calloc(n + 1, sizeof *s->v);
    if (!s->v)
        goto fail;
    double now = prom_now();
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) {       /* not from adapter.hooks: skip */
            lua_settop(L, t - 1);
            continue;
        }
        struct prom_sample *p = &s->v[s->n];
        rawfield(L, t, "value");
        p->value = lua_tonumber(L, -1);
        lua_pop(L, 1);
        rawfield(L, t, "timestamp");
        p->ts = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : now;
        lua_pop(L, 1);
        rawfield(L, t, "labels");
        int rc = lua_istable(L, -1) ? read_labels(L, lua_gettop(L), p) : 0;
        s->n++;     /* counted even when partial, so the free sees it */
        lua_settop(L, t - 1);
        if (rc != 0)
            goto fail;
    }
    return s;
fail:
    engine_samples_free(s);
    return NULL;
}

/* After a compute call the stack holds (a, b, c, d): on success a is the
 * samples list (b the selector echo for custom); on failure a is nil, b
 * the message, c the status, d true for a 500 without a reason
 * (ENGINE_STATUS_UNTYPED). */
static int
compute_result(lua_State *L, struct engine_samples **out,
               struct buf *selector_json, int *status, char *msg,
               size_t msglen)
{
    int rc = 0;
    *out = NULL;
    if (lua_istable(L, -4)) {
        *out = read_samples(L, lua_gettop(L) - 3);
        if (!*out)
            goto oom;
        if (selector_json && lua_type(L, -3) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -3, &n);
            if (buf_add(selector_json, s, n) < 0)
                goto oom;
        }
    } else {
        const char *m = lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
        snprintf(msg, msglen, "%s", m ? m : "compute hook failed");
        *status = lua_type(L, -2) == LUA_TNUMBER ? (int)lua_tointeger(L, -2) : 500;
        if (*status == 500 && lua_toboolean(L, -1))
            *status = ENGINE_STATUS_UNTYPED;
        rc = -1;
    }
    lua_settop(L, 0);
    return rc;
oom:
    engine_samples_free(*out);
    *out = NULL;
    lua_settop(L, 0);
    *status = 500;
    snprintf(msg, msglen, "out of memory");
    return -1;
}

int
engine_compute_custom(struct engine *e, const struct engine_custom_req *r,
                      long budget_ms, struct engine_samples **out,
                      struct buf *selector_json, int *status, char *msg,
                      size_t msglen)
{
    *out = NULL;
    if (ready(e, msg, msglen) != 0) {
        LOGE("compute_custom: %s", msg);
        *status = 500;
        return -1;
    }
    lua_State *L = e->L;
    push_method(e, "compute_custom");
    push_custom_req(L, r);
    e->io_deadline_ms = mono_ms() + (budget_ms > 0 ? budget_ms : 1);
    int rc = lx_pcall(L, 2, 4, msg, msglen);
    e->io_deadline_ms = 0;
    if (rc != 0) {
        LOGE("compute_custom: %s", msg);
        *status = 500;
        return -1;
    }
    return compute_result(L, out, selector_json, status, msg, msglen);
}

int
engine_compute_external(struct engine *e, const struct engine_external_req *r,
                        long budget_ms, struct engine_samples **out,
                        int *status, char *msg, size_t msglen)
{
    *out = NULL;
    if (ready(e, msg, msglen) != 0) {
        LOGE("compute_external: %s", msg);
        *status = 500;
        return -1;
    }
    lua_State *L = e->L;
    push_method(e, "compute_external");
    push_external_req(L, r);
    e->io_deadline_ms = mono_ms() + (budget_ms > 0 ? budget_ms : 1);
    int rc = lx_pcall(L, 2, 4, msg, msglen);
    e->io_deadline_ms = 0;
    if (rc != 0) {
        LOGE("compute_external: %s", msg);
        *status = 500;
        return -1;
    }
    /* the external entry point returns (samples) or (nil, msg, status) */
    return compute_result(L, out, NULL, status, msg, msglen);
}

/* -- Resource metrics ------------------------------------------------------ */

int
engine_render_resource(struct engine *e, const struct engine_resource_req *r,
                       struct buf *query, char *msg, size_t msglen)
{
    int status = 500;
    if (ready(e, msg, msglen) != 0) {
        LOGE("render_resource: %s", msg);
        return -1;
    }
    lua_State *L = e->L;
    push_method(e, "render_resource");
    lua_createtable(L, 0, 4);
    set_str(L, "resource", r->resource);
    lua_pushboolean(L, r->node);
    lua_setfield(L, -2, "node");
    set_str(L, "namespace", r->namespace_ ? r->namespace_ : "");
    lua_createtable(L, (int)r->nnames, 0);
    for (size_t i = 0; i < r->nnames; i++) {
        lua_pushstring(L, r->names[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "names");
    if (lx_pcall(L, 2, 3, msg, msglen) != 0) {
        LOGE("render_resource: %s", msg);
        return -1;
    }
    return render_result(L, query, NULL, &status, msg, msglen);
}

static void
copy_field(lua_State *L, int t, const char *k, char *out, size_t outlen)
{
    const char *v = field_str(L, t, k);
    snprintf(out, outlen, "%s", v ? v : "");
}

int
engine_resource_labels(struct engine *e, const char *which,
                       struct engine_resource_labels *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ready(e, err, errlen) != 0)
        return -1;
    lua_State *L = e->L;
    push_method(e, "resource_labels");
    lua_pushstring(L, which);
    if (lx_pcall(L, 2, 2, err, errlen) != 0)   /* labels | nil, msg */
        return -1;
    int t = lua_gettop(L) - 1;
    if (!lua_istable(L, t)) {
        const char *m = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", m ? m : "resourceRules not configured");
        lua_settop(L, 0);
        return -1;
    }
    copy_field(L, t, "pod", out->pod, sizeof out->pod);
    copy_field(L, t, "namespace", out->namespace_, sizeof out->namespace_);
    copy_field(L, t, "node", out->node, sizeof out->node);
    copy_field(L, t, "container", out->container, sizeof out->container);
    out->window_ms = (long long)field_int(L, t, "window_ms");
    lua_settop(L, 0);
    return 0;
}
