/* yaml.c: YAML text -> Lua node tree (see yaml.h).
 * Uses libyaml's event parser (this is its only includer) and the Lua C API.
 * Never raises a Lua error to its caller: the tree is built inside
 * lua_cpcall, so a Lua failure (memory) unwinds to us and the libyaml
 * parser, owned by this frame, is always deleted.
 *
 * Building: libyaml events drive a stack of open collections (struct frame
 * in C, the node and its items/pairs tables on the Lua stack). Anchors map
 * to their finished node table, so an alias is the same table; each anchor
 * also remembers its expanded size, and every alias adds that size to the
 * document's node count, which bounds billion-laughs style documents even
 * though nothing is copied (the Lua side walks aliases as trees). */
#define ADAPTER_YAML_LIBYAML
#include <yaml.h>
#include <lauxlib.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YAML_FILE_MAX (16u << 20)

struct frame {
    int is_map;
    int tbl;                /* stack index of the node table */
    int list;               /* stack index of its items / pairs table */
    int count;
    int key_pending;        /* a map key waits at list + 1 */
    size_t size;            /* expanded node count of the subtree */
};

struct ctx {
    const char *text;
    size_t len;
    const char *file;
    char *err;
    size_t errlen;
    int failed;             /* err is set */
    size_t total;           /* expanded nodes so far */
    int depth;
    struct frame frames[YAML_MAX_DEPTH];
    yaml_parser_t parser;
    yaml_event_t event;
    int have_event;
};

/* Registry key for handing the result out of lua_cpcall. */
static char result_key;

/* Stack slots inside build(): 1 ctx, 2 anchors, 3 anchor sizes,
 * 4 anchors still open, 5 root. */
enum { S_ANCHORS = 2, S_SIZES, S_OPEN, S_ROOT };

static int
fail_at(struct ctx *c, yaml_mark_t m, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file,
             (size_t)m.line + 1, (size_t)m.column + 1, msg);
    c->failed = 1;
    return -1;
}

static void
parser_error(struct ctx *c)
{
    yaml_parser_t *p = &c->parser;
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "syntax error";

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(c->err, c->errlen, "%s: out of memory", c->file);
        c->failed = 1;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset, not a mark */
        size_t off = p->problem_offset < c->len ? p->problem_offset : c->len;
        m.line = 0;
        m.column = 0;
        for (size_t i = 0; i < off; i++) {
            if (c->text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else {
                m.column++;
            }
        }
    }
    if (p->context)
        snprintf(c->err, c->errlen, "%s:%zu:%zu: %s (%s at line %zu, "
                 "column %zu)", c->file, (size_t)m.line + 1,
                 (size_t)m.column + 1, problem, p->context,
                 (size_t)p->context_mark.line + 1,
                 (size_t)p->context_mark.column + 1);
    else
        snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file,
                 (size_t)m.line + 1, (size_t)m.column + 1, problem);
    c->failed = 1;
}

/* stack: -> node */
static void
new_node(lua_State *L, const char *tag, yaml_mark_t m, const char *anchor,
         const char *ytag)
{
    lua_createtable(L, 0, 7);
    lua_pushstring(L, tag);
    lua_setfield(L, -2, "tag");
    lua_pushinteger(L, (lua_Integer)m.line + 1);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (lua_Integer)m.column + 1);
    lua_setfield(L, -2, "col");
    if (anchor) {
        lua_pushstring(L, anchor);
        lua_setfield(L, -2, "anchor");
    }
    if (ytag) {
        static const char std[] = "tag:yaml.org,2002:";
        if (strncmp(ytag, std, sizeof std - 1) == 0)
            lua_pushfstring(L, "!!%s", ytag + sizeof std - 1);
        else
            lua_pushstring(L, ytag);
        lua_setfield(L, -2, "ytag");
    }
}

static int
count(struct ctx *c, size_t n, yaml_mark_t m)
{
    if (n > YAML_MAX_NODES || c->total > YAML_MAX_NODES - n)
        return fail_at(c, m, "document too large: more than %s nodes once "
                       "aliases are expanded", "1000000");
    c->total += n;
    return 0;
}

/* Hands the finished node at the top of the stack (expanded size n) to
 * the open collection, or makes it the root. stack: node -> */
static void
add_node(lua_State *L, struct ctx *c, size_t n)
{
    struct frame *f;

    if (c->depth == 0) {
        lua_replace(L, S_ROOT);
        return;
    }
    f = &c->frames[c->depth - 1];
    f->size += n;
    if (!f->is_map) {
        lua_rawseti(L, f->list, ++f->count);
    } else if (!f->key_pending) {
        f->key_pending = 1;             /* stays at list + 1 */
    } else {
        lua_createtable(L, 0, 2);       /* key node pair */
        lua_insert(L, -3);              /* pair key node */
        lua_setfield(L, -3, "value");   /* pair key */
        lua_setfield(L, -2, "key");     /* pair */
        lua_rawseti(L, f->list, ++f->count);
        f->key_pending = 0;
    }
}

/* stack: node -> node (records it under its anchor, if any) */
static void
set_anchor(lua_State *L, const char *anchor, size_t size)
{
    if (!anchor)
        return;
    lua_pushvalue(L, -1);
    lua_setfield(L, S_ANCHORS, anchor);
    lua_pushnumber(L, (lua_Number)size);
    lua_setfield(L, S_SIZES, anchor);
    lua_pushnil(L);
    lua_setfield(L, S_OPEN, anchor);
}

static int
is_null(const yaml_event_t *e)
{
    const char *v = (const char *)e->data.scalar.value;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (e->data.scalar.tag)
        return strcmp((const char *)e->data.scalar.tag,
                      "tag:yaml.org,2002:null") == 0;
    if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(v, nulls[i]) == 0)
            return 1;
    return 0;
}

static const char *
style_name(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE: return "single";
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return "double";
    case YAML_LITERAL_SCALAR_STYLE: return "literal";
    case YAML_FOLDED_SCALAR_STYLE: return "folded";
    default: return "plain";
    }
}

/* One event. Returns 1 when the first document is complete, 0 to go on,
 * -1 on error (c->err set). */
static int
on_event(lua_State *L, struct ctx *c)
{
    yaml_event_t *e = &c->event;
    yaml_mark_t m = e->start_mark;

    switch (e->type) {
    case YAML_DOCUMENT_END_EVENT:
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_SCALAR_EVENT: {
        const char *anchor = (const char *)e->data.scalar.anchor;
        if (count(c, 1, m) < 0)
            return -1;
        lua_checkstack(L, 8);
        new_node(L, "scalar", m, anchor, (const char *)e->data.scalar.tag);
        lua_pushlstring(L, (const char *)e->data.scalar.value,
                        e->data.scalar.length);
        lua_setfield(L, -2, "value");
        lua_pushstring(L, style_name(e->data.scalar.style));
        lua_setfield(L, -2, "style");
        lua_pushboolean(L, is_null(e));
        lua_setfield(L, -2, "null");
        set_anchor(L, anchor, 1);
        add_node(L, c, 1);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = e->type == YAML_MAPPING_START_EVENT;
        const char *anchor = (const char *)(is_map ? e->data.mapping_start.anchor
                                            : e->data.sequence_start.anchor);
        const char *tag = (const char *)(is_map ? e->data.mapping_start.tag
                                         : e->data.sequence_start.tag);
        struct frame *f;
        if (c->depth == YAML_MAX_DEPTH)
            return fail_at(c, m, "document nested deeper than %s levels",
                           "64");
        if (count(c, 1, m) < 0)
            return -1;
        if (!lua_checkstack(L, 8))
            return fail_at(c, m, "%s", "out of Lua stack");
        new_node(L, is_map ? "map" : "seq", m, anchor, tag);
        if (anchor) {           /* an alias to it inside would be a cycle */
            lua_pushboolean(L, 1);
            lua_setfield(L, S_OPEN, anchor);
        }
        f = &c->frames[c->depth++];
        memset(f, 0, sizeof *f);
        f->is_map = is_map;
        f->tbl = lua_gettop(L);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, f->tbl, is_map ? "pairs" : "items");
        f->list = lua_gettop(L);
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame *f = &c->frames[c->depth - 1];
        size_t size = f->size + 1;
        lua_settop(L, f->tbl);
        lua_getfield(L, -1, "anchor");
        if (lua_isstring(L, -1)) {
            /* the node table keeps the string alive after the pop */
            const char *name = lua_tostring(L, -1);
            lua_pop(L, 1);
            set_anchor(L, name, size);
        } else {
            lua_pop(L, 1);
        }
        c->depth--;
        add_node(L, c, size);
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)e->data.alias.anchor;
        size_t size;
        lua_getfield(L, S_OPEN, name);
        if (lua_toboolean(L, -1))
            return fail_at(c, m, "anchor '%s' value contains itself", name);
        lua_pop(L, 1);
        lua_getfield(L, S_SIZES, name);
        if (lua_isnil(L, -1))
            return fail_at(c, m, "unknown anchor '%s' referenced", name);
        size = (size_t)lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (count(c, size, m) < 0)
            return -1;
        lua_getfield(L, S_ANCHORS, name);
        add_node(L, c, size);
        return 0;
    }
    default:
        return 0;
    }
}

/* lua_cpcall body. stack: ctx -> (result stored under &result_key) */
static int
build(lua_State *L)
{
    struct ctx *c = lua_touserdata(L, 1);
    int r = 0;

    lua_settop(L, 1);
    lua_newtable(L);        /* S_ANCHORS */
    lua_newtable(L);        /* S_SIZES */
    lua_newtable(L);        /* S_OPEN */
    lua_pushnil(L);         /* S_ROOT */
    while (r == 0) {
        if (!yaml_parser_parse(&c->parser, &c->event)) {
            parser_error(c);
            return 0;
        }
        c->have_event = 1;
        r = on_event(L, c);
        yaml_event_delete(&c->event);
        c->have_event = 0;
    }
    if (r < 0)
        return 0;
    lua_pushlightuserdata(L, &result_key);
    lua_pushvalue(L, S_ROOT);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "null");
        if (lua_toboolean(L, -1)) {     /* a null root is an empty doc */
            lua_pop(L, 2);
            lua_pushnil(L);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

int
yaml_push_tree(lua_State *L, const char *text, size_t len,
               const char *filename, char *err, size_t errlen)
{
    struct ctx *c = calloc(1, sizeof *c);
    int rc = -1;

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->text = text;
    c->len = len;
    c->file = filename ? filename : "<input>";
    c->err = err;
    c->errlen = errlen;
    if (!yaml_parser_initialize(&c->parser)) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return -1;
    }
    yaml_parser_set_input_string(&c->parser, (const unsigned char *)text,
                                 len);
    if (lua_cpcall(L, build, c) != 0) {
        snprintf(err, errlen, "%s: %s", c->file,
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "Lua error");
        lua_pop(L, 1);
        goto done;
    }
    if (c->failed)
        goto done;
    /* stack: -> tree */
    lua_pushlightuserdata(L, &result_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &result_key);
    lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
    rc = 0;
done:
    if (c->have_event)
        yaml_event_delete(&c->event);
    yaml_parser_delete(&c->parser);
    free(c);
    return rc;
}

int
yaml_push_file(lua_State *L, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (!f) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            char *p;
            if (cap >= YAML_FILE_MAX) {
                snprintf(err, errlen, "read %s: file larger than %u bytes",
                         path, YAML_FILE_MAX);
                goto done;
            }
            cap = cap ? cap * 2 : 8192;
            if (!(p = realloc(data, cap))) {
                snprintf(err, errlen, "read %s: out of memory", path);
                goto done;
            }
            data = p;
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "read %s: %s", path, strerror(errno));
                goto done;
            }
            break;
        }
    }
    rc = yaml_push_tree(L, data ? data : "", len, path, err, errlen);
done:
    free(data);
    fclose(f);
    return rc;
}
