-- prom_many_spec.lua: prom_query_many (src/prom.c) and, under it,
-- http_client_do_many (src/http_client.c) through LuaJIT FFI on
-- build/lua/adapter/core.so, against the fake Prometheus: answers land at
-- their own index, the requests really overlap, per-query errors and
-- deadlines, repeats within a batch share one request, the cache and the
-- counters. Uses: spec/helpers.lua (the fake), ffi.
local ffi = require "ffi"
local helpers = require "helpers"
local cjson = require "cjson"

require "ffi_prom"   -- the cdefs of prom.h and http_client.h


local lib = ffi.load(helpers.core_so())
lib.http_client_global_init()
local ERRLEN = 512

local function client(url, ttl_ms)
    local err = ffi.new("char[1024]")
    local po = ffi.new("struct prom_options")
    po.url = url
    po.timeout_ms = 5000
    po.query_cache_ttl_ms = ttl_ms or 0
    local p = lib.prom_client_new(po, err, 1024)
    assert(p ~= nil, ffi.string(err))
    return ffi.gc(p, lib.prom_client_free)
end

local function stats(p)
    local st = ffi.new("struct prom_stats")
    lib.prom_stats(p, st)
    return { queries = tonumber(st.queries), requests = tonumber(st.requests),
        coalesced = tonumber(st.coalesced), cache_hits = tonumber(st.cache_hits) }
end

-- Runs the batch; returns { {value=, labels=} | {err=} ... }, failures, seconds.
local function many(p, hc, qs, timeout)
    local n = #qs
    local arr = ffi.new("const char *[?]", n)
    for i, q in ipairs(qs) do arr[i - 1] = q end
    local outs = ffi.new("struct prom_result *[?]", n)
    local errs = ffi.new("char[?]", n * ERRLEN)
    local t0 = helpers.now()
    local failed = lib.prom_query_many(p, hc, n, arr, 1715851267.5, timeout or 0, outs, errs, ERRLEN)
    local took = helpers.now() - t0
    local res = {}
    for i = 0, n - 1 do
        local r = outs[i]
        if r == nil then
            res[i + 1] = { err = ffi.string(errs + i * ERRLEN) }
        else
            local s = r.samples[0]
            local labels = {}
            for k = 0, tonumber(s.nlabels) - 1 do labels[ffi.string(s.keys[k])] = ffi.string(s.values[k]) end
            res[i + 1] = { type = r.type, n = tonumber(r.n), value = r.n > 0 and s.value or nil, labels = labels }
            lib.prom_result_free(r)
        end
    end
    return res, failed, took
end

describe("prom_query_many", function()
    local prom, hc
    local herr = ffi.new("char[256]")

    setup(function()
        prom = helpers.start_prometheus {}
        hc = ffi.gc(lib.http_client_new(herr, 256), lib.http_client_free)
    end)
    teardown(function() helpers.cleanup() end)
    before_each(function() prom:control("POST", "/_fake/reset") end)

    local function answer(q, v, extra)
        local body = { query = q, result = { resultType = "vector", result = {
            { metric = { q = q, pod = "p" .. v }, value = { 1715851267.5, tostring(v) } } } } }
        for k, x in pairs(extra or {}) do body[k] = x end
        prom:control("POST", "/_fake/query", body)
    end

    it("answers every query at its own index, more than the parallel limit", function()
        local p = client(prom:url())
        local qs = {}
        for i = 1, 21 do qs[i] = "q" .. i; answer(qs[i], i * 10) end
        local res, failed = many(p, hc, qs, 5)
        assert.equal(0, failed)
        for i = 1, 21 do
            assert.equal(i * 10, res[i].value, "query " .. i)
            helpers.assert_same({ q = "q" .. i, pod = "p" .. i * 10 }, res[i].labels)
        end
        assert.equal(21, #prom:requests("/api/v1/query"))
        local st = stats(p)
        assert.equal(21, st.queries); assert.equal(21, st.requests)
        -- each request carries the caller's timeout and time
        local sent = prom:requests("/api/v1/query")[1]
        assert.equal("5s", sent.params.timeout)
        assert.equal("1715851267.5", sent.params.time)
    end)

    it("overlaps the requests: 8 answers delayed 0.5 s take ~0.5 s, not 4 s", function()
        local p = client(prom:url())
        local qs = {}
        for i = 1, 8 do qs[i] = "slow" .. i; answer(qs[i], i, { delay = 0.5 }) end
        local res, failed, took = many(p, hc, qs, 5)
        assert.equal(0, failed)
        for i = 1, 8 do assert.equal(i, res[i].value) end
        assert.truthy(took >= 0.45 and took < 2.0, took)
    end)

    it("fails only the queries that fail, each with its own reason", function()
        local p = client(prom:url())
        answer("good1", 1)
        prom:control("POST", "/_fake/query", { query = "api", status = 422,
            body = cjson.encode({ status = "error", errorType = "execution", error = "boom" }) })
        prom:control("POST", "/_fake/query", { query = "html", status = 200, body = "<html>" })
        prom:control("POST", "/_fake/query", { query = "code", status = 500, body = "oops" })
        prom:control("POST", "/_fake/query", { query = "str", result = { resultType = "string", result = { 1, "x" } } })
        answer("good2", 2)
        local res, failed = many(p, hc, { "good1", "api", "html", "code", "str", "good2" }, 5)
        assert.equal(4, failed)
        assert.equal(1, res[1].value)
        assert.equal("execution: boom", res[2].err)
        assert.truthy(res[3].err:match("^bad_response: lexical error"), res[3].err)
        assert.equal("bad_response: unknown response code 500", res[4].err)
        assert.equal('unexpected value type "string"', res[5].err)
        assert.equal(2, res[6].value)
    end)

    it("bounds a hung query by the timeout while the others answer", function()
        local p = client(prom:url())
        answer("ok", 7)
        prom:control("POST", "/_fake/query", { query = "hang", hang = true })
        local res, failed, took = many(p, hc, { "hang", "ok" }, 0.4)
        assert.equal(1, failed)
        assert.truthy(res[1].err:lower():find("timed out", 1, true), res[1].err)
        assert.equal(7, res[2].value)
        assert.truthy(took > 0.3 and took < 2.0, took)
    end)

    it("sends a query repeated in the batch once; the cache answers the next batch", function()
        local p = client(prom:url(), 60000)
        answer("a", 1); answer("b", 2)
        local res, failed = many(p, hc, { "a", "b", "a", "a" }, 5)
        assert.equal(0, failed)
        assert.same({ 1, 2, 1, 1 }, { res[1].value, res[2].value, res[3].value, res[4].value })
        assert.equal(2, #prom:requests("/api/v1/query"))
        local st = stats(p)
        assert.equal(4, st.queries); assert.equal(2, st.requests); assert.equal(2, st.coalesced)
        res, failed = many(p, hc, { "b", "a" }, 5)
        assert.equal(0, failed)
        assert.same({ 2, 1 }, { res[1].value, res[2].value })
        assert.equal(2, #prom:requests("/api/v1/query"))
        assert.equal(2, stats(p).cache_hits)
    end)

    it("keeps the last value of a label key repeated in a metric, as Go does", function()
        local p = client(prom:url())
        prom:control("POST", "/_fake/query", { query = "dup", status = 200, body =
            '{"status":"success","data":{"resultType":"vector","result":[' ..
            '{"metric":{"b":"2","a":"1","a":"3"},"value":[1,"5"]}]}}' })
        local arr = ffi.new("const char *[1]", { "dup" })
        local outs = ffi.new("struct prom_result *[1]")
        local errs = ffi.new("char[?]", ERRLEN)
        assert.equal(0, lib.prom_query_many(p, hc, 1, arr, 1, 5, outs, errs, ERRLEN))
        local s = outs[0].samples[0]
        local got = {}
        for k = 0, tonumber(s.nlabels) - 1 do got[#got + 1] = ffi.string(s.keys[k]) .. "=" .. ffi.string(s.values[k]) end
        lib.prom_result_free(outs[0])
        assert.same({ "a=3", "b=2" }, got)
    end)

    it("an empty batch is a no-op", function()
        local p = client(prom:url())
        local res, failed = many(p, hc, {}, 5)
        assert.equal(0, failed); assert.equal(0, #res)
        assert.equal(0, stats(p).queries)
    end)
end)
