-- spec/core/format_spec.lua: the response formatting leaves, called through
-- LuaJIT FFI on build/lua/adapter/core.so (which links the whole core
-- library): quantities and durations (src/quantity.c, spec-rules.md §6.3,
-- spec-server.md §4.1), the JSON writer's Go escaping and indentation
-- (src/jsonw.c, spec-server.md §4.6) and Accept negotiation
-- (src/httputil.c, spec-server.md §5.2).
local ffi = require "ffi"
local core = require "ffi_core"

ffi.cdef [[
int quantity_decimal_si(struct buf *b, int64_t milli);
int quantity_binary_si(struct buf *b, int64_t milli);
int64_t quantity_milli(double v);
int quantity_go_duration(struct buf *b, int64_t ms);
int quantity_rfc3339(struct buf *b, double epoch);
struct jsonw;
struct jsonw *jsonw_new(size_t max_bytes);
void jsonw_free(struct jsonw *w);
int jsonw_map_open(struct jsonw *w);
int jsonw_map_close(struct jsonw *w);
int jsonw_array_open(struct jsonw *w);
int jsonw_array_close(struct jsonw *w);
int jsonw_key(struct jsonw *w, const char *key);
int jsonw_string(struct jsonw *w, const char *s);
int jsonw_stringn(struct jsonw *w, const char *s, size_t len);
int jsonw_int(struct jsonw *w, long long v);
int jsonw_bool(struct jsonw *w, bool v);
int jsonw_null(struct jsonw *w);
int buf_add(struct buf *b, const void *p, size_t n);
int jsonw_raw(struct jsonw *w, const char *json, size_t len);
int jsonw_finish(struct jsonw *w, struct buf *out, bool pretty, char *err, size_t errlen);
bool httputil_accept_json(const char *accept, bool *pretty);
]]

local lib, with_buf = core.lib, core.with_buf

local function decimal(v) return with_buf(function(b) return lib.quantity_decimal_si(b, lib.quantity_milli(v)) end) end
local function binary(v) return with_buf(function(b) return lib.quantity_binary_si(b, lib.quantity_milli(v)) end) end

describe("quantities", function()
    it("formats DecimalSI as Kubernetes does (truncated milli units)", function()
        local cases = {
            { 0.016, "16m" }, { 0.0165, "16m" }, { 0.1, "100m" }, { 0.12, "120m" },
            { 1, "1" }, { 1.005, "1004m" }, { 20.5, "20500m" }, { 1500, "1500" },
            { 1000, "1k" }, { 1234000, "1234k" }, { -0.016, "-16m" }, { 0.0001, "0" },
            { 0, "0" }, { 0.066, "66m" }, { 10.5, "10500m" }, { 1234.5678, "1234567m" },
            { 2000, "2k" }, { 1e6, "1M" }, { 2.5e9, "2500M" }, { -0.5, "-500m" }, { 1.001, "1" },
        }
        for _, c in ipairs(cases) do
            assert.are.equal(c[2], decimal(c[1]), "value " .. c[1])
        end
    end)

    it("formats BinarySI, falling back to DecimalSI for small or fractional values", function()
        local cases = {
            { 0, "0" }, { 512, "512" }, { 1000.5, "1000500m" }, { 1024, "1Ki" },
            { 1536, "1536" }, { 7208960, "7040Ki" }, { 104857600, "100Mi" },
            { 123456789, "123456789" }, { 1073741824, "1Gi" }, { 3758096384, "3584Mi" },
            { 1000000000, "1000000000" }, { 2100, "2100" }, { 1023, "1023" }, { 3221225472, "3Gi" },
        }
        for _, c in ipairs(cases) do
            assert.are.equal(c[2], binary(c[1]), "bytes " .. c[1])
        end
    end)

    it("maps NaN to 0 and saturates infinities and huge values (decisions #9, #10)", function()
        assert.are.equal("0", decimal(0 / 0))
        assert.are.equal(lib.quantity_milli(1 / 0), lib.quantity_milli(1e300))
        assert.is_true(lib.quantity_milli(1 / 0) > 0)
        assert.is_true(lib.quantity_milli(-1 / 0) < 0)
        assert.are.equal("9223372036854775807m", decimal(1 / 0))
        assert.are.equal("-9223372036854775808m", decimal(-1 / 0))
    end)

    it("writes Go durations and RFC 3339 seconds", function()
        local function dur(ms) return with_buf(function(b) return lib.quantity_go_duration(b, ms) end) end
        assert.are.equal("5m0s", dur(300000))
        assert.are.equal("1m30s", dur(90000))
        assert.are.equal("1h0m0s", dur(3600000))
        assert.are.equal("30s", dur(30000))
        assert.are.equal("0s", dur(0))
        assert.are.equal("1.5s", dur(1500))
        assert.are.equal("500ms", dur(500))
        local t = with_buf(function(b) return lib.quantity_rfc3339(b, 1715851267.999) end)
        assert.are.equal("2024-05-16T09:21:07Z", t)
    end)
end)

describe("JSON writer", function()
    local function doc(build, pretty)
        local w = lib.jsonw_new(0)
        build(w)
        local err = ffi.new("char[256]")
        local s = with_buf(function(b) return lib.jsonw_finish(w, b, pretty or false, err, 256) end)
        lib.jsonw_free(w)
        return s
    end

    it("writes compact JSON with one trailing newline and Go's HTML-safe escapes", function()
        local s = doc(function(w)
            lib.jsonw_map_open(w)
            lib.jsonw_key(w, "a<b>")
            lib.jsonw_string(w, "x&y \"q\" \\ \n \27 \226\128\168 \226\128\169 é")
            lib.jsonw_key(w, "n")
            lib.jsonw_int(w, -12)
            lib.jsonw_key(w, "raw")
            local raw = '{"k": [1, 2]}'
            lib.jsonw_raw(w, raw, #raw)
            lib.jsonw_map_close(w)
        end)
        assert.are.equal('{"a\\u003cb\\u003e":"x\\u0026y \\"q\\" \\\\ \\n \\u001b \\u2028 \\u2029 é",'
            .. '"n":-12,"raw":{"k":[1,2]}}\n', s)
    end)

    it("indents like Go's json.Indent, keeping empty objects and arrays on one line", function()
        local s = doc(function(w)
            lib.jsonw_map_open(w)
            lib.jsonw_key(w, "metadata"); lib.jsonw_map_open(w); lib.jsonw_map_close(w)
            lib.jsonw_key(w, "items"); lib.jsonw_array_open(w)
            lib.jsonw_string(w, "a:b,c"); lib.jsonw_int(w, 1)
            lib.jsonw_array_close(w)
            lib.jsonw_key(w, "none"); lib.jsonw_array_open(w); lib.jsonw_array_close(w)
            lib.jsonw_map_close(w)
        end, true)
        assert.are.equal('{\n  "metadata": {},\n  "items": [\n    "a:b,c",\n    1\n  ],\n  "none": []\n}', s)
    end)

    it("copies long plain runs unchanged", function()
        local long = string.rep("pod-0123456789", 5000)
        local s = doc(function(w)
            lib.jsonw_array_open(w)
            lib.jsonw_string(w, long)
            lib.jsonw_string(w, long .. "&")
            lib.jsonw_array_close(w)
        end)
        assert.are.equal('["' .. long .. '","' .. long .. '\\u0026"]\n', s)
    end)
end)

describe("JSON writer against Go's rules", function()
    -- Go's encoding/json (escapeHTML on) for one byte string, written out
    -- here independently of src/jsonw.c: short escapes for \" \\ \b \f \n
    -- \r \t, \u00xx (lower-case) for other controls and < > &, \u2028 and
    -- \u2029, \ufffd for each byte that is not valid UTF-8, the rest as is.
    local valid_utf8 = require("robust_helpers").valid_utf8
    local function go_string(s)
        local out, i = { '"' }, 1
        local short = { [34] = '\\"', [92] = '\\\\', [8] = '\\b', [12] = '\\f',
                        [10] = '\\n', [13] = '\\r', [9] = '\\t' }
        while i <= #s do
            local c = s:byte(i)
            if short[c] then out[#out + 1] = short[c]; i = i + 1
            elseif c < 0x20 or c == 60 or c == 62 or c == 38 then
                out[#out + 1] = string.format("\\u%04x", c); i = i + 1
            elseif c < 0x80 then out[#out + 1] = string.char(c); i = i + 1
            else
                -- the sequence its lead byte announces, if it is valid
                local n = (c >= 0xF0 and 4) or (c >= 0xE0 and 3) or 2
                local seq = s:sub(i, i + n - 1)
                if #seq == n and valid_utf8(seq) then
                    if seq == "\226\128\168" then out[#out + 1] = "\\u2028"
                    elseif seq == "\226\128\169" then out[#out + 1] = "\\u2029"
                    else out[#out + 1] = seq end
                    i = i + n
                else
                    out[#out + 1] = "\\ufffd"; i = i + 1
                end
            end
        end
        out[#out + 1] = '"'
        return table.concat(out)
    end

    local function value(s)
        local w = lib.jsonw_new(0)
        lib.jsonw_stringn(w, s, #s)
        local err = ffi.new("char[256]")
        local out = with_buf(function(b) return lib.jsonw_finish(w, b, false, err, 256) end)
        lib.jsonw_free(w)
        return out:sub(1, -2)
    end

    it("escapes every byte as Go does, alone and between plain runs", function()
        for c = 0, 255 do
            local s = string.char(c)
            assert.are.equal(go_string(s), value(s), "byte " .. c)
            s = "ab" .. string.char(c) .. "cd"
            assert.are.equal(go_string(s), value(s), "byte " .. c .. " inside")
        end
    end)

    it("writes \\ufffd per invalid byte and keeps valid sequences", function()
        for _, s in ipairs({ "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xE2\x82",
                             "\xE2\x82\xAC\xF0\x9F\x98\x80", "\xE2\x80\xA8x\xE2\x80\xA9",
                             "\xFF\xFE", "\xC3\xA9\xC3" }) do
            assert.are.equal(go_string(s), value(s))
        end
        assert.are.equal('"\\ufffd\\ufffd"', value("\xC0\xAF"))
        assert.are.equal('"€😀"', value("\xE2\x82\xAC\xF0\x9F\x98\x80"))
    end)

    it("writes integers, booleans and null", function()
        local w = lib.jsonw_new(0)
        lib.jsonw_array_open(w)
        for _, v in ipairs({ 0, 7, -1, 1234567890123 }) do lib.jsonw_int(w, v) end
        lib.jsonw_int(w, ffi.new("long long", -9223372036854775807LL) - 1)
        lib.jsonw_int(w, 9223372036854775807LL)
        lib.jsonw_bool(w, true); lib.jsonw_bool(w, false); lib.jsonw_null(w)
        lib.jsonw_string(w, nil)
        lib.jsonw_array_close(w)
        local err = ffi.new("char[256]")
        local out = with_buf(function(b) return lib.jsonw_finish(w, b, false, err, 256) end)
        lib.jsonw_free(w)
        assert.are.equal("[0,7,-1,1234567890123,-9223372036854775808,9223372036854775807,"
            .. "true,false,null,null]\n", out)
    end)

    it("compacts raw splices as Go's json.Compact with HTML escaping", function()
        local w = lib.jsonw_new(0)
        local raw = ' { "a" : [ 1 , "x <y> & z" ] ,\n "b\\u00E9":"\\"q\\" \226\128\168" } '
        lib.jsonw_raw(w, raw, #raw)
        local err = ffi.new("char[256]")
        local out = with_buf(function(b) return lib.jsonw_finish(w, b, false, err, 256) end)
        lib.jsonw_free(w)
        assert.are.equal('{"a":[1,"x \\u003cy\\u003e \\u0026 z"],"b\\u00e9":"\\"q\\" \\u2028"}\n', out)
    end)

    -- Each builder misuses the writer; finish must fail with the message.
    local function finish_error(build, max)
        local w = lib.jsonw_new(max or 0)
        build(w)
        local err = ffi.new("char[256]")
        local b = ffi.new("struct buf")
        lib.buf_init(b, 16777216)
        local rc = lib.jsonw_finish(w, b, false, err, 256)
        lib.buf_free(b)
        -- the writer is reusable afterwards
        lib.jsonw_map_open(w); lib.jsonw_map_close(w)
        local again = with_buf(function(b2) return lib.jsonw_finish(w, b2, false, err, 256) end)
        lib.jsonw_free(w)
        assert.are.equal("{}\n", again)
        return rc, ffi.string(err)
    end

    it("refuses documents yajl's generator refused, and stays reusable", function()
        local cases = {
            { function(w) end, "json: empty document" },
            { function(w) lib.jsonw_map_open(w) end, "json: incomplete document" },
            { function(w) lib.jsonw_map_open(w); lib.jsonw_int(w, 1) end, "json: invalid document structure" },
            { function(w) lib.jsonw_array_open(w); lib.jsonw_key(w, "k") end, "json: invalid document structure" },
            { function(w) lib.jsonw_map_open(w); lib.jsonw_key(w, "k"); lib.jsonw_map_close(w) end,
              "json: invalid document structure" },
            { function(w) lib.jsonw_map_open(w); lib.jsonw_array_close(w) end, "json: invalid document structure" },
            { function(w) lib.jsonw_int(w, 1); lib.jsonw_int(w, 2) end, "json: invalid document structure" },
            { function(w) lib.jsonw_array_open(w); lib.jsonw_raw(w, '"open', 5); lib.jsonw_array_close(w) end,
              "json: invalid document structure" },
            { function(w) for _ = 1, 100 do lib.jsonw_array_open(w) end end, "json: invalid document structure" },
            { function(w) lib.jsonw_array_open(w); lib.jsonw_string(w, string.rep("x", 100)); lib.jsonw_array_close(w) end,
              "json: output too large or out of memory", 64 },
        }
        for i, c in ipairs(cases) do
            local rc, err = finish_error(c[1], c[3])
            assert.are.equal(-1, rc, "case " .. i)
            assert.are.equal(c[2], err, "case " .. i)
        end
    end)

    it("appends to a buffer that has content, and respects its limit", function()
        local function build()
            local w = lib.jsonw_new(0)
            lib.jsonw_array_open(w); lib.jsonw_int(w, 1); lib.jsonw_array_close(w)
            return w
        end
        local err = ffi.new("char[256]")
        local w = build()
        local out = with_buf(function(b)
            lib.buf_add(b, "x", 1)
            return lib.jsonw_finish(w, b, false, err, 256)
        end)
        assert.are.equal("x[1]\n", out)
        lib.jsonw_free(w)
        w = build()
        local b = ffi.new("struct buf")
        lib.buf_init(b, 3)
        assert.are.equal(-1, lib.jsonw_finish(w, b, false, err, 256))
        assert.are.equal(0, tonumber(b.len))
        lib.buf_free(b)
        lib.jsonw_free(w)
    end)
end)

describe("Accept negotiation", function()
    local function ok(accept)
        local p = ffi.new("bool[1]")
        return lib.httputil_accept_json(accept, p)
    end
    it("answers JSON to every client of spec-server.md §5.1", function()
        assert.is_true(ok(nil))
        assert.is_true(ok(""))
        assert.is_true(ok("application/vnd.kubernetes.protobuf, */*"))
        assert.is_true(ok("application/json, */*"))
        assert.is_true(ok("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"))
        assert.is_true(ok("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"))
    end)
    it("refuses what it cannot serve (406)", function()
        assert.is_false(ok("application/vnd.kubernetes.protobuf"))
        assert.is_false(ok("text/html"))
        assert.is_false(ok("application/json;as=Table;v=v1;g=meta.k8s.io"))
    end)
end)
