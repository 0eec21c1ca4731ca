/* lx.c: LuaJIT states for the adapter (see lx.h).
 * Uses LuaJIT, lua_embed.h (the generated table of lua/adapter modules)
 * and lx_core.c (luaopen_adapter_core). A state is created, used and freed
 * by one thread. Never calls lua_call: everything that can raise runs under
 * lua_pcall/lua_cpcall. */
#include "lx.h"
#include "lua_embed.h"
#include <lualib.h>
#include <stdio.h>
#include <string.h>

/* package.preload loader of one embedded module; upvalue 1 is its struct
 * lua_embed (lightuserdata, static data). stack: name -> module value */
static int
l_embedded_loader(lua_State *L)
{
    const struct lua_embed *m = lua_touserdata(L, lua_upvalueindex(1));

    if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) != 0)
        return lua_error(L);
    lua_pushstring(L, m->module);
    lua_call(L, 1, 1);      /* inside require's own protected call */
    return 1;
}

/* lua_cpcall body: opens the libraries and fills package.preload/path.
 * stack: lua_dir (lightuserdata, may be NULL) -> */
static int
l_setup(lua_State *L)
{
    const char *lua_dir = lua_touserdata(L, 1);

    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");             /* package preload */
    lua_pushcfunction(L, (lua_CFunction)luaopen_adapter_core);
    lua_setfield(L, -2, "adapter.core");
    if (lua_dir) {
        /* development: the working tree replaces the embedded copy */
        lua_getfield(L, -2, "path");
        lua_pushfstring(L, "%s/?.lua;%s", lua_dir, lua_tostring(L, -1));
        lua_setfield(L, -4, "path");
        lua_pop(L, 1);
    } else {
        for (const struct lua_embed *m = lua_embedded; m->module; m++) {
            lua_pushlightuserdata(L, (void *)m);
            lua_pushcclosure(L, l_embedded_loader, 1);
            lua_setfield(L, -2, m->module);
        }
    }
    lua_pop(L, 2);
    return 0;
}

lua_State *
lx_new(const char *lua_dir, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();

    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state (out of memory)");
        return NULL;
    }
    if (lua_cpcall(L, l_setup, (void *)lua_dir) != 0) {
        snprintf(err, errlen, "lua setup: %s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Message handler: the error plus a traceback. stack: msg -> msg' */
static int
l_traceback(lua_State *L)
{
    if (!lua_isstring(L, 1)) {
        /* a non-string error: say what it was rather than "nil" */
        if (!luaL_callmeta(L, 1, "__tostring") || !lua_isstring(L, -1))
            lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

int
lx_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen)
{
    int base = lua_gettop(L) - nargs;   /* the function's index */
    int rc;

    lua_pushcfunction(L, l_traceback);
    lua_insert(L, base);                /* handler f a1..an */
    rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != 0) {
        snprintf(err, errlen, "%s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1)
                 : rc == LUA_ERRMEM ? "out of memory" : "Lua error");
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

void
lx_free(lua_State *L)
{
    if (L)
        lua_close(L);
}
