-- spec/core/prom_spec.lua: the Prometheus client (src/prom.c) through
-- LuaJIT FFI on build/lua/adapter/core.so (which links the whole core
-- library): time and duration formats, header canonicalisation, the wire
-- form of requests (spec-server.md §9.1), and response handling against
-- the fake Prometheus (§9.2: status codes, API errors, bad JSON, result
-- types, series reduced to shapes, invalid UTF-8 read as Go reads it),
-- coalescing counters and the cache.
-- Uses: spec/helpers.lua (the fake), ffi, spec/ffi_prom.lua (the cdefs).
local ffi = require "ffi"
local helpers = require "helpers"
local cjson = require "cjson"

require "ffi_prom"   -- the cdefs of prom.h and http_client.h

local lib = ffi.load(helpers.core_so())
lib.http_client_global_init()

local PROM_VECTOR, PROM_SCALAR, PROM_MATRIX = 0, 1, 2

local function client(o)
    local err = ffi.new("char[1024]")
    local keep = {}
    local po = ffi.new("struct prom_options")
    po.url = o.url
    po.verb = o.verb
    if o.headers then
        local arr = ffi.new("const char *[?]", #o.headers + 1)
        for i, h in ipairs(o.headers) do arr[i - 1] = h end
        keep[#keep + 1] = arr
        po.headers = arr
    end
    po.token_file = o.token_file
    po.timeout_ms = o.timeout_ms or 0
    po.max_get_length = o.max_get_length or 0
    po.query_cache_ttl_ms = o.cache_ttl_ms or 0
    local p = lib.prom_client_new(po, err, 1024)
    if p == nil then return nil, ffi.string(err) end
    return ffi.gc(p, lib.prom_client_free)
end

local function wire(p, endpoint, kv)
    local arr = ffi.new("const char *[?]", #kv + 1)
    for i, s in ipairs(kv) do arr[i - 1] = s end
    local w = ffi.new("struct prom_wire")
    local err = ffi.new("char[256]")
    assert(lib.prom_build_request(p, endpoint, arr, w, err, 256) == 0, ffi.string(err))
    local out = { method = ffi.string(w.method), url = ffi.string(w.url),
        body = w.body ~= nil and ffi.string(w.body, w.body_len) or nil }
    lib.prom_wire_free(w)
    return out
end

describe("prom.c", function()
    describe("formats", function()
        local function ftime(t)
            local b = ffi.new("char[64]")
            assert(lib.prom_format_time(t, b, 64) == 0)
            return ffi.string(b)
        end
        local function fdur(s)
            local b = ffi.new("char[64]")
            assert(lib.prom_format_duration(s, b, 64) == 0)
            return ffi.string(b)
        end

        it("formats times with up to 3 decimals and no trailing zeros", function()
            assert.equal("1715851267.123", ftime(1715851267.123))
            assert.equal("1715851267.1", ftime(1715851267.1))
            assert.equal("1715851267.12", ftime(1715851267.12))
            assert.equal("1715851267", ftime(1715851267))
            assert.equal("-1.5", ftime(-1.5))
        end)

        it("formats durations Prometheus parses", function()
            assert.equal("59s", fdur(59))
            assert.equal("59500ms", fdur(59.5))
            assert.equal("1ms", fdur(0))
            assert.equal("30s", fdur(30))
        end)

        it("canonicalises header names as Go does", function()
            local function canon(s)
                local b = ffi.new("char[128]")
                lib.prom_canonical_header(s, #s, b, 128)
                return ffi.string(b)
            end
            assert.equal("X-Scope-Orgid", canon("x-scope-orgid"))
            assert.equal("Authorization", canon("AUTHORIZATION"))
            assert.equal("X Bad", canon("X Bad"))   -- not a token: unchanged
        end)
    end)

    describe("wire form", function()
        it("joins the base path cleanly and sorts form-encoded parameters", function()
            local p = assert(client { url = "http://h:9090/prefix//./x/../" })
            local w = wire(p, "/api/v1/query", { "time", "1.5", "query", "up{a=\"b c\"}" })
            assert.equal("GET", w.method)
            assert.equal("http://h:9090/prefix/api/v1/query?query=up%7Ba%3D%22b+c%22%7D&time=1.5", w.url)
            assert.is_nil(w.body)
        end)

        it("keeps the base query string, and puts parameters in the body for POST", function()
            local p = assert(client { url = "https://u:p@h/?org=1", verb = "POST" })
            local w = wire(p, "/api/v1/series", { "match[]", "up", "start", "2" })
            assert.equal("POST", w.method)
            assert.equal("https://h/api/v1/series?org=1", w.url)   -- user-info not in the URL
            assert.equal("match%5B%5D=up&start=2", w.body)
        end)

        it("switches to POST only past max_get_length", function()
            local p = assert(client { url = "http://h", max_get_length = 40 })
            -- "http://h/api/v1/query?query=aaaa&time=1" is 39 bytes
            assert.equal("GET", wire(p, "/api/v1/query", { "query", "aaaa", "time", "1" }).method)
            assert.equal("GET", wire(p, "/api/v1/query", { "query", "aaaaa", "time", "1" }).method)
            local w = wire(p, "/api/v1/query", { "query", "aaaaaa", "time", "1" })
            assert.equal("POST", w.method)
            assert.equal("query=aaaaaa&time=1", w.body)
        end)

        it("rejects a bad verb and an unreadable token file at construction", function()
            local p, err = client { url = "http://h", verb = "get" }
            assert.is_nil(p)
            assert.equal('unsupported Prometheus HTTP verb "get"; supported verbs: "GET" and "POST"', err)
            p, err = client { url = "http://h", token_file = "/nonexistent" }
            assert.is_nil(p)
            assert.equal("failed to read prometheus-token-file: open /nonexistent: no such file or directory", err)
        end)
    end)

    describe("responses", function()
        local prom, hc, p
        local herr = ffi.new("char[256]")

        setup(function()
            prom = helpers.start_prometheus {}
            hc = ffi.gc(lib.http_client_new(herr, 256), lib.http_client_free)
            p = assert(client { url = prom:url(), timeout_ms = 2000 })
        end)

        teardown(function()
            helpers.cleanup()
        end)

        before_each(function()
            prom:control("POST", "/_fake/reset")
        end)

        -- prom_series for match[]=match: its shapes as "name{l1,l2}=count"
        -- strings and the total series count.
        local function series_shapes(match)
            local out = ffi.new("struct prom_shapes *[1]")
            local err = ffi.new("char[512]")
            assert.equal(0, lib.prom_series(p, hc, match, 1000, out, err, 512), ffi.string(err))
            local s = out[0]
            local got = {}
            for i = 0, tonumber(s.n) - 1 do
                local sh = s.v[i]
                local ls = {}
                for k = 0, tonumber(sh.nlabels) - 1 do ls[#ls + 1] = ffi.string(sh.labels[k]) end
                got[#got + 1] = ffi.string(sh.name) .. "{" .. table.concat(ls, ",") .. "}=" .. tonumber(sh.count)
            end
            local total = tonumber(s.total_series)
            lib.prom_shapes_free(s)
            return got, total
        end

        local function query(q, timeout, cl)
            local out = ffi.new("struct prom_result *[1]")
            local err = ffi.new("char[1024]")
            local rc = lib.prom_query(cl or p, hc, q, 1715851267.5, timeout or 0, out, err, 1024)
            if rc ~= 0 then return nil, ffi.string(err) end
            local r = out[0]
            local res = { type = r.type, n = tonumber(r.n), samples = {} }
            for i = 0, tonumber(r.n) - 1 do
                local s = r.samples[i]
                local labels = {}
                for k = 0, tonumber(s.nlabels) - 1 do
                    labels[ffi.string(s.keys[k])] = ffi.string(s.values[k])
                end
                res.samples[#res.samples + 1] = { labels = labels, value = s.value, ts = s.ts }
            end
            lib.prom_result_free(r)
            return res
        end

        local function raw(status, body)
            prom:control("POST", "/_fake/query", { query = "q", status = status, body = body })
        end

        it("decodes vectors, sorted labels, NaN and infinities", function()
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "vector", result = {
                { metric = { pod = "a", namespace = "n" }, value = { 1715851267.123, "1.5" } },
                { metric = {}, value = { 1, "NaN" } },
                { metric = {}, value = { 1, "+Inf" } },
                { metric = {}, value = { 1, "-Inf" } } } } })
            local r = assert(query("q"))
            assert.equal(PROM_VECTOR, r.type)
            assert.equal(4, r.n)
            helpers.assert_same({ pod = "a", namespace = "n" }, r.samples[1].labels)
            assert.equal(1.5, r.samples[1].value)
            assert.equal(1715851267.123, r.samples[1].ts)
            assert.is_true(r.samples[2].value ~= r.samples[2].value)
            assert.equal(math.huge, r.samples[3].value)
            assert.equal(-math.huge, r.samples[4].value)
            -- what went out: query, time, timeout (the caller's remaining time)
            local _ = query("q", 7.5)
            local sent = prom:requests("/api/v1/query")
            assert.equal("7500ms", sent[#sent].params.timeout)
            assert.equal("1715851267.5", sent[#sent].params.time)
        end)

        it("decodes scalars and accepts matrices, rejects strings", function()
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "scalar", result = { 2, "3" } } })
            local r = assert(query("q"))
            assert.equal(PROM_SCALAR, r.type)
            assert.equal(3, r.samples[1].value)
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "matrix", result = {} } })
            assert.equal(PROM_MATRIX, assert(query("q")).type)
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "string", result = { 2, "x" } } })
            local _, err = query("q")
            assert.equal('unexpected value type "string"', err)
        end)

        it("maps status codes and API errors as Go's client does", function()
            raw(422, cjson.encode({ status = "error", errorType = "execution", error = "boom" }))
            assert.equal("execution: boom", select(2, query("q")))
            raw(400, cjson.encode({ status = "error", errorType = "bad_data", error = "parse" }))
            assert.equal("bad_data: parse", select(2, query("q")))
            raw(503, cjson.encode({ status = "error", errorType = "unavailable", error = "down" }))
            assert.equal("unavailable: down", select(2, query("q")))
            raw(500, "oops")
            assert.equal("bad_response: unknown response code 500", select(2, query("q")))
            raw(404, "404 page not found")
            assert.equal("bad_response: unknown response code 404", select(2, query("q")))
            raw(200, "<html>")
            assert.truthy(select(2, query("q")):match("^bad_response: "))
        end)

        it("times out a hung query at the caller's deadline", function()
            prom:control("POST", "/_fake/query", { query = "q", hang = true })
            local t0 = helpers.now()
            local _, err = query("q", 0.3)
            local took = helpers.now() - t0
            assert.truthy(err:lower():find("timed out", 1, true), err)
            assert.truthy(took > 0.25 and took < 1.5, took)
        end)

        it("reduces series to distinct shapes (name, sorted label names)", function()
            prom:control("POST", "/_fake/series", { match = "m", data = {
                { __name__ = "a", x = "1", y = "1" }, { __name__ = "a", y = "2", x = "2" },
                { __name__ = "a", x = "3" }, { __name__ = "b", x = "1" }, { z = "1" } } })
            local got, total = series_shapes("m")
            assert.equal(5, total)
            helpers.assert_same({ "{z}=1", "a{x}=1", "a{x,y}=2", "b{x}=1" }, got)
            local sent = prom:requests("/api/v1/series")[1]
            assert.equal("m", sent.params["match[]"])
            assert.equal("1000", sent.params.start)
            -- errors
            local out = ffi.new("struct prom_shapes *[1]")
            local err = ffi.new("char[512]")
            prom:control("POST", "/_fake/series", { match = "m", status = 422,
                body = cjson.encode({ status = "error", errorType = "execution", error = "x" }) })
            assert.equal(-1, lib.prom_series(p, hc, "m", 1000, out, err, 512))
            assert.equal("execution: x", ffi.string(err))
            prom:control("POST", "/_fake/series", { match = "m", status = 200, body = '{"status":"success","data":[{"a":' })
            assert.equal(-1, lib.prom_series(p, hc, "m", 1000, out, err, 512))
            assert.truthy(ffi.string(err):match("^bad_response: "), ffi.string(err))
            prom:control("POST", "/_fake/series", { match = "m", status = 200, body = '{"status":"success","data":null}' })
            assert.equal(0, lib.prom_series(p, hc, "m", 1000, out, err, 512))
            assert.equal(0, tonumber(out[0].n))
            lib.prom_shapes_free(out[0])
        end)

        describe("invalid UTF-8 in strings", function()
            -- Go's encoding/json (prometheus-adapter) turns each byte that
            -- utf8.DecodeRune rejects into one U+FFFD and carries on; so do we
            local R = "\239\191\189"     -- U+FFFD
            local CASES = {
                { "a\255\254b", "a" .. R .. R .. "b" },          -- bytes never valid
                { "\192\175", R .. R },                          -- overlong "/"
                { "\224\128\128", R .. R .. R },                 -- overlong NUL
                { "\237\160\128", R .. R .. R },                 -- a surrogate, UTF-8 encoded
                { "\244\144\128\128", R .. R .. R .. R },        -- above U+10FFFF
                { "x\226\130", "x" .. R .. R },                  -- cut short at the end
                { "\240\159\152y", R .. R .. R .. "y" },         -- cut short before ASCII
                { "\128", R },                                   -- a lone continuation byte
                { "0123456789abcdef\255", "0123456789abcdef" .. R },   -- past the 8-byte scan
                { "é€😀" .. R, "é€😀" .. R },                 -- valid, kept (U+FFFD too)
            }

            local function sample(value)
                return '{"metric":{"pod":"p","v":"' .. value .. '"},"value":[1,"2"]}'
            end

            it("repairs label values and keys in query answers instead of failing", function()
                local parts = {}
                for i, c in ipairs(CASES) do parts[i] = sample(c[1]) end
                -- a key with a bad byte, and two that become the same key
                parts[#parts + 1] = '{"metric":{"k\255":"1","p":"x"},"value":[1,"3"]}'
                parts[#parts + 1] = '{"metric":{"k\254":"a","k\253":"b"},"value":[1,"4"]}'
                raw(200, '{"status":"success","data":{"resultType":"vector","result":['
                    .. table.concat(parts, ",") .. ']}}')
                local r = assert(query("q"))
                assert.equal(#CASES + 2, r.n)
                for i, c in ipairs(CASES) do
                    assert.equal(c[2], r.samples[i].labels.v, "case " .. i)
                    assert.equal("p", r.samples[i].labels.pod)
                end
                helpers.assert_same({ ["k" .. R] = "1", p = "x" }, r.samples[#CASES + 1].labels)
                -- Go's map keeps the last of the keys that became equal
                helpers.assert_same({ ["k" .. R] = "b" }, r.samples[#CASES + 2].labels)
            end)

            it("repairs API error messages", function()
                raw(422, '{"status":"error","errorType":"exec\255","error":"bad \192 query"}')
                assert.equal("exec" .. R .. ": bad " .. R .. " query", select(2, query("q")))
            end)

            it("repairs series names and label names; names equal once repaired are one shape", function()
                prom:control("POST", "/_fake/series", { match = "m", status = 200, body =
                    '{"status":"success","data":[{"__name__":"x\255","a\254":"v\253"},'
                    .. '{"__name__":"x\254","a\255":"1"},{"__name__":"ok","b":"\237\160\128"}]}' })
                local got = series_shapes("m")
                helpers.assert_same({ "ok{b}=1", "x" .. R .. "{a" .. R .. "}=2" }, got)
            end)
        end)

        it("counts cache hits with a TTL, and expires them", function()
            local c = assert(client { url = prom:url(), cache_ttl_ms = 300 })
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "scalar", result = { 1, "1" } } })
            assert.equal(1, query("q", 0, c).samples[1].value)
            prom:control("POST", "/_fake/query", { query = "q", result = { resultType = "scalar", result = { 1, "2" } } })
            assert.equal(1, query("q", 0, c).samples[1].value)
            helpers.sleep(0.35)
            assert.equal(2, query("q", 0, c).samples[1].value)
            local st = ffi.new("struct prom_stats")
            lib.prom_stats(c, st)
            assert.equal(3, tonumber(st.queries))
            assert.equal(2, tonumber(st.requests))
            assert.equal(1, tonumber(st.cache_hits))
            assert.equal(2, #prom:requests("/api/v1/query"))
        end)
    end)
end)
