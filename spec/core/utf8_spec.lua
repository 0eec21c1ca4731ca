-- spec/core/utf8_spec.lua: src/utf8.c (the repair of invalid UTF-8 that
-- prom.c and kube.c apply to decoded JSON strings) through LuaJIT FFI on
-- build/lua/adapter/core.so, against a reference written here from Go's
-- utf8.DecodeRune: a byte that does not start a valid sequence (no
-- overlongs, no surrogates, nothing above U+10FFFF, not cut short) is one
-- U+FFFD; every valid sequence is copied.
-- Uses: ffi.
local ffi = require "ffi"

ffi.cdef [[
size_t utf8_valid_prefix(const char *s, size_t n);
size_t utf8_repair(const char *s, size_t n, char *out);
char *utf8_repair_dup(const char *s, size_t n, size_t *outlen);
]]
pcall(ffi.cdef, "void free(void *p);")   -- another spec may have declared it

local helpers = require "helpers"
local lib = ffi.load(helpers.core_so())
local R = "\239\191\189"

-- Go's utf8.DecodeRune width at byte i of s, 0 when it returns (RuneError, 1)
-- for a byte that is not ASCII.
local function width(s, i)
    local c = s:byte(i)
    if c < 0x80 then return 1 end
    local w, lo, hi = 0, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then w = 2
    elseif c >= 0xE0 and c <= 0xEF then
        w = 3
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
        w = 4
        if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else return 0 end
    if i + w - 1 > #s then return 0 end
    local b = s:byte(i + 1)
    if b < lo or b > hi then return 0 end
    for k = 2, w - 1 do
        b = s:byte(i + k)
        if b < 0x80 or b > 0xBF then return 0 end
    end
    return w
end

local function reference(s)
    local out, i, prefix = {}, 1, nil
    while i <= #s do
        local w = width(s, i)
        if w == 0 then
            prefix = prefix or i - 1
            out[#out + 1] = R
            i = i + 1
        else
            out[#out + 1] = s:sub(i, i + w - 1)
            i = i + w
        end
    end
    return table.concat(out), prefix or #s
end

local function repair(s)
    local buf = ffi.new("char[?]", #s * 3 + 1)
    local n = lib.utf8_repair(s, #s, buf)
    local len = ffi.new("size_t[1]")
    local d = lib.utf8_repair_dup(s, #s, len)
    assert(d ~= nil)
    local dup = ffi.string(d, len[0])
    assert.are.equal(0, d[len[0]])           -- NUL-terminated
    ffi.C.free(d)
    return ffi.string(buf, n), dup, tonumber(lib.utf8_valid_prefix(s, #s))
end

describe("utf8.c", function()
    it("replaces each byte Go's DecodeRune rejects with one U+FFFD", function()
        for _, c in ipairs {
            { "", "" },
            { "plain ascii, longer than eight bytes", "plain ascii, longer than eight bytes" },
            { "a\255\254b", "a" .. R .. R .. "b" },
            { "\192\175", R .. R },                       -- overlong "/"
            { "\224\128\128", R .. R .. R },              -- overlong NUL
            { "\237\160\128", R .. R .. R },              -- surrogate
            { "\244\144\128\128", R .. R .. R .. R },     -- above U+10FFFF
            { "x\226\130", "x" .. R .. R },               -- cut short
            { "\240\159\152y", R .. R .. R .. "y" },
            { "\128\191", R .. R },                       -- continuation bytes
            { "é€😀" .. R, "é€😀" .. R },               -- valid, kept
            { "01234567\255", "01234567" .. R },          -- after a full word
            { "0123456\226\130\172", "0123456€" },        -- a sequence across words
        } do
            local got, dup = repair(c[1])
            assert.are.equal(c[2], got)
            assert.are.equal(c[2], dup)
        end
    end)

    it("agrees with the reference on random bytes, the valid prefix included", function()
        math.randomseed(42)
        local pool = { 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xA0, 0xED,
            0x9F, 0xEF, 0xF0, 0x90, 0xF4, 0x8F, 0xF5, 0xFF }
        for _ = 1, 3000 do
            local t = {}
            for k = 1, math.random(0, 24) do
                t[k] = math.random() < 0.6 and pool[math.random(#pool)] or math.random(0, 255)
            end
            local s = string.char(unpack(t))
            local want, prefix = reference(s)
            local got, dup, p = repair(s)
            assert.are.equal(want, got)
            assert.are.equal(want, dup)
            assert.are.equal(prefix, p)
        end
    end)
end)
