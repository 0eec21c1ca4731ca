/* core_so.c: the translation unit of build/lua/adapter/core.so. The module's
 * code (luaopen_adapter_core in lx_core.c and what it calls) comes from the
 * adapter_core archive, linked whole; this file only gives CMake a source.
 * LuaJIT's own symbols are resolved from the host interpreter at load. */
extern int luaopen_adapter_core(void *L);
int (*const adapter_core_entry)(void *) = luaopen_adapter_core;
