/* yaml.h: YAML text -> Lua node tree, for the rules file.
 * Provides yaml_push_tree and yaml_push_file. Uses libyaml (yaml.c is the
 * only includer of yaml.h from libyaml) and the Lua C API.
 * Node tree (docs/architecture.md):
 *   { tag="map", line=, col=, pairs = { {key=<node>, value=<node>}, ... } }
 *   { tag="seq", line=, col=, items = { <node>, ... } }
 *   { tag="scalar", line=, col=, value="text",
 *     style="plain"|"single"|"double"|"literal"|"folded", null=bool }
 * plus ytag="!!str" etc. on nodes that carry an explicit tag, and
 * anchor="name" on anchored nodes. line/col are 1-based. Maps keep every
 * pair in source order (duplicates and "<<" merge keys included: the Lua
 * side decides). A plain scalar "", "~", "null", "Null" or "NULL" without an
 * explicit tag is null. An alias is the same Lua table as its anchor.
 * Limits: nesting deeper than 64 levels, and documents whose alias
 * expansion would exceed 1,000,000 nodes, are errors. Only the first
 * document is read. Never calls lua_error: a Lua failure (memory) is
 * caught and returned as an error. */
/* This header shares its name with libyaml's. yaml.c defines
 * ADAPTER_YAML_LIBYAML and includes <yaml.h>, which finds this file through
 * -Isrc; include_next then brings in the library's header that follows on
 * the include path. Every other file sees only the declarations below. */
#ifdef ADAPTER_YAML_LIBYAML
#include_next <yaml.h>
#endif
#ifndef ADAPTER_YAML_H
#define ADAPTER_YAML_H
#include <stddef.h>
#include <lua.h>

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 1000000

/* On success pushes the tree of the first document (nil when the stream
 * has no document or its root is a null scalar) and returns 0. On error
 * pushes nothing and returns -1 with "file:line:col: message" in err.
 * filename may be NULL ("<input>"). stack: -> tree (0) | - (-1) */
int yaml_push_tree(lua_State *L, const char *text, size_t len,
                   const char *filename, char *err, size_t errlen);

/* Reads path and calls yaml_push_tree; I/O errors read
 * "open <path>: <strerror>" / "read <path>: <strerror>". */
int yaml_push_file(lua_State *L, const char *path, char *err, size_t errlen);
#endif
