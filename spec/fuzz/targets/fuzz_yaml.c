/* fuzz_yaml.c: libFuzzer target for the YAML loader (yaml.c: libyaml
 * events -> Lua node tree, depth and alias-expansion limits). One
 * lua_State serves the whole run; every input must leave its stack as it
 * found it (one tree, or nothing on error).
 * Uses: yaml.h, LuaJIT. */
#include <stdint.h>
#include <stdlib.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "yaml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!(L = luaL_newstate()))
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    int top = lua_gettop(L);

    err[0] = '\0';
    if (yaml_push_tree(L, (const char *)data, size, "fuzz.yaml", err,
                       sizeof err) == 0) {
        if (lua_gettop(L) != top + 1)
            abort();
        if (!lua_isnil(L, -1) && !lua_istable(L, -1))
            abort();
    } else if (lua_gettop(L) != top || !err[0]) {
        abort();
    }
    lua_settop(L, top);
    /* the trees are garbage now: collect them so memory stays flat */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
