/* cli.c: the check-config and explain subcommands (see cli.h); explain
 * covers custom.metrics.k8s.io, external.metrics.k8s.io and
 * metrics.k8s.io paths.
 * Uses flags, engine, lx + yaml (warnings straight from engine.new),
 * reload (config and script loading), prom, kube, kcache, cache, relist,
 * api + server + http_client (explain asks the real handler; for
 * metrics.k8s.io it watches the handler's queries through
 * api.resource_trace), selector, quantity, metrics, log. Everything is
 * built, used once and freed here; nothing is shared with a running
 * adapter. */
#include "cli.h"
#include "api.h"
#include "buf.h"
#include "cache.h"
#include "engine.h"
#include "flags.h"
#include "http_client.h"
#include "httputil.h"
#include "kcache.h"
#include "kube.h"
#include "log.h"
#include "lx.h"
#include "prom.h"
#include "quantity.h"
#include "relist.h"
#include "reload.h"
#include "selector.h"
#include "server.h"
#include "yaml.h"
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_MAX 65536

/* Prints one line to stdout, scrubbed of secrets. */
static void
out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
out(const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_scrub(line, sizeof line);
    fputs(line, stdout);
    fputc('\n', stdout);
}

/* Prints each string of the Lua array at idx (a negative idx counts from
 * the top as it was on entry) as one line. */
static void
out_lines(lua_State *L, int idx)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    size_t n = lua_objlen(L, idx);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        out("%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* Parses the usual flags (positional words are ignored by flags_parse)
 * and applies the logging ones. 0, or the exit code to return. */
static int
parse_flags(int argc, char **argv, struct options *o)
{
    char err[4096];
    switch (flags_parse(argc, argv, o, err, sizeof err)) {
    case FLAGS_OK:
        break;
    case FLAGS_HELP:
        return -1;
    default:
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    log_set_verbosity(o->v);
    if (log_set_format(o->logging_format, err, sizeof err) != 0) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    return 0;
}

/* -- check-config ------------------------------------------------------ */

/* Appends "FILE:LINE: path: [warning: ]msg" lines of the problem array at
 * idx to b (the format of engine.c's errors). */
static void
format_problems(lua_State *L, int idx, const char *file, const char *tag,
                struct buf *b)
{
    size_t n = lua_objlen(L, idx);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        lua_getfield(L, -1, "path");
        lua_getfield(L, -2, "msg");
        lua_getfield(L, -3, "line");
        const char *path = lua_tostring(L, -3);
        const char *msg = lua_tostring(L, -2);
        long line = (long)lua_tointeger(L, -1);
        if (b->len)
            buf_addc(b, '\n');
        if (path && *path)
            buf_addf(b, "%s:%ld: %s: %s%s", file, line, path, tag,
                     msg ? msg : "invalid");
        else
            buf_addf(b, "%s:%ld: %s%s", file, line, tag, msg ? msg : "invalid");
        lua_pop(L, 4);
    }
}

/* The load-time warnings of the config: engine.new's third result,
 * computed in a private Lua state (engine_new only logs them). A config
 * that does not parse has none here (engine_new reports the error). */
static void
config_warnings(const struct config_snap *cs, const char *file,
                const char *lua_dir, struct buf *warns)
{
    char err[4096];
    lua_State *L = lx_new(lua_dir, err, sizeof err);
    if (!L)
        return;
    lua_getglobal(L, "require");
    lua_pushstring(L, "adapter.engine");
    if (lx_pcall(L, 1, 1, err, sizeof err) != 0)
        goto done;
    lua_getfield(L, -1, "new");                       /* mod, new */
    if (yaml_push_tree(L, cs->text, cs->len, file, err, sizeof err) != 0)
        goto done;
    lua_newtable(L);
    lua_pushstring(L, file);
    lua_setfield(L, -2, "file");
    if (lx_pcall(L, 2, 3, err, sizeof err) != 0)      /* mod, eng, errs, warns */
        goto done;
    if (lua_istable(L, -1))
        format_problems(L, lua_gettop(L), file, "warning: ", warns);
done:
    lx_free(L);
}

int
cli_check_config(int argc, char **argv)
{
    struct options o;
    struct config_snap *cs = NULL;
    struct engine *e = NULL;
    struct buf warns;
    char *err = malloc(ERR_MAX);
    int rc = 2;

    buf_init(&warns, 1 << 20);
    int prc = parse_flags(argc, argv, &o);
    if (prc != 0 || !err) {
        rc = prc < 0 ? 0 : 2;
        goto done;
    }
    if (!*o.config) {
        fprintf(stderr, "Error: check-config needs --config FILE\n");
        goto done;
    }
    rc = 1;
    if (config_snap_load(o.config, (const char *const *)o.lua_script.v,
                         o.lua_script.n, (long)o.lua_hook_timeout_ms, &cs, err,
                         ERR_MAX) != 0) {
        out("%s", err);
        goto done;
    }
    const char *lua_dir = *o.lua_dir ? o.lua_dir : NULL;
    config_warnings(cs, o.config, lua_dir, &warns);
    /* Errors exactly as start-up finds them: a full engine with the
     * hook scripts. */
    struct engine_hooks hooks;
    config_snap_hooks(cs, &hooks);
    e = engine_new(cs->text, cs->len, o.config, lua_dir, &hooks, false, err,
                   ERR_MAX);
    size_t nerr = 0, nwarn = 0;
    if (!e) {
        out("%s", err);
        for (const char *p = err; *p; p++)
            nerr += *p == '\n';
        nerr++;
    }
    if (warns.len) {
        out("%s", warns.data);
        for (const char *p = warns.data; *p; p++)
            nwarn += *p == '\n';
        nwarn++;
    }
    fprintf(stderr, "%s: %zu error(s), %zu warning(s)\n", o.config, nerr, nwarn);
    rc = e ? 0 : 1;
done:
    fflush(stdout);
    engine_free(e);
    config_snap_free(cs);
    buf_free(&warns);
    free(err);
    options_free(&o);
    return rc;
}

/* -- explain: request parsing ---------------------------------------------- */

struct target {
    bool external;
    bool resource_metrics;         /* metrics.k8s.io: pods or nodes */
    bool nodes;                    /* metrics.k8s.io nodes */
    char version[16];
    char ns[256];                  /* "" when root-scoped (metrics.k8s.io:
                                    * nodes, or pods of all namespaces) */
    char resource[256], group[256];
    char name[256];                /* "*" for a by-selector query;
                                    * metrics.k8s.io: "" for a list */
    char metric[512];
    char *label_selector;          /* decoded labelSelector, owned */
    char *metric_selector;         /* decoded metricLabelSelector, owned */
    char *field_selector;          /* decoded fieldSelector, owned */
};

static char *
query_param(const char *query, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            struct buf b;
            buf_init(&b, 1 << 20);
            if (httputil_pct_decode(p + kl + 1, n - kl - 1, true, &b) != 0) {
                buf_free(&b);
                return NULL;
            }
            return buf_take(&b, NULL);
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void
split_group(struct target *t, const char *seg)
{
    const char *dot = strchr(seg, '.');
    snprintf(t->resource, sizeof t->resource, "%.*s",
             (int)(dot ? (size_t)(dot - seg) : strlen(seg)), seg);
    snprintf(t->group, sizeof t->group, "%s", dot ? dot + 1 : "");
}

/* Parses an HPA request path. 0, or -1 with the reason in err. */
static int
parse_target(const char *full, struct target *t, char *err, size_t errlen)
{
    char path[4096];
    const char *q = strchr(full, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? (size_t)(q - full) : strlen(full)), full);
    struct httputil_segs s = {0};
    int rc = -1;
    memset(t, 0, sizeof *t);
    if (httputil_split_path(path, &s) != 0 || s.n < 4 || strcmp(s.seg[0], "apis"))
        goto bad;
    snprintf(t->version, sizeof t->version, "%s", s.seg[2]);
    const char *const *g = (const char *const *)s.seg + 3;
    size_t n = s.n - 3;
    if (!strcmp(s.seg[1], "external.metrics.k8s.io")) {
        if (n != 3 || strcmp(g[0], "namespaces"))
            goto bad;
        t->external = true;
        snprintf(t->ns, sizeof t->ns, "%s", g[1]);
        snprintf(t->metric, sizeof t->metric, "%s", g[2]);
    } else if (!strcmp(s.seg[1], "custom.metrics.k8s.io")) {
        if (n == 5 && !strcmp(g[0], "namespaces")) {
            snprintf(t->ns, sizeof t->ns, "%s", g[1]);
            split_group(t, g[2]);
            snprintf(t->name, sizeof t->name, "%s", g[3]);
            snprintf(t->metric, sizeof t->metric, "%s", g[4]);
        } else if (n == 4 && !strcmp(g[0], "namespaces") && strcmp(g[2], "*")) {
            /* the namespace object itself: namespaces/<ns>/metrics/<m> */
            snprintf(t->resource, sizeof t->resource, "namespaces");
            snprintf(t->name, sizeof t->name, "%s", g[1]);
            snprintf(t->metric, sizeof t->metric, "%s", g[3]);
        } else if (n == 3) {
            split_group(t, g[0]);
            snprintf(t->name, sizeof t->name, "%s", g[1]);
            snprintf(t->metric, sizeof t->metric, "%s", g[2]);
        } else {
            goto bad;
        }
    } else if (!strcmp(s.seg[1], "metrics.k8s.io") &&
               !strcmp(s.seg[2], "v1beta1")) {
        /* nodes, nodes/<n>, pods, namespaces/<ns>/pods[/<name>] */
        t->resource_metrics = true;
        if (n <= 2 && !strcmp(g[0], "nodes")) {
            t->nodes = true;
            snprintf(t->name, sizeof t->name, "%s", n == 2 ? g[1] : "");
        } else if (n == 1 && !strcmp(g[0], "pods")) {
            t->name[0] = '\0';
        } else if ((n == 3 || n == 4) && !strcmp(g[0], "namespaces") &&
                   !strcmp(g[2], "pods")) {
            snprintf(t->ns, sizeof t->ns, "%s", g[1]);
            snprintf(t->name, sizeof t->name, "%s", n == 4 ? g[3] : "");
        } else {
            goto bad;
        }
        snprintf(t->resource, sizeof t->resource, "%s",
                 t->nodes ? "nodes" : "pods");
    } else {
        goto bad;
    }
    t->label_selector = query_param(q ? q + 1 : NULL, "labelSelector");
    t->metric_selector = query_param(q ? q + 1 : NULL, "metricLabelSelector");
    t->field_selector = query_param(q ? q + 1 : NULL, "fieldSelector");
    rc = 0;
    goto done;
bad:
    snprintf(err, errlen, "not a metric path of custom.metrics.k8s.io, "
             "external.metrics.k8s.io or metrics.k8s.io/v1beta1: %s (e.g. "
             "/apis/custom.metrics.k8s.io/v1beta2/namespaces/NS/pods/*/METRIC, "
             "/apis/metrics.k8s.io/v1beta1/namespaces/NS/pods)", full);
done:
    httputil_segs_free(&s);
    return rc;
}

/* -- explain: diagnosis in Lua -------------------------------------------- */

/* Runs every rule of the kind over the series Prometheus returned, with
 * the engine's own steps (match_series, metric_name,
 * resources_for_series), and reports the rules that produce the target
 * metric, or the nearest candidates with the reason each was rejected.
 * Arguments: eng, kind, results (as eng:discover takes them), target
 * {metric=, resource=, group=}. Returns an array of output lines. */
static const char diagnose_lua[] =
    "local eng, kind, results, t = ...\n"
    "local prefix = kind == 'custom' and 'rules' or 'externalRules'\n"
    "local lines, cands, found = {}, {}, 0\n"
    "local function dist(a, b)\n"
    "  if #a > 200 or #b > 200 then return 200 end\n"
    "  local prev = {}\n"
    "  for j = 0, #b do prev[j] = j end\n"
    "  for i = 1, #a do\n"
    "    local cur = { [0] = i }\n"
    "    for j = 1, #b do\n"
    "      local c = a:byte(i) == b:byte(j) and 0 or 1\n"
    "      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + c)\n"
    "    end\n"
    "    prev = cur\n"
    "  end\n"
    "  return prev[#b]\n"
    "end\n"
    "local function grs(l)\n"
    "  local o = {}\n"
    "  for _, gr in ipairs(l or {}) do\n"
    "    o[#o + 1] = gr.group ~= '' and (gr.resource .. '.' .. gr.group) or gr.resource\n"
    "  end\n"
    "  table.sort(o)\n"
    "  return #o > 0 and table.concat(o, ', ') or 'none'\n"
    "end\n"
    "local function why_filtered(rule, name)\n"
    "  local namer = rule.c and rule.c.namer\n"
    "  for j, f in ipairs(rule.c and rule.c.filters or {}) do\n"
    "    if f.rx:test(name) ~= f.is then\n"
    "      if namer and f == namer.filter then\n"
    "        return string.format('filter: name.matches %q does not match the series', f.text)\n"
    "      end\n"
    "      return string.format('filter: rejected by seriesFilters[%d] (%s %q)', j - 1,\n"
    "        f.is and 'is' or 'isNot', f.text)\n"
    "    end\n"
    "  end\n"
    "  return 'filter: rejected by the match_series hook'\n"
    "end\n"
    "for i, rule in ipairs(eng.cfg[prefix] or {}) do\n"
    "  local rname = string.format('%s[%d]', prefix, i - 1)\n"
    "  local steps = rule.steps or eng.steps\n"
    "  local res = results[rule.seriesQuery]\n"
    "  if not res or res.error then\n"
    "    lines[#lines + 1] = string.format('  %s: series query %q failed: %s', rname,\n"
    "      rule.seriesQuery, res and res.error or 'not run')\n"
    "  else\n"
    "    for _, shape in ipairs(res.shapes or {}) do\n"
    "      local okk, keep = pcall(steps.match_series, rule, shape)\n"
    "      local okn, name = pcall(steps.metric_name, rule, shape.name)\n"
    "      if not okn then name = nil end\n"
    "      if name == t.metric then\n"
    "        if not okk or not keep then\n"
    "          cands[#cands + 1] = { 0, rname, shape.name, why_filtered(rule, shape.name) }\n"
    "        elseif kind == 'external' then\n"
    "          found = found + 1\n"
    "          lines[#lines + 1] = string.format('  %s produces %q from series %q', rname, name, shape.name)\n"
    "        else\n"
    "          local okr, list = pcall(steps.resources_for_series, rule, shape)\n"
    "          local hit = false\n"
    "          for _, gr in ipairs(okr and list or {}) do\n"
    "            if gr.resource == t.resource and (t.group == '' or gr.group == t.group\n"
    "                or gr.group:sub(1, #t.group) == t.group) then hit = true end\n"
    "          end\n"
    "          if hit then\n"
    "            found = found + 1\n"
    "            lines[#lines + 1] = string.format('  %s produces %q for %s from series %q (labels: %s)',\n"
    "              rname, name, t.resource, shape.name, table.concat(shape.labels or {}, ','))\n"
    "          else\n"
    "            cands[#cands + 1] = { 1, rname, shape.name, string.format('resource label: '\n"
    "              .. 'the series labels {%s} map to %s, not %s', table.concat(shape.labels or {}, ','),\n"
    "              okr and grs(list) or tostring(list), t.resource) }\n"
    "          end\n"
    "        end\n"
    "      elseif name and okk and keep then\n"
    "        cands[#cands + 1] = { 2 + dist(name, t.metric), rname, shape.name,\n"
    "          string.format('name: the series becomes %q', name) }\n"
    "      elseif okk and not keep then\n"
    "        cands[#cands + 1] = { 3 + dist(shape.name, t.metric), rname, shape.name,\n"
    "          why_filtered(rule, shape.name) }\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(cands, function(a, b)\n"
    "  if a[1] ~= b[1] then return a[1] < b[1] end\n"
    "  if a[2] ~= b[2] then return a[2] < b[2] end\n"
    "  return a[3] < b[3]\n"
    "end)\n"
    "if found == 0 then\n"
    "  lines[#lines + 1] = string.format('  no rule produces %q%s; nearest candidates:', t.metric,\n"
    "    kind == 'custom' and (' for ' .. t.resource) or '')\n"
    "  if #cands == 0 then lines[#lines + 1] = '    (none: no series of any rule comes close)' end\n"
    "  for k = 1, math.min(#cands, 10) do\n"
    "    local c = cands[k]\n"
    "    lines[#lines + 1] = string.format('    %s, series %q: %s', c[2], c[3], c[4])\n"
    "  end\n"
    "end\n"
    "return lines, found\n";

/* Pushes the resource list of a snapshot as engine.lua takes it. */
static void
push_resources(lua_State *L, const struct cache_snap *s)
{
    lua_createtable(L, (int)s->nresources, 0);
    for (size_t i = 0; i < s->nresources; i++) {
        const struct cache_resource *r = &s->resources[i];
        lua_createtable(L, 0, 7);
        lua_pushstring(L, r->group); lua_setfield(L, -2, "group");
        lua_pushstring(L, r->version); lua_setfield(L, -2, "version");
        lua_pushstring(L, r->resource); lua_setfield(L, -2, "resource");
        lua_pushstring(L, r->singular); lua_setfield(L, -2, "singular");
        lua_pushstring(L, r->kind); lua_setfield(L, -2, "kind");
        lua_pushboolean(L, r->namespaced); lua_setfield(L, -2, "namespaced");
        lua_pushboolean(L, r->preferred); lua_setfield(L, -2, "preferred");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* Fetches the series of every seriesQuery of the kind and pushes the
 * results table of eng:discover. */
static void
push_results(lua_State *L, struct engine *e, const char *kind,
             struct prom_client *prom, struct http_client *hc, double start)
{
    char err[2048];
    char **queries = NULL;
    size_t nq = 0;
    lua_newtable(L);
    if (engine_series_queries(e, kind, &queries, &nq, err, sizeof err) != 0)
        return;
    for (size_t i = 0; i < nq; i++) {
        struct prom_shapes *sh = NULL;
        lua_newtable(L);
        if (prom_series(prom, hc, queries[i], start, &sh, err, sizeof err) != 0) {
            lua_pushstring(L, err);
            lua_setfield(L, -2, "error");
        } else {
            lua_createtable(L, (int)sh->n, 0);
            for (size_t k = 0; k < sh->n; k++) {
                lua_createtable(L, 0, 2);
                lua_pushstring(L, sh->v[k].name);
                lua_setfield(L, -2, "name");
                lua_createtable(L, (int)sh->v[k].nlabels, 0);
                for (size_t j = 0; j < sh->v[k].nlabels; j++) {
                    lua_pushstring(L, sh->v[k].labels[j]);
                    lua_rawseti(L, -2, (int)j + 1);
                }
                lua_setfield(L, -2, "labels");
                lua_rawseti(L, -2, (int)k + 1);
            }
            lua_setfield(L, -2, "shapes");
            prom_shapes_free(sh);
        }
        lua_setfield(L, -2, queries[i]);
    }
    engine_strv_free(queries, nq);
}

/* A private Lua state holding an engine built from the config text and
 * given the resource map of snap, at stack index 1 (the diagnosis reads
 * the engine's own tables). NULL with the reason in err. */
static lua_State *
private_engine(const struct config_snap *cs, const char *file,
               const char *lua_dir, const struct cache_snap *snap, char *err,
               size_t errlen)
{
    lua_State *L = lx_new(lua_dir, err, errlen);
    if (!L)
        return NULL;
    lua_getglobal(L, "require");
    lua_pushstring(L, "adapter.engine");
    if (lx_pcall(L, 1, 1, err, errlen) != 0)
        goto fail;
    lua_getfield(L, -1, "new");
    if (yaml_push_tree(L, cs->text, cs->len, file, err, errlen) != 0)
        goto fail;
    lua_newtable(L);
    lua_pushstring(L, file);
    lua_setfield(L, -2, "file");
    if (lx_pcall(L, 2, 1, err, errlen) != 0 || !lua_istable(L, -1)) {
        if (!lua_istable(L, -1))
            snprintf(err, errlen, "the config does not load");
        goto fail;
    }
    lua_replace(L, 1);                                /* eng */
    lua_settop(L, 1);
    lua_getfield(L, 1, "set_resources");
    lua_pushvalue(L, 1);
    push_resources(L, snap);
    if (lx_pcall(L, 2, 0, err, errlen) != 0)
        goto fail;
    lua_settop(L, 1);
    return L;
fail:
    lx_free(L);
    return NULL;
}

/* Prints the rules/series section. Returns the number of producing rules
 * found (-1 when the diagnosis itself failed). */
static int
diagnose(const struct config_snap *cs, const char *file, const char *lua_dir,
         struct engine *e, const struct cache_snap *snap,
         const struct target *t, struct prom_client *prom,
         struct http_client *hc, double start)
{
    char err[8192];
    int found = -1;
    lua_State *L = private_engine(cs, file, lua_dir, snap, err, sizeof err);
    if (!L) {
        out("  (diagnosis unavailable: %s)", err);
        return -1;
    }
    int eng = 1;
    if (luaL_loadbuffer(L, diagnose_lua, sizeof diagnose_lua - 1,
                        "=explain") != 0) {
        snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
        goto fail;
    }
    lua_pushvalue(L, eng);
    lua_pushstring(L, t->external ? "external" : "custom");
    push_results(L, e, t->external ? "external" : "custom", prom, hc, start);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, t->metric); lua_setfield(L, -2, "metric");
    lua_pushstring(L, t->resource); lua_setfield(L, -2, "resource");
    lua_pushstring(L, t->group); lua_setfield(L, -2, "group");
    if (lx_pcall(L, 4, 2, err, sizeof err) != 0)
        goto fail;
    found = (int)lua_tointeger(L, -1);
    out_lines(L, -2);
    lx_free(L);
    return found;
fail:
    out("  (diagnosis unavailable: %s)", err);
    lx_free(L);
    return -1;
}

/* -- explain: the run ----------------------------------------------------- */

static const char *
obj_label(void *ctx, const char *key)
{
    return kcache_obj_label(ctx, key);
}

/* Objects the request selects, from the same metadata cache the handler
 * reads; their names (malloc'd, with the strings) go to *names for the
 * rendering step. */
static void
print_objects(struct kcache_set *kc, const struct cache_resource *r,
              const struct target *t, char ***names, size_t *nnames)
{
    char err[2048];
    *names = NULL;
    *nnames = 0;
    struct kcache_snap *ks = kcache_acquire(kc, r->group, r->version,
                                            r->resource, NULL, 15000, err,
                                            sizeof err);
    if (!ks) {
        out("  (unable to list %s: %s)", r->resource, err);
        return;
    }
    struct selector *sel = NULL;
    const char *ls = t->label_selector ? t->label_selector : "";
    sel = selector_parse(ls, strlen(ls), err, sizeof err);
    if (!sel) {
        out("  invalid labelSelector: %s", err);
        kcache_release(ks);
        return;
    }
    size_t first = 0, last = ks->n, shown = 0;
    if (r->namespaced)
        kcache_ns_range(ks, t->ns, &first, &last);
    char **v = calloc(last - first + 1, sizeof *v);
    for (size_t i = first; i < last; i++) {
        const struct kcache_obj *o = &ks->objs[i];
        if (strcmp(t->name, "*") ? strcmp(o->name, t->name) != 0
                                 : !selector_matches(sel, obj_label, (void *)o))
            continue;
        out("  %s%s%s", *o->namespace ? o->namespace : "",
            *o->namespace ? "/" : "", o->name);
        if (v && (v[shown] = strdup(o->name)) != NULL)
            shown++;
    }
    if (!shown)
        out("  (none: no %s %s%s%s)", r->resource,
            strcmp(t->name, "*") ? "named " : "matches the selector",
            strcmp(t->name, "*") ? t->name : "",
            r->namespaced ? " in this namespace" : "");
    *names = v;
    *nnames = shown;
    selector_free(sel);
    kcache_release(ks);
}

/* Appends one sample as `{k="v",...} value @time`; the value in the
 * fewest digits that read back the same (0.1, not 0.10000000000000001). */
static void
format_sample(struct buf *l, const struct prom_sample *s)
{
    char v[40];
    snprintf(v, sizeof v, "%.15g", s->value);
    if (strtod(v, NULL) != s->value && !isnan(s->value))
        snprintf(v, sizeof v, "%.17g", s->value);
    buf_addc(l, '{');
    for (size_t k = 0; k < s->nlabels; k++)
        buf_addf(l, "%s%s=\"%s\"", k ? "," : "", s->keys[k], s->values[k]);
    buf_addf(l, "} %s @%.3f", v, s->ts);
}

/* The rendered PromQL and the raw samples Prometheus returns for it. */
static void
print_query(struct engine *e, const struct cache_snap *snap,
            const struct target *t, const void *entry,
            const char *const *names, size_t nnames,
            struct prom_client *prom, struct http_client *hc, long timeout_ms)
{
    struct buf q, sel;
    char msg[4096], err[4096];
    int status = 0, rc;
    buf_init(&q, 1 << 20);
    buf_init(&sel, 1 << 20);
    if (engine_set_resources(e, snap->resources, snap->nresources, err,
                             sizeof err) != 0)
        out("  (resource map: %s)", err);
    if (t->external) {
        struct engine_external_req rq = {
            .entry = entry, .namespace_ = t->ns,
            .selector = t->label_selector ? t->label_selector : "",
        };
        rc = engine_render_external(e, &rq, &q, &status, msg, sizeof msg);
    } else {
        struct engine_custom_req rq = {
            .entry = entry, .namespace_ = t->ns, .names = names,
            .nnames = nnames,
            .metric_selector = t->metric_selector ? t->metric_selector : "",
            .label_selector = t->label_selector,
        };
        if (nnames == 0) {
            out("== PromQL");
            out("  (not rendered: no object selected; the handler answers 404)");
            goto done;
        }
        rc = engine_render_custom(e, &rq, &q, &sel, &status, msg, sizeof msg);
    }
    out("== PromQL");
    if (rc != 0) {
        out("  render failed (HTTP %d): %s", status, msg);
        goto done;
    }
    out("  %s", q.data ? q.data : "");
    out("== Raw samples");
    struct prom_result *res = NULL;
    if (prom_query(prom, hc, q.data ? q.data : "", prom_now(),
                   (double)timeout_ms / 1000.0, &res, err, sizeof err) != 0) {
        out("  query failed: %s", err);
        goto done;
    }
    if (res->n == 0)
        out("  (empty result)");
    for (size_t i = 0; i < res->n; i++) {
        struct buf l;
        buf_init(&l, 1 << 16);
        format_sample(&l, &res->samples[i]);
        out("  %s", l.data ? l.data : "(out of memory)");
        buf_free(&l);
    }
    prom_result_free(res);
done:
    buf_free(&q);
    buf_free(&sel);
}

/* Prints text of any length on one line, scrubbed of secrets: out()
 * holds 8 KiB, and log_scrub reads as much, so a long answer (a
 * PodMetricsList) goes out in pieces cut after a comma where possible. */
static void
out_long(const char *text)
{
    enum { PIECE = 4000 };
    char piece[2 * PIECE + 64];
    for (const char *p = text; *p;) {
        size_t n = strnlen(p, PIECE);
        if (p[n]) {
            size_t cut = n;
            while (cut > PIECE / 2 && p[cut - 1] != ',')
                cut--;
            if (p[cut - 1] == ',')
                n = cut;
        }
        memcpy(piece, p, n);
        piece[n] = '\0';
        log_scrub(piece, sizeof piece);
        fputs(piece, stdout);
        p += n;
    }
    fputc('\n', stdout);
}

/* Asks the real handler (a private loopback listener running api_serve)
 * for path: 0 with the HTTP status and body (the caller frees it), or -1
 * with the reason in err. */
static int
ask_handler(struct api *api, const char *path, long *status, struct buf *body,
            char *err, size_t errlen)
{
    struct server_config sc = {
        .bind_address = "127.0.0.1", .port = 0, .tls = false, .threads = 2,
        .handler = api_serve, .ctx = api,
        .thread_init = api_thread_init, .thread_fini = api_thread_fini,
    };
    struct server *srv = server_new(&sc, err, errlen);
    struct http_client *hc = NULL;
    struct http_resp resp = {0};
    int rc = -1;
    buf_init(&resp.body, 0);
    if (!srv || server_start(srv, err, errlen) != 0) {
        char why[1024];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "unable to run the handler: %s", why);
        goto done;
    }
    hc = http_client_new(err, errlen);
    if (!hc)
        goto done;
    char url[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server_port(srv), path);
    struct http_req rq = { .method = "GET", .url = url, .timeout_ms = 60000 };
    if (http_client_do(hc, &rq, &resp, err, errlen) != 0 && !resp.status) {
        char why[1024];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "request failed: %s", why);
        goto done;
    }
    *status = resp.status;
    *body = resp.body;
    buf_init(&resp.body, 0);
    rc = 0;
done:
    buf_free(&resp.body);
    http_client_free(hc);
    server_free(srv);
    return rc;
}

/* The == Answer section of an answer ask_handler got (rc its result). */
static void
print_answer_of(int rc, long status, const struct buf *body, const char *err)
{
    out("== Answer");
    if (rc != 0) {
        out("  (%s)", err);
        return;
    }
    out("  HTTP %ld", status);
    out_long(body->data ? body->data : "");
}

/* Asks the real handler and prints the status and body. */
static void
print_answer(struct api *api, const char *path)
{
    char err[2048];
    long status = 0;
    struct buf body;
    buf_init(&body, 0);
    int rc = ask_handler(api, path, &status, &body, err, sizeof err);
    print_answer_of(rc, status, &body, err);
    buf_free(&body);
}

/* -- explain: metrics.k8s.io ----------------------------------------------- */

#define SHOW_NAMES 10              /* object names listed */
#define SHOW_SAMPLES 10            /* raw samples shown per query */

/* One query the metrics.k8s.io handler sent, copied from its trace
 * (api.resource_trace); every pointer owned. */
struct rrec {
    bool cpu, node, first;         /* first: opens a batch sent together */
    char *ns;                      /* pods' namespace; "" for nodes */
    char **names;                  /* the objects queried, in order */
    size_t nnames;
    char *promql;                  /* NULL: not rendered */
    int rc;
    char *err;                     /* rc != 0 */
    size_t nsamples;
    char **shown;                  /* the first SHOW_SAMPLES, formatted */
    size_t nshown;
    char **objs;                   /* sorted distinct values of the object
                                    * label (pod or node) of the samples */
    size_t nobjs;
};

struct rtrace {
    pthread_mutex_t mu;
    struct engine_resource_labels lab[2];   /* cpu, memory */
    struct rrec *v;
    size_t n;
    bool oom;                      /* a record was lost */
};

static void
rrec_free(struct rrec *r)
{
    free(r->ns);
    engine_strv_free(r->names, r->nnames);
    free(r->promql);
    free(r->err);
    engine_strv_free(r->shown, r->nshown);
    engine_strv_free(r->objs, r->nobjs);
    memset(r, 0, sizeof *r);
}

static int
cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Copies what explain shows of res into r: the count, the first samples,
 * and the objects (values of label) that have a sample. 0, or -1 for out
 * of memory. */
static int
rrec_samples(struct rrec *r, const struct prom_result *res, const char *label)
{
    const char **tmp = calloc(res->n + 1, sizeof *tmp);
    size_t nt = 0;
    int rc = -1;
    r->nsamples = res->n;
    r->shown = calloc(SHOW_SAMPLES + 1, sizeof *r->shown);
    r->objs = calloc(res->n + 1, sizeof *r->objs);
    if (!tmp || !r->shown || !r->objs)
        goto done;
    for (size_t i = 0; i < res->n; i++) {
        const struct prom_sample *s = &res->samples[i];
        if (i < SHOW_SAMPLES) {
            struct buf l;
            buf_init(&l, 1 << 16);
            format_sample(&l, s);
            if (isnan(s->value) || s->value < 0)
                buf_adds(&l, " (reported as 0)");
            if (!(r->shown[r->nshown] = buf_take(&l, NULL)))
                goto done;
            r->nshown++;
        }
        const char *o = *label ? prom_sample_label(s, label) : NULL;
        if (o)
            tmp[nt++] = o;
    }
    qsort(tmp, nt, sizeof *tmp, cmp_cstr);
    for (size_t i = 0; i < nt; i++) {
        if (i && !strcmp(tmp[i], tmp[i - 1]))
            continue;
        if (!(r->objs[r->nobjs] = strdup(tmp[i])))
            goto done;
        r->nobjs++;
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

/* resource_trace.query: runs on the handler's thread. */
static void
trace_query(void *ctx, const struct engine_resource_req *rq, bool first,
            const char *promql, int rc, const char *err,
            const struct prom_result *res)
{
    struct rtrace *tr = ctx;
    struct rrec r = { .cpu = !strcmp(rq->resource, "cpu"), .node = rq->node,
                      .first = first, .rc = rc };
    const struct engine_resource_labels *l = &tr->lab[r.cpu ? 0 : 1];
    bool ok = (r.ns = strdup(rq->node || !rq->namespace_ ? "" : rq->namespace_)) &&
              (r.names = calloc(rq->nnames + 1, sizeof *r.names));
    for (size_t i = 0; ok && i < rq->nnames; i++)
        ok = (r.names[r.nnames++] = strdup(rq->names[i])) != NULL;
    if (ok && promql && *promql)
        ok = (r.promql = strdup(promql)) != NULL;
    if (ok && rc != 0)
        ok = (r.err = strdup(err ? err : "")) != NULL;
    if (ok && rc == 0 && res)
        ok = rrec_samples(&r, res, rq->node ? l->node : l->pod) == 0;
    pthread_mutex_lock(&tr->mu);
    struct rrec *v = ok ? realloc(tr->v, (tr->n + 1) * sizeof *v) : NULL;
    if (v) {
        tr->v = v;
        tr->v[tr->n++] = r;
    } else {
        tr->oom = true;
        rrec_free(&r);
    }
    pthread_mutex_unlock(&tr->mu);
}

/* "cpu, namespace shop, 2 pods" / "memory, 3 nodes". */
static void
rrec_title(const struct rrec *r, char *out, size_t outlen)
{
    if (r->node)
        snprintf(out, outlen, "%s, %zu node%s", r->cpu ? "cpu" : "memory",
                 r->nnames, r->nnames == 1 ? "" : "s");
    else
        snprintf(out, outlen, "%s, namespace %s, %zu pod%s",
                 r->cpu ? "cpu" : "memory", r->ns, r->nnames,
                 r->nnames == 1 ? "" : "s");
}

/* Prints "<head>: <text>", the lines of a multi-line text indented. */
static void
out_multiline(const char *head, const char *text)
{
    const char *nl = strchr(text, '\n');
    out("  %s: %.*s", head, (int)(nl ? (size_t)(nl - text) : strlen(text)), text);
    while (nl && nl[1]) {
        const char *p = nl + 1;
        nl = strchr(p, '\n');
        out("    %.*s", (int)(nl ? (size_t)(nl - p) : strlen(p)), p);
    }
}

/* The resourceRules in use: the query template of each rule for this
 * path, its resource mapping and the labels the engine resolved from it.
 * Arguments: eng (given the resource map), node, file, window. */
static const char resource_rules_lua[] =
    "local eng, node, file, window = ...\n"
    "local rr = eng.cfg.resourceRules\n"
    "local lines = {}\n"
    "local function add(s) lines[#lines + 1] = s end\n"
    "local function at(line) return line and (file .. ':' .. line) or file end\n"
    "add(string.format('  resourceRules: window %s (reported in every item, '\n"
    "  .. 'not used in queries)', window))\n"
    "local key = node and 'nodeQuery' or 'containerQuery'\n"
    "for _, which in ipairs({ 'cpu', 'memory' }) do\n"
    "  local r = rr[which]\n"
    "  add(string.format('  %s: %s (%s)', which, key, at(r['_line_' .. key] or r._line)))\n"
    "  local text = (r[key] or ''):gsub('\\n+$', '')\n"
    "  if text == '' then add('    (empty: every ' .. which .. ' query fails)') end\n"
    "  for l in (text ~= '' and text .. '\\n' or ''):gmatch('([^\\n]*)\\n') do\n"
    "    add('    ' .. l)\n"
    "  end\n"
    "  local m = {}\n"
    "  for _, o in ipairs(r.resources.overrides or {}) do\n"
    "    local gr = o.value or {}\n"
    "    local res = gr.resource or ''\n"
    "    if (gr.group or '') ~= '' then res = res .. '.' .. gr.group end\n"
    "    m[#m + 1] = (#m == 0 and 'overrides ' or '') .. o.key .. ' -> ' .. res\n"
    "  end\n"
    "  if (r.resources.template or '') ~= '' then\n"
    "    m[#m + 1] = string.format('template %q', r.resources.template)\n"
    "  end\n"
    "  add('    resources: ' .. (#m > 0 and table.concat(m, ', ')\n"
    "    or 'none (no overrides, no template)'))\n"
    "  local ok, l = pcall(eng.resource_labels, eng, which)\n"
    "  if not ok or type(l) ~= 'table' then l = {} end\n"
    "  local function lab(k)\n"
    "    if l[k] then return string.format('%s %q', k, l[k]) end\n"
    "    return k .. ': none (no label maps to ' .. k .. 's: the query cannot be rendered)'\n"
    "  end\n"
    "  if node then\n"
    "    add('    labels: ' .. lab('node'))\n"
    "  else\n"
    "    local cl = r.containerLabel or ''\n"
    "    add(string.format('    labels: %s, %s, containerLabel %q%s', lab('namespace'),\n"
    "      lab('pod'), cl, cl == '' and ' (every container is named \"\")' or ''))\n"
    "  end\n"
    "end\n"
    "return lines\n";

static void
print_resource_rules(const struct config_snap *cs, const char *file,
                     const char *lua_dir, const struct cache_snap *snap,
                     bool node, const char *window)
{
    char err[8192];
    lua_State *L = private_engine(cs, file, lua_dir, snap, err, sizeof err);
    if (!L) {
        out("  (unavailable: %s)", err);
        return;
    }
    if (luaL_loadbuffer(L, resource_rules_lua, sizeof resource_rules_lua - 1,
                        "=explain") != 0) {
        out("  (unavailable: %s)", lua_tostring(L, -1));
        lx_free(L);
        return;
    }
    lua_pushvalue(L, 1);
    lua_pushboolean(L, node);
    lua_pushstring(L, file);
    lua_pushstring(L, window);
    if (lx_pcall(L, 4, 1, err, sizeof err) != 0) {
        out("  (unavailable: %s)", err);
        lx_free(L);
        return;
    }
    out_lines(L, -1);
    lx_free(L);
}

/* ", labelSelector "..."" and ", fieldSelector "..."" of the request. */
static void
selectors_text(const struct target *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s%s%s%s",
             t->label_selector ? ", labelSelector \"" : "",
             t->label_selector ? t->label_selector : "",
             t->label_selector ? "\"" : "",
             t->field_selector ? ", fieldSelector \"" : "",
             t->field_selector ? t->field_selector : "",
             t->field_selector ? "\"" : "");
}

/* "namespace shop" / "all namespaces". */
static const char *
scope_text(const struct target *t, char *out, size_t outlen)
{
    if (*t->ns)
        snprintf(out, outlen, "namespace %s", t->ns);
    else
        snprintf(out, outlen, "all namespaces");
    return out;
}

/* Objects of the Running pod cache (or the node cache) in the request's
 * scope; -1 when the cache is unavailable. */
static long
count_in_scope(struct kcache_set *kc, const struct target *t)
{
    char err[1024];
    struct kcache_snap *ks = kcache_acquire(kc, "", "v1", t->resource,
                                            t->nodes ? NULL : "status.phase=Running",
                                            15000, err, sizeof err);
    if (!ks)
        return -1;
    size_t first = 0, last = ks->n;
    if (!t->nodes && *t->ns)
        kcache_ns_range(ks, t->ns, &first, &last);
    kcache_release(ks);
    return (long)(last - first);
}

/* == Objects selected: the objects the handler queried (its trace),
 * against the Running pods (or nodes) of the request's scope. */
static void
print_selected(struct kcache_set *kc, const struct target *t,
               const struct rtrace *tr, long status)
{
    char sels[2048], scope[300];
    size_t total = 0, shown = 0;
    selectors_text(t, sels, sizeof sels);
    out("== Objects selected (%s)", t->nodes ? "nodes" : "Running pods");
    for (size_t i = 0; i < tr->n; i++)
        if (tr->v[i].cpu)
            total += tr->v[i].nnames;
    if (total == 0 && status != 200 && !(*t->name && status == 404)) {
        out("  (none: the handler answered HTTP %ld before querying, see "
            "== Answer)", status);
    } else if (*t->name && total == 0) {
        if (t->nodes)
            out("  none: no node named %s (the handler answers 404)", t->name);
        else
            out("  none: no Running pod %s/%s (the handler answers 404)", t->ns,
                t->name);
    } else if (!*t->name) {
        long have = count_in_scope(kc, t);
        char of[64] = "";
        if (have >= 0)
            snprintf(of, sizeof of, " of %ld", have);
        if (t->nodes)
            out("  %zu%s node%s%s", total, of,
                (have >= 0 ? have : (long)total) == 1 ? "" : "s", sels);
        else
            out("  %zu%s Running pod%s in %s%s", total, of,
                (have >= 0 ? have : (long)total) == 1 ? "" : "s",
                scope_text(t, scope, sizeof scope), sels);
        if (total == 0)
            out("  (none: the handler sends no query and answers an empty "
                "list)");
    }
    for (size_t i = 0; i < tr->n; i++) {
        const struct rrec *r = &tr->v[i];
        for (size_t k = 0; r->cpu && k < r->nnames; k++, shown++) {
            if (shown >= SHOW_NAMES)
                continue;
            out("  %s%s%s", r->ns, *r->ns ? "/" : "", r->names[k]);
        }
    }
    if (shown > SHOW_NAMES)
        out("  ... and %zu more", shown - SHOW_NAMES);
}

/* == PromQL and == Raw samples: every query as the handler sent it. */
static void
print_resource_queries(const struct rtrace *tr)
{
    char title[600];
    size_t nbatch = 0, b = 0;
    for (size_t i = 0; i < tr->n; i++)
        nbatch += tr->v[i].first;
    out("== PromQL");
    if (tr->n == 0)
        out("  (no query sent)");
    for (size_t i = 0; i < tr->n; i++) {
        const struct rrec *r = &tr->v[i];
        if (r->first) {
            size_t m = 1;
            while (i + m < tr->n && !tr->v[i + m].first)
                m++;
            out("  batch %zu of %zu (%zu queries sent together):", ++b, nbatch, m);
        }
        rrec_title(r, title, sizeof title);
        if (r->promql)
            out_multiline(title, r->promql);
        else
            out("  %s: not rendered: %s", title, r->err ? r->err : "");
    }
    out("== Raw samples");
    if (tr->n == 0)
        out("  (no query sent)");
    for (size_t i = 0; i < tr->n; i++) {
        const struct rrec *r = &tr->v[i];
        rrec_title(r, title, sizeof title);
        if (!r->promql) {
            out("  %s: not sent", title);
            continue;
        }
        if (r->rc != 0) {
            out("  %s: %s", title, r->err ? r->err : "failed");
            continue;
        }
        out("  %s: %zu sample%s", title, r->nsamples, r->nsamples == 1 ? "" : "s");
        for (size_t k = 0; k < r->nshown; k++)
            out("    %s", r->shown[k]);
        if (r->nsamples > r->nshown)
            out("    ... and %zu more", r->nsamples - r->nshown);
    }
}

static bool
has_obj(const struct rrec *r, const char *name)
{
    return bsearch(&name, r->objs, r->nobjs, sizeof *r->objs, cmp_cstr) != NULL;
}

/* The memory query that went with cpu query r (same namespace, or the
 * nodes), or NULL. */
static const struct rrec *
mem_pair(const struct rtrace *tr, const struct rrec *r)
{
    for (size_t i = 0; i < tr->n; i++)
        if (!tr->v[i].cpu && tr->v[i].node == r->node && !strcmp(tr->v[i].ns, r->ns))
            return &tr->v[i];
    return NULL;
}

/* Pods of the request's scope that are not Running and match its
 * labelSelector (the fieldSelector is not applied here), from a cache of
 * the non-Running pods; each printed as "not Running". Returns how many. */
static size_t
print_not_running(struct kcache_set *kc, const struct target *t)
{
    char err[1024];
    size_t n = 0;
    struct kcache_snap *ks = kcache_acquire(kc, "", "v1", "pods",
                                            "status.phase!=Running", 15000,
                                            err, sizeof err);
    if (!ks) {
        out("  (pods that are not Running: unable to list them: %s)", err);
        return 0;
    }
    const char *ls = t->label_selector ? t->label_selector : "";
    struct selector *sel = selector_parse(ls, strlen(ls), err, sizeof err);
    size_t first = 0, last = ks->n;
    if (*t->ns)
        kcache_ns_range(ks, t->ns, &first, &last);
    for (size_t i = first; sel && i < last; i++) {
        const struct kcache_obj *o = &ks->objs[i];
        if (*t->name ? strcmp(o->name, t->name) != 0
                     : !selector_matches(sel, obj_label, (void *)o))
            continue;
        if (n++ < SHOW_NAMES)
            out("  %s/%s: not Running (metrics.k8s.io serves Running pods only)",
                o->namespace, o->name);
    }
    if (n > SHOW_NAMES)
        out("  ... and %zu more that are not Running", n - SHOW_NAMES);
    selector_free(sel);
    kcache_release(ks);
    return n;
}

/* == Objects without data: why each selected object is missing from the
 * answer, by the handler's rule (spec-rules §7.4: both queries of its
 * namespace succeeded and each has a sample for it), read from the
 * samples the handler got; and the pods left out for not Running. */
static void
print_without_data(struct kcache_set *kc, const struct target *t,
                   const struct rtrace *tr, long status)
{
    size_t n = 0, lines = 0, covered = 0;   /* objects; lines printed and
                                             * the objects they name */
    out("== Objects without data");
    for (size_t i = 0; i < tr->n; i++) {
        const struct rrec *c = &tr->v[i], *m;
        if (!c->cpu)
            continue;
        m = mem_pair(tr, c);
        const struct engine_resource_labels *lc = &tr->lab[0], *lm = &tr->lab[1];
        if (c->rc != 0 || !m || m->rc != 0) {
            const char *which = c->rc != 0 ? "cpu" : "memory";
            const char *why = c->rc != 0 ? c->err : m ? m->err : "not sent";
            n += c->nnames;
            if (lines++ >= SHOW_NAMES)
                continue;
            covered += c->nnames;
            if (c->node)
                out("  every node (%zu): the %s query failed, so the handler "
                    "answers none: %s", c->nnames, which, why ? why : "");
            else
                out("  every pod of namespace %s (%zu): the %s query failed, so "
                    "the handler leaves them out: %s", c->ns, c->nnames, which,
                    why ? why : "");
            continue;
        }
        for (size_t k = 0; k < c->nnames; k++) {
            bool hc = has_obj(c, c->names[k]), hm = has_obj(m, c->names[k]);
            if (hc && hm)
                continue;
            n++;
            if (lines++ >= SHOW_NAMES)
                continue;
            covered++;
            struct buf why;
            buf_init(&why, 4096);
            if (!hc)
                buf_addf(&why, "no cpu sample with %s=\"%s\"",
                         c->node ? lc->node : lc->pod, c->names[k]);
            if (!hm)
                buf_addf(&why, "%sno memory sample with %s=\"%s\"",
                         hc ? "" : ", ", c->node ? lm->node : lm->pod,
                         c->names[k]);
            out("  %s%s%s: %s", c->ns, *c->ns ? "/" : "", c->names[k],
                why.data ? why.data : "no sample");
            buf_free(&why);
        }
    }
    if (n > covered)
        out("  ... and %zu more without data", n - covered);
    if (!t->nodes)
        n += print_not_running(kc, t);
    if (n == 0 && *t->name && tr->n == 0 && status == 404) {
        out("  %s%s%s: not among the %s", t->ns, *t->ns ? "/" : "", t->name,
            t->nodes ? "nodes" : "pods (Running or not)");
        n++;
    }
    if (n == 0 && tr->n > 0)
        out("  (none: every selected object has data)");
    else if (n == 0)
        out("  (none)");
    if (tr->oom)
        out("  (some queries could not be recorded: out of memory)");
}

/* explain for a metrics.k8s.io path. Returns the exit code: 0 when
 * resourceRules is configured, 1 when not. */
static int
explain_resource(struct api *api, struct engine *eng,
                 const struct config_snap *cs, const char *file,
                 const char *lua_dir, const struct cache_snap *snap,
                 struct kcache_set *kc, const struct target *t,
                 const char *path)
{
    char sels[2048], scope[300], err[4096];
    struct rtrace tr;
    struct resource_trace hook = { trace_query, &tr };
    struct buf body;
    long status = 0;
    int rc;

    memset(&tr, 0, sizeof tr);
    buf_init(&body, 0);
    selectors_text(t, sels, sizeof sels);
    out("== Request");
    if (t->nodes && *t->name)
        out("  NodeMetrics of node %s", t->name);
    else if (t->nodes)
        out("  NodeMetricsList of the nodes%s", sels);
    else if (*t->name)
        out("  PodMetrics of pod %s/%s", t->ns, t->name);
    else
        out("  PodMetricsList of the Running pods in %s%s",
            scope_text(t, scope, sizeof scope), sels);

    out("== Resource rules");
    if (!engine_has(eng, "resource")) {
        out("  resourceRules is not configured in %s: this config does not "
            "serve metrics.k8s.io, and the adapter answers 404 for every "
            "metrics.k8s.io path", file);
        out("  fix: add a resourceRules section (cpu and memory, each with "
            "containerQuery, nodeQuery, resources and containerLabel; and "
            "window): rules/resource-metrics.yaml has one for kube-prometheus, "
            "docs/configuration.md describes each field; then register "
            "v1beta1.metrics.k8s.io (deploy/overlays/resource-metrics)");
        rc = ask_handler(api, path, &status, &body, err, sizeof err);
        print_answer_of(rc, status, &body, err);
        buf_free(&body);
        return 1;
    }
    if (engine_set_resources(eng, snap->resources, snap->nresources, err,
                             sizeof err) != 0)
        out("  (resource map: %s)", err);
    char window[64] = "0s";
    if (engine_resource_labels(eng, "cpu", &tr.lab[0], err, sizeof err) != 0 ||
        engine_resource_labels(eng, "memory", &tr.lab[1], err, sizeof err) != 0) {
        out("  (labels unavailable: %s)", err);
    } else {
        struct buf w;
        buf_init(&w, sizeof window - 1);
        if (quantity_go_duration(&w, tr.lab[0].window_ms) == 0 && w.data)
            snprintf(window, sizeof window, "%s", w.data);
        buf_free(&w);
    }
    print_resource_rules(cs, file, lua_dir, snap, t->nodes, window);

    /* the real handler answers while its queries are recorded */
    pthread_mutex_init(&tr.mu, NULL);
    api->resource_trace = &hook;
    rc = ask_handler(api, path, &status, &body, err, sizeof err);
    api->resource_trace = NULL;
    pthread_mutex_lock(&tr.mu);    /* the handler's writes happen before */
    pthread_mutex_unlock(&tr.mu);

    print_selected(kc, t, &tr, rc == 0 ? status : 0);
    print_resource_queries(&tr);
    print_without_data(kc, t, &tr, rc == 0 ? status : 0);
    print_answer_of(rc, status, &body, err);

    for (size_t i = 0; i < tr.n; i++)
        rrec_free(&tr.v[i]);
    free(tr.v);
    pthread_mutex_destroy(&tr.mu);
    buf_free(&body);
    return 0;
}

static const char *
find_path(int argc, char **argv)
{
    for (int i = argc - 1; i > 0; i--)
        if (!strncmp(argv[i], "/apis/", 6))
            return argv[i];
    return NULL;
}

/* Waits until the relist published the first registry of the kind. */
static struct cache_snap *
wait_listed(struct cache *c, bool external, long ms)
{
    for (long waited = 0;; waited += 100) {
        struct cache_snap *s = cache_acquire(c);
        if ((external ? s->external_listed : s->custom_listed) || waited >= ms)
            return s;
        cache_snap_release(c, s);
        struct timespec ts = { 0, 100000000L };
        nanosleep(&ts, NULL);
    }
}

int
cli_explain(int argc, char **argv, cli_make_prom make_prom)
{
    struct options o;
    char *err = malloc(ERR_MAX);
    int rc = 2;
    struct target t = {0};
    struct kube_config prom_auth = {0}, lister_cfg = {0};
    struct prom_client *prom = NULL;
    struct kube_client *kube = NULL;
    struct kcache_set *kcache = NULL;
    struct relist *relist = NULL;
    struct engine *eng = NULL, *reng = NULL;
    struct http_client *hc = NULL;
    struct config_snap *cs = NULL;
    struct config_store store;
    bool store_ok = false, cache_ok = false;
    struct cache cache;
    struct cache_snap *snap = NULL;
    struct api api;

    memset(&api, 0, sizeof api);
    int prc = parse_flags(argc, argv, &o);
    if (prc != 0 || !err) {
        rc = prc < 0 ? 0 : 2;
        goto done;
    }
    const char *path = find_path(argc, argv);
    if (!path) {
        fprintf(stderr, "Error: explain needs an API path, e.g. /apis/custom."
                "metrics.k8s.io/v1beta2/namespaces/NS/pods/*/METRIC or "
                "/apis/metrics.k8s.io/v1beta1/namespaces/NS/pods\n");
        goto done;
    }
    if (parse_target(path, &t, err, ERR_MAX) != 0) {
        fprintf(stderr, "Error: %s\n", err);
        goto done;
    }
    rc = 1;
    if (http_client_global_init() != 0 || !(hc = http_client_new(err, ERR_MAX))) {
        fprintf(stderr, "Error: unable to initialise libcurl\n");
        goto done;
    }
    prom = make_prom(&o, &prom_auth, err, ERR_MAX);
    if (!prom) {
        fprintf(stderr, "Error: unable to construct Prometheus client: %s\n", err);
        goto done;
    }
    if (!*o.config || config_snap_load(o.config, (const char *const *)o.lua_script.v,
                                       o.lua_script.n, (long)o.lua_hook_timeout_ms,
                                       &cs, err, ERR_MAX) != 0) {
        fprintf(stderr, "Error: unable to load the config: %s\n",
                *o.config ? err : "--config is required");
        goto done;
    }
    const char *lua_dir = *o.lua_dir ? o.lua_dir : NULL;
    struct engine_hooks hooks;
    config_snap_hooks(cs, &hooks);
    eng = engine_new(cs->text, cs->len, o.config, lua_dir, &hooks, false, err,
                     ERR_MAX);
    reng = eng ? engine_new(cs->text, cs->len, o.config, lua_dir, &hooks, false,
                            err, ERR_MAX) : NULL;
    if (!reng) {
        out("== Config %s is invalid", o.config);
        out("%s", err);
        goto done;
    }
    cs->has_custom = engine_has(eng, "custom");
    cs->has_external = engine_has(eng, "external");
    cs->has_resource = engine_has(eng, "resource");
    atomic_init(&api.has_custom, cs->has_custom);
    atomic_init(&api.has_external, cs->has_external);
    atomic_init(&api.has_resource, cs->has_resource);
    config_store_init(&store, cs);
    store_ok = true;
    if (kube_config_load(*o.lister_kubeconfig ? o.lister_kubeconfig : NULL,
                         &lister_cfg, err, ERR_MAX) != 0 ||
        !(kube = kube_client_new(&lister_cfg, 30000, err, ERR_MAX)) ||
        !(kcache = kcache_set_new(kube, err, ERR_MAX))) {
        fprintf(stderr, "Error: Kubernetes client: %s\n", err);
        goto done;
    }
    if (cache_init(&cache) != 0)
        goto done;
    cache_ok = true;
    int64_t max_age = o.metrics_max_age_ms ? o.metrics_max_age_ms
                                           : o.metrics_relist_interval_ms;
    struct relist_opts ro = {
        .engine = reng, .prom = prom, .kube = kube, .cache = &cache,
        .interval_ms = (long)o.metrics_relist_interval_ms,
        .max_age_ms = (long)max_age,
        .discovery_interval_ms = (long)o.discovery_interval_ms,
    };
    reng = NULL;                   /* owned by the relist, even on failure */
    relist = relist_start(&ro, err, ERR_MAX);
    if (!relist) {
        fprintf(stderr, "Error: API discovery: %s\n", err);
        goto done;
    }
    snap = t.resource_metrics ? cache_acquire(&cache)
                              : wait_listed(&cache, t.external, 60000);

    api.cache = &cache;
    api.relist = relist;
    api.prom = prom;
    api.kcache = kcache;
    api.config = &store;
    api.config_file = o.config;
    api.lua_dir = lua_dir;
    api.request_timeout_ms = o.request_timeout_ms;
    api.prom_timeout_ms = o.prometheus_timeout_ms;
    api.secure_port = o.secure_port;
    atomic_init(&api.shutting_down, false);

    if (t.resource_metrics) {
        rc = explain_resource(&api, eng, store.cur, o.config, lua_dir, snap,
                              kcache, &t, path);
        goto done;
    }
    out("== Request");
    if (t.external)
        out("  external metric %s in namespace %s%s%s", t.metric, t.ns,
            t.label_selector ? ", labelSelector " : "",
            t.label_selector ? t.label_selector : "");
    else
        out("  custom metric %s of %s%s%s %s%s%s", t.metric, t.resource,
            *t.group ? "." : "", t.group, t.name,
            *t.ns ? " in namespace " : " (cluster-scoped)", t.ns);

    double start = prom_now() - (double)max_age / 1000.0;
    const struct cache_resource *r = NULL;
    const void *entry = NULL;
    out("== Rules and series");
    if (t.external) {
        const struct cache_external *x = cache_find_external(snap, t.metric);
        if (x)
            out("  registry: %s <- series %s (externalRules[%d])", x->metric,
                x->series, x->rule - 1);
        entry = x;
    } else {
        r = cache_normalize(snap, t.resource, t.group);
        if (!r) {
            out("  resource %s%s%s is unknown to API discovery", t.resource,
                *t.group ? "." : "", t.group);
        } else {
            /* the diagnosis compares with the normalised resource */
            snprintf(t.resource, sizeof t.resource, "%s", r->resource);
            snprintf(t.group, sizeof t.group, "%s", r->group);
            const struct cache_custom *c = cache_find_custom(
                snap, r->resource, r->group, r->namespaced, t.metric);
            if (c)
                out("  registry: %s for %s%s%s <- series %s (rules[%d]; "
                    "resource label %s, namespace label %s)", c->metric,
                    c->resource, *c->group ? "." : "", c->group, c->series,
                    c->rule - 1, c->resource_label,
                    c->namespace_label ? c->namespace_label : "(none)");
            entry = c;
        }
    }
    if (!entry)
        out("  registry: no entry for this metric");
    diagnose(store.cur, o.config, lua_dir, eng, snap, &t, prom, hc, start);

    char **names = NULL;
    size_t nnames = 0;
    if (r) {
        out("== Objects selected (%s%s%s)", r->resource, *r->group ? "." : "",
            r->group);
        print_objects(kcache, r, &t, &names, &nnames);
    }
    if (entry)
        print_query(eng, snap, &t, entry, (const char *const *)names, nnames,
                    prom, hc,
                    o.prometheus_timeout_ms > 0 ? (long)o.prometheus_timeout_ms
                                                : 30000);
    engine_strv_free(names, nnames);
    print_answer(&api, path);
    rc = entry ? 0 : 1;
done:
    fflush(stdout);
    if (snap)
        cache_snap_release(&cache, snap);
    relist_stop(relist);
    kcache_set_free(kcache);
    kube_client_free(kube);
    kube_config_free(&lister_cfg);
    engine_free(eng);
    engine_free(reng);
    http_client_free(hc);
    prom_client_free(prom);
    kube_config_free(&prom_auth);
    if (cache_ok)
        cache_destroy(&cache);
    if (store_ok)
        config_store_destroy(&store);
    else
        config_snap_free(cs);
    free(t.label_selector);
    free(t.metric_selector);
    free(t.field_selector);
    free(err);
    options_free(&o);
    return rc;
}
