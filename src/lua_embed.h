/* lua_embed.h: the Lua modules of lua/adapter/, compiled into the binary as
 * source text by src/embed.cmake. lx.c registers them in package.preload.
 * Uses nothing; the table is static and read-only. */
#ifndef ADAPTER_LUA_EMBED_H
#define ADAPTER_LUA_EMBED_H
#include <stddef.h>

struct lua_embed {
    const char *module;    /* "adapter.engine" */
    const char *chunkname; /* "@lua/adapter/engine.lua" */
    const char *source;
    size_t len;
};

/* Terminated by an entry whose module is NULL. */
extern const struct lua_embed lua_embedded[];
#endif
