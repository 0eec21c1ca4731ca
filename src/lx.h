/* lx.h: the LuaJIT bridge.
 * Provides lx_new (a fresh lua_State with the standard libraries, the
 * embedded lua/adapter modules in package.preload, or --lua-dir on
 * package.path instead, and adapter.core preloaded), lx_pcall (every C->Lua
 * call goes through it: traceback handler, error copied out), lx_free, and
 * luaopen_adapter_core (lx_core.c).
 * Uses LuaJIT and src/lua_embed.h. A lua_State belongs to one thread for
 * its whole life: never share one, nor refs taken in one, across threads.
 * Never uses lua_call: an error must never unwind through C frames that
 * own memory. */
#ifndef ADAPTER_LX_H
#define ADAPTER_LX_H
#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>

/* lua_dir: NULL to use the embedded modules; otherwise a directory such as
 * "lua" whose "<lua_dir>/?.lua" is put first on package.path (development:
 * the working tree wins over the embedded copy, which is not registered).
 * Returns NULL with err on failure. */
lua_State *lx_new(const char *lua_dir, char *err, size_t errlen);

/* Calls the function below its nargs arguments on the stack, like
 * lua_pcall(L, nargs, nresults, handler) with a traceback handler.
 * stack: f a1..an -> r1..rn (0) | nothing (-1, message+traceback in err). */
int lx_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen);

void lx_free(lua_State *L);

/* The adapter.core module (lx_core.c): stack: -> module table. */
int luaopen_adapter_core(lua_State *L);
#endif
