-- spec/ffi_core.lua: build/lua/adapter/core.so (which links the whole core
-- library) loaded once through LuaJIT FFI, with the declarations several
-- specs share. ffi.cdef is global to the process that runs every spec, so a
-- type declared twice with different names breaks whichever spec loads
-- second: shared types live here, each spec declares only its own
-- functions.
local ffi = require "ffi"
local helpers = require "helpers"

ffi.cdef [[
struct buf { char *data; size_t len; size_t cap; size_t max; };
void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
]]

local M = { lib = ffi.load(helpers.core_so()) }

-- Runs fn(b) with a fresh buffer; fn must return 0. Returns the bytes.
function M.with_buf(fn)
    local b = ffi.new("struct buf")
    M.lib.buf_init(b, 16777216)
    local rc = fn(b)
    local s = ffi.string(b.data, b.len)
    M.lib.buf_free(b)
    assert(rc == 0, "call failed")
    return s
end

return M
