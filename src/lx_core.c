/* lx_core.c: the adapter.core Lua module (docs/architecture.md): Go RE2
 * regexes, Go %q quoting, Kubernetes label selectors, the YAML node tree,
 * klog logging and the wall clock, for the Lua engine.
 * Uses lx.h (Lua API), rx.h, goquote.h, selector.h, yaml.h, log.h, buf.h.
 * Pure functions and userdata with __gc only: it never reaches the cache,
 * the clients or any global state, so it is also built as
 * build/lua/adapter/core.so and loaded by plain LuaJIT for the specs.
 * It must not use anything that exists only in the binary.
 * Only the l_* functions (lua_CFunctions) call luaL_error. C memory that a
 * Lua error could strand (a raise while building a result table) is held
 * in a "box" userdata whose __gc frees it. */
#include "lx.h"
#include "buf.h"
#include "goquote.h"
#include "log.h"
#include "rx.h"
#include "selector.h"
#include "yaml.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX_MT "adapter.regex"
#define BOX_MT "adapter.box"
#define QUOTE_MAX (64u << 20)

struct lrx {
    struct rx *rx;              /* owned; NULL after __gc */
};

/* Owns one C object until the box is collected. */
struct box {
    void *p;
    void (*free)(void *);
};

/* -- Boxes ------------------------------------------------------------------ */

static int
l_box_gc(lua_State *L)
{
    struct box *b = luaL_checkudata(L, 1, BOX_MT);
    if (b->p && b->free)
        b->free(b->p);
    b->p = NULL;
    return 0;
}

/* stack: -> box */
static struct box *
push_box(lua_State *L, void (*fn)(void *))
{
    struct box *b = lua_newuserdata(L, sizeof *b);
    b->p = NULL;
    b->free = fn;
    luaL_getmetatable(L, BOX_MT);
    lua_setmetatable(L, -2);
    return b;
}

static void
free_selector(void *p)
{
    selector_free(p);
}

static void
free_buf(void *p)
{
    buf_free(p);
    free(p);
}

/* -- Regex --------------------------------------------------------------------- */

/* core.regex(pattern) -> rx | nil, err */
static int
l_regex(lua_State *L)
{
    size_t n;
    const char *pat = luaL_checklstring(L, 1, &n);
    char err[512];
    struct lrx *u = lua_newuserdata(L, sizeof *u);

    u->rx = NULL;
    luaL_getmetatable(L, RX_MT);
    lua_setmetatable(L, -2);
    u->rx = rx_compilen(pat, n, err, sizeof err);
    if (!u->rx) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* The regex of argument 1; NULL once collected (only reachable from a
 * __gc-resurrected reference), which the l_ callers turn into an error. */
static struct rx *
to_rx(lua_State *L)
{
    struct lrx *u = luaL_checkudata(L, 1, RX_MT);
    return u->rx;
}

/* rx:test(s) -> bool */
static int
l_rx_test(lua_State *L)
{
    struct rx *rx = to_rx(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    char err[256];
    int r;

    if (!rx)
        return luaL_argerror(L, 1, "regex already freed");
    r = rx_search(rx, s, n, NULL, 0, err, sizeof err);
    if (r < 0)
        return luaL_error(L, "%s", err);
    lua_pushboolean(L, r);
    return 1;
}

/* rx:match(s) -> nil | { [0] = whole, [i] = group i or false } */
static int
l_rx_match(lua_State *L)
{
    struct rx *rx = to_rx(L);
    size_t n, nvec, *ov;
    const char *s = luaL_checklstring(L, 2, &n);
    char err[256];
    int r;

    if (!rx)
        return luaL_argerror(L, 1, "regex already freed");
    nvec = 2 * ((size_t)rx_ncaptures(rx) + 1);
    /* scratch owned by the GC, so a raise below leaks nothing */
    ov = lua_newuserdata(L, nvec * sizeof *ov);
    r = rx_search(rx, s, n, ov, nvec, err, sizeof err);

    if (r < 0)
        return luaL_error(L, "%s", err);
    if (r == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, (int)(nvec / 2), 1);
    for (size_t g = 0; g < nvec / 2; g++) {
        if (ov[2 * g] == RX_UNSET)
            lua_pushboolean(L, 0);
        else
            lua_pushlstring(L, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        lua_rawseti(L, -2, (int)g);
    }
    return 1;
}

static int
l_rx_ncaptures(lua_State *L)
{
    struct rx *rx = to_rx(L);
    if (!rx)
        return luaL_argerror(L, 1, "regex already freed");
    lua_pushinteger(L, rx_ncaptures(rx));
    return 1;
}

/* rx:names() -> { name = group } (leftmost group for a repeated name) */
static int
l_rx_names(lua_State *L)
{
    struct rx *rx = to_rx(L);
    int n;

    if (!rx)
        return luaL_argerror(L, 1, "regex already freed");
    n = rx_name_count(rx);
    lua_createtable(L, 0, n);
    for (int i = n - 1; i >= 0; i--) {
        int g;
        const char *name = rx_name_at(rx, i, &g);
        lua_pushinteger(L, g);
        lua_setfield(L, -2, name);
    }
    return 1;
}

static int
l_rx_pattern(lua_State *L)
{
    struct rx *rx = to_rx(L);
    if (!rx)
        return luaL_argerror(L, 1, "regex already freed");
    lua_pushstring(L, rx_pattern(rx));
    return 1;
}

static int
l_rx_tostring(lua_State *L)
{
    struct lrx *u = luaL_checkudata(L, 1, RX_MT);
    lua_pushfstring(L, "regex(%s)", u->rx ? rx_pattern(u->rx) : "freed");
    return 1;
}

static int
l_rx_gc(lua_State *L)
{
    struct lrx *u = luaL_checkudata(L, 1, RX_MT);
    rx_free(u->rx);
    u->rx = NULL;
    return 0;
}

/* -- Quoting, selectors ------------------------------------------------------- */

/* core.goquote(s) -> Go %q text */
static int
l_goquote(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct box *bx = push_box(L, free_buf);
    struct buf *b = malloc(sizeof *b);

    if (!b)
        return luaL_error(L, "out of memory");
    buf_init(b, QUOTE_MAX);
    bx->p = b;
    if (goquote(b, s, n) < 0)
        return luaL_error(L, "goquote: result too large");
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

/* Parses argument 1 into a boxed selector. stack: -> box (or nil, err
 * pushed and NULL returned). */
static struct selector *
push_selector(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[1024];
    struct box *bx = push_box(L, free_selector);

    bx->p = selector_parse(s, n, err, sizeof err);
    if (!bx->p) {
        lua_pushnil(L);
        lua_pushstring(L, err);
    }
    return bx->p;
}

/* core.selector_parse(s) -> { {key=, op=, values={...}}, ... } | nil, err
 * Requirements come sorted by key, as labels.Parse returns them. */
static int
l_selector_parse(lua_State *L)
{
    struct selector *sel = push_selector(L);

    if (!sel)
        return 2;
    lua_createtable(L, (int)sel->nreqs, 0);
    for (size_t i = 0; i < sel->nreqs; i++) {
        const struct selector_req *r = &sel->reqs[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, r->key);
        lua_setfield(L, -2, "key");
        lua_pushstring(L, selector_op_name(r->op));
        lua_setfield(L, -2, "op");
        lua_createtable(L, (int)r->nvalues, 0);
        for (size_t k = 0; k < r->nvalues; k++) {
            lua_pushstring(L, r->values[k]);
            lua_rawseti(L, -2, (int)k + 1);
        }
        lua_setfield(L, -2, "values");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* core.selector_string(s) -> canonical text (labels.Selector.String())
 * | nil, err */
static int
l_selector_string(lua_State *L)
{
    struct selector *sel = push_selector(L);
    struct box *bx;
    struct buf *b;

    if (!sel)
        return 2;
    bx = push_box(L, free_buf);
    if (!(b = malloc(sizeof *b)))
        return luaL_error(L, "out of memory");
    buf_init(b, QUOTE_MAX);
    bx->p = b;
    if (selector_string(sel, b) < 0)
        return luaL_error(L, "selector too large");
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    return 1;
}

/* Label lookup over the table at stack index 2; the value stays on the
 * stack (so the pointer stays valid) until l_selector_matches returns. */
static const char *
lookup_table(void *ctx, const char *key)
{
    lua_State *L = ctx;
    lua_pushstring(L, key);
    lua_rawget(L, 2);
    if (lua_type(L, -1) != LUA_TSTRING)
        return NULL;
    return lua_tostring(L, -1);
}

/* core.selector_matches(s, labels) -> bool | nil, err
 * labels: { name = "value" }; non-string values count as absent. */
static int
l_selector_matches(lua_State *L)
{
    struct selector *sel;

    luaL_checktype(L, 2, LUA_TTABLE);
    if (!(sel = push_selector(L)))
        return 2;
    if (!lua_checkstack(L, (int)sel->nreqs + 4))
        return luaL_error(L, "selector too large");
    lua_pushboolean(L, selector_matches(sel, lookup_table, L));
    return 1;
}

/* -- YAML, logging, time -------------------------------------------------------- */

/* core.yaml_parse(text [, filename]) -> tree | nil, err */
static int
l_yaml_parse(lua_State *L)
{
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    const char *file = luaL_optstring(L, 2, NULL);
    char err[1024];

    if (yaml_push_tree(L, text, n, file, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* core.log(level, msg): level "info" | "warning" | "error", or a number n
 * (info, printed only when --v >= n). The klog file:line is the Lua
 * caller's. */
static int
l_log(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 2);
    const char *file = "lua";
    int line = 0;
    enum log_sev sev = LOG_SEV_INFO;
    lua_Debug ar;

    if (lua_type(L, 1) == LUA_TNUMBER) {
        if (log_verbosity() < (int)lua_tointeger(L, 1))
            return 0;
    } else {
        const char *lv = luaL_checkstring(L, 1);
        if (strcmp(lv, "warning") == 0)
            sev = LOG_SEV_WARNING;
        else if (strcmp(lv, "error") == 0)
            sev = LOG_SEV_ERROR;
        else if (strcmp(lv, "info") != 0)
            return luaL_argerror(L, 1, "info, warning, error or a number");
    }
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
        file = ar.short_src;
        line = ar.currentline;
    }
    log_msg(sev, file, line, "%s", msg);
    return 0;
}

/* core.now() -> wall-clock seconds since the epoch (float) */
static int
l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* -- Module ----------------------------------------------------------------------- */

static const luaL_Reg rx_methods[] = {
    {"test", l_rx_test},
    {"match", l_rx_match},
    {"ncaptures", l_rx_ncaptures},
    {"names", l_rx_names},
    {"pattern", l_rx_pattern},
    {NULL, NULL},
};

static const luaL_Reg core_funcs[] = {
    {"regex", l_regex},
    {"goquote", l_goquote},
    {"selector_parse", l_selector_parse},
    {"selector_string", l_selector_string},
    {"selector_matches", l_selector_matches},
    {"yaml_parse", l_yaml_parse},
    {"log", l_log},
    {"now", l_now},
    {NULL, NULL},
};

/* stack: -> module table */
int
luaopen_adapter_core(lua_State *L)
{
    if (luaL_newmetatable(L, RX_MT)) {
        lua_createtable(L, 0, 5);
        luaL_register(L, NULL, rx_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_rx_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_rx_tostring);
        lua_setfield(L, -2, "__tostring");
        /* getmetatable(rx) is false: the methods table is shared by every
         * regex of the state, the engine's seriesFilters included, and
         * hook scripts get regexes (adapter.regex). luaL_checkudata reads
         * the real metatable. */
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, l_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 8);
    luaL_register(L, NULL, core_funcs);
    return 1;
}
