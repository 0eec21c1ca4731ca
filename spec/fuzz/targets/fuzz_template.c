/* fuzz_template.c: libFuzzer target for the template renderer
 * (lua/adapter/template.lua, the embedded copy, through lx). The input is
 * a template text, optionally followed by "\n--\n" and a string that is
 * used as the label values of the data. The template is compiled and,
 * when it compiles, executed over PA's queryTemplateArgs-shaped data.
 * Oracle: compile and execute return (value) or (nil, message); a Lua
 * error raised out of either is a bug in the renderer and aborts.
 * Uses: lx.h (LuaJIT). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lx.h"
#include "fake_http.h"   /* fake_http_find only */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char driver[] =
    "local template = require 'adapter.template'\n"
    "return function(text, value)\n"
    "  local t, err = template.compile(text, 'fuzz')\n"
    "  if t == nil then\n"
    "    assert(type(err) == 'string', 'compile: no message')\n"
    "    return\n"
    "  end\n"
    "  local data = template.struct('queryTemplateArgs',\n"
    "    { 'Series', 'LabelMatchers', 'GroupBy', 'GroupBySlice',\n"
    "      'LabelValuesByName' },\n"
    "    { Series = value, LabelMatchers = 'namespace=\"' .. value .. '\"',\n"
    "      GroupBy = 'pod', GroupBySlice = template.list({ 'pod', value }),\n"
    "      LabelValuesByName = template.map({ pod = value, namespace = 'ns' }) })\n"
    "  local s, err2 = t:execute(data)\n"
    "  if s == nil then\n"
    "    assert(type(err2) == 'string', 'execute: no message')\n"
    "  else\n"
    "    assert(type(s) == 'string', 'execute: not a string')\n"
    "  end\n"
    "end\n";

static lua_State *L;
static int driver_ref;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024];

    (void)argc;
    (void)argv;
    if (!(L = lx_new(NULL, err, sizeof err))) {
        fprintf(stderr, "lx_new: %s\n", err);
        abort();
    }
    if (luaL_loadbuffer(L, driver, sizeof driver - 1, "=fuzz_template") != 0
        || lx_pcall(L, 0, 1, err, sizeof err) != 0) {
        fprintf(stderr, "driver: %s\n", err);
        abort();
    }
    driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[8192];
    const uint8_t *sep = fake_http_find(data, size, "\n--\n", 4);
    size_t tlen = sep ? (size_t)(sep - data) : size;
    int top = lua_gettop(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
    lua_pushlstring(L, (const char *)data, tlen);
    if (sep)
        lua_pushlstring(L, (const char *)sep + 4, size - tlen - 4);
    else
        lua_pushliteral(L, "web-0");
    if (lx_pcall(L, 2, 0, err, sizeof err) != 0) {
        fprintf(stderr, "template raised: %s\n", err);
        abort();
    }
    if (lua_gettop(L) != top)
        abort();
    /* a full collection: C buffers owned by Lua userdata (core.goquote's
     * box) are freed by __gc only, and LeakSanitizer cannot see pointers
     * held in LuaJIT's own mmap'd heap, so anything left uncollected
     * would read as a leak */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
