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
local tls = require "tls_helpers"

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

-- Fire n identical GETs in parallel (curl in the background), `stagger`
-- seconds apart (default 0), wait for all. Returns the list of {status, body}.
local function parallel_get(adapter, path, n, stagger)
    local dir = helpers.tmpdir("par")
    local cmds = {}
    for i = 1, n do
        cmds[#cmds + 1] = string.format(
            "(sleep %.3f; curl -sk -A promlua-spec/1.0 --max-time %d -o %s/b%d -w '%%{http_code}' %s >%s/s%d) &",
            (i - 1) * (stagger or 0), helpers.scale(20), dir, i,
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
                -- two header lines in flag order, not one comma-joined line
                -- (which the joined view above cannot tell apart), and one
                -- empty X-Empty line
                local lines = {}
                for _, h in ipairs(r.header_list) do
                    if h[1] == "x-scope-orgid" or h[1] == "x-empty" then
                        lines[#lines + 1] = h[1] .. "=" .. h[2]
                    end
                end
                assert.same({ "x-scope-orgid=tenant-1", "x-scope-orgid=tenant-2", "x-empty=" }, lines)
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

    describe("long queries", function()
        it("switches from GET to POST when the URL would exceed --prometheus-max-get-length", function()
            local prom = helpers.start_prometheus { state = STATE }
            local LIMIT = 600
            local adapter = start(prom, kube, { "--prometheus-max-get-length=" .. LIMIT })
            -- A selector "queue in (...)" whose values add `extra` characters
            -- to the GET URL: values of 60 letters each cost 63 URL bytes
            -- ("%7C" + value), plus one first value of 1..63 letters. Label
            -- values are at most 63 characters, hence the list.
            local letters = "abcdefghijklmnopqrstuvwxyz"
            local function ask(extra)
                local m = math.floor(extra / 63)
                local vals = { string.rep("Z", 1 + extra - m * 63) }
                for i = 1, m do vals[#vals + 1] = string.rep(letters:sub(i, i), 60) end
                prom:clear_requests()
                local sel = "queue in (" .. table.concat(vals, ",") .. ")"
                assert.equal(200, (adapter:get_json(EXT .. "?labelSelector=" .. helpers.urlencode(sel))))
                local q = queries(prom)
                assert.equal(1, #q)
                return q[1], vals
            end
            local r = ask(0)
            assert.equal("GET", r.method)
            local base = #("http://127.0.0.1:" .. prom.port .. r.path .. "?" .. r.query)
            -- time= and timeout= vary by a few characters between calls:
            -- stay 12 characters clear of the limit on each side
            local under = ask(LIMIT - 12 - base)
            assert.equal("GET", under.method)
            assert.equal("", under.body)
            local ulen = #("http://127.0.0.1:" .. prom.port .. under.path .. "?" .. under.query)
            assert.truthy(ulen > LIMIT - 20 and ulen <= LIMIT, ulen)
            local over, vals = ask(LIMIT + 12 - base)
            assert.equal("POST", over.method)
            assert.equal("", over.query)
            assert.equal("application/x-www-form-urlencoded", over.headers["content-type"])
            for _, v in ipairs(vals) do
                assert.truthy(over.params.query:find(v, 1, true))
            end
            adapter:stop(); prom:stop()
        end)

        it("sends a PA-sized query (150 pods, about 10 KiB) with the default limit as POST", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube)
            local names = {}
            for i = 1, 150 do names[i] = string.format("sample-app-7cfb596f98-a-long-deployment-name-%013d", i) end
            local sel = "queue in (" .. table.concat(names, ",") .. ")"
            prom:clear_requests()
            assert.equal(200, (adapter:get_json(EXT .. "?labelSelector=" .. helpers.urlencode(sel))))
            local q = queries(prom)
            assert.equal(1, #q)
            assert.equal("POST", q[1].method)
            assert.truthy(#q[1].body > 8192)
            assert.truthy(q[1].params.query:find(names[150], 1, true))
            adapter:stop(); prom:stop()
        end)
    end)

    describe("coalescing and the query cache", function()
        it("sends identical concurrent queries to Prometheus once", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-timeout=10s" })
            -- a slow answer keeps the first request in flight while the
            -- others arrive (the server has 4 worker threads)
            script(prom, query_for(), 42, { delay = 1.5 })
            local N = 4
            local res = parallel_get(adapter, EXT, N, 0.15)
            for i = 1, N do
                assert.equal(200, res[i].status, res[i].body)
                assert.equal("42", cjson.decode(res[i].body).items[1].value)
            end
            local q = queries(prom, query_for())
            print(string.format("# coalescing: %d concurrent requests -> %d Prometheus queries", N, #q))
            for _, r in ipairs(q) do print("#  query at " .. r.time) end
            assert.equal(1, #q)
            -- no cache by default: the next request asks again
            prom:clear_requests()
            script(prom, query_for(), 43)
            local _, doc = adapter:get_json(EXT)
            assert.equal("43", doc.items[1].value)
            assert.equal(1, #queries(prom, query_for()))
            adapter:stop(); prom:stop()
        end)

        it("bounds N concurrent requests by the worker threads, not by N", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-timeout=10s" })
            script(prom, query_for(), 7, { delay = 1 })
            local N = 16
            local res = parallel_get(adapter, EXT, N)
            for i = 1, N do assert.equal(200, res[i].status, res[i].body) end
            local q = queries(prom, query_for())
            print(string.format("# coalescing: %d concurrent requests -> %d Prometheus queries", N, #q))
            -- each of the server's 4 threads serves its connections one
            -- at a time, so 16 simultaneous requests come in rounds; every
            -- round shares one query (measured: 7-8 queries for 16)
            assert.truthy(#q < N * 3 / 4, #q .. " queries")
            adapter:stop(); prom:stop()
        end)

        it("shares an error answer too, and does not cache it", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--query-cache-ttl=1m" })
            prom:control("POST", "/_fake/query", { query = query_for(), status = 422, delay = 1,
                body = cjson.encode({ status = "error", errorType = "execution", error = "boom" }) })
            local res = parallel_get(adapter, EXT, 3)
            for i = 1, 3 do
                assert.equal(500, res[i].status)
                assert.truthy(res[i].body:find("unable to fetch metrics", 1, true))
            end
            assert.equal(1, #queries(prom, query_for()))
            script(prom, query_for(), 8)
            local _, doc = adapter:get_json(EXT)
            assert.equal("8", doc.items[1].value)
            assert.equal(2, #queries(prom, query_for()))
            adapter:stop(); prom:stop()
        end)

        it("serves repeated identical queries from memory for --query-cache-ttl", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--query-cache-ttl=2s" })
            script(prom, query_for(), 11)
            local t0 = helpers.now()
            local _, doc = adapter:get_json(EXT)
            assert.equal("11", doc.items[1].value)
            script(prom, query_for(), 12)
            _, doc = adapter:get_json(EXT)
            assert.equal("11", doc.items[1].value)      -- from the cache
            assert.equal(1, #queries(prom, query_for()))
            -- another query is not served from this entry
            assert.equal(200, (adapter:get_json(EXT .. "?labelSelector=queue%3Djobs")))
            assert.equal(1, #queries(prom, query_for('queue="jobs"')))
            assert.truthy(helpers.now() - t0 < 1.8, "test too slow to check the TTL")
            helpers.sleep(2.2 - (helpers.now() - t0))
            _, doc = adapter:get_json(EXT)
            assert.equal("12", doc.items[1].value)      -- expired: asked again
            assert.equal(2, #queries(prom, query_for()))
            adapter:stop(); prom:stop()
        end)
    end)

    describe("timeouts", function()
        it("answers 500 within --prometheus-timeout when Prometheus never answers", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-timeout=1s" })
            prom:control("POST", "/_fake/query", { query = query_for(), hang = true })
            local t0 = helpers.now()
            local status, doc = adapter:get_json(EXT)
            local took = helpers.now() - t0
            assert.equal(500, status)
            assert.equal("Internal error occurred: unable to fetch metrics", doc.message)
            assert.truthy(took >= 0.9 and took < helpers.scale(3), "took " .. took)
            local q = queries(prom, query_for())
            assert.equal(1, #q)
            assert.equal("1s", q[1].params.timeout)
            -- a waiter on the hung query is bounded as well
            local res = parallel_get(adapter, EXT, 3)
            for i = 1, 3 do assert.equal(500, res[i].status) end
            adapter:stop(); prom:stop()
        end)

        it("bounds relist calls and retries them with backoff", function()
            local prom = helpers.start_prometheus { state = {
                series = { { match = SERIES_MATCH, hang = true } } } }
            local adapter = start(prom, kube, { "--prometheus-timeout=1s" }, nil, "20s")
            -- first attempt + 3 retries (0.5 s, 1 s, 2 s, +-20%), each bounded by 1 s
            local calls = helpers.wait_until(function()
                local s = series_calls(prom)
                return #s >= 4 and s
            end, helpers.scale(12))
            assert.truthy(calls, "expected 4 series calls")
            helpers.sleep(1.5)
            calls = series_calls(prom)
            assert.equal(4, #calls)
            local gaps = {}
            for i = 2, 4 do gaps[#gaps + 1] = calls[i].time - calls[i - 1].time end
            print(string.format("# relist retry gaps: %.2f %.2f %.2f s", gaps[1], gaps[2], gaps[3]))
            -- each gap is the 1 s timeout plus the backoff delay
            assert.truthy(gaps[1] > 1.3 and gaps[1] < 1.9, gaps[1])
            assert.truthy(gaps[2] > 1.7 and gaps[2] < 2.5, gaps[2])
            assert.truthy(gaps[3] > 2.5 and gaps[3] < 3.7, gaps[3])
            adapter:stop(); prom:stop()
        end)

        it("recovers within the relist when a retry succeeds, and keeps the last good registry when all fail", function()
            local prom = helpers.start_prometheus { state = STATE }
            local adapter = start(prom, kube, { "--prometheus-timeout=1s" }, nil, "4s")
            local LIST = "/apis/external.metrics.k8s.io/v1beta1"
            local function names()
                local _, doc = adapter:get_json(LIST)
                local out = {}
                for _, r in ipairs(doc.resources) do out[#out + 1] = r.name end
                table.sort(out)
                return table.concat(out, ",")
            end
            assert.equal("queue_depth", names())
            -- every series call fails: the registry is kept
            prom:control("POST", "/_fake/series", { match = SERIES_MATCH, status = 503,
                body = cjson.encode({ status = "error", errorType = "unavailable", error = "down" }) })
            prom:clear_requests()
            -- one whole failed round: the attempt and its 3 retries
            assert.truthy(helpers.wait_until(function() return #series_calls(prom) >= 4 end, helpers.scale(12)))
            assert.equal("queue_depth", names())
            -- Prometheus comes back with another metric during the retries of
            -- the next round: that relist publishes it, well before the next
            -- interval (4 s after the round)
            prom:clear_requests()
            local first = helpers.wait_until(function() return series_calls(prom)[1] end, helpers.scale(10))
            assert.truthy(first)
            prom:control("POST", "/_fake/series", { match = SERIES_MATCH, data = {
                { __name__ = "queue_depth", namespace = "default", queue = "jobs" },
                { __name__ = "queue_size", namespace = "default", queue = "jobs" } } })
            assert.truthy(helpers.wait_until(function()
                return names() == "queue_depth,queue_size"
            end, helpers.scale(3)))
            assert.truthy(helpers.now() - first.time < 3.5)
            adapter:stop(); prom:stop()
        end)
    end)

    describe("start-up errors (exit 255, PA's messages, before the config is read)", function()
        local PREFIX = "unable to construct Prometheus client: "
        local pem_dir, pki

        -- The whole message: the log line ends right after it.
        local function fails(args, want)
            -- no --config: the Prometheus client is built first (§8.4)
            local rc, err = helpers.run_adapter { config = false, args = args }
            assert.equal(255, rc, err)
            assert.truthy(err:find(PREFIX .. want .. "\n", 1, true), err)
            assert.falsy(err:find("metrics discovery config", 1, true), err)
            return err
        end

        -- Past the Prometheus client: the next step (no --config) fails.
        local function starts(args)
            local rc, err = helpers.run_adapter { config = false, args = args }
            assert.equal(255, rc, err)
            assert.falsy(err:find(PREFIX, 1, true), err)
            assert.truthy(err:find("make sure to use --config", 1, true), err)
            return err
        end

        local function b64(s)
            local f = io.popen("base64 -w0 " .. helpers.shq(helpers.temp_file(s, "b64")))
            local out = f:read("*a")
            f:close()
            return out
        end

        -- A kubeconfig for --prometheus-auth-config: cluster "prom", user "prom".
        local kubeconfig = tls.kubeconfig

        setup(function()
            pem_dir = helpers.tmpdir("pem")
            pki = tls.pki(pem_dir)
            -- an RSA pair, for a key of the wrong type
            os.execute("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. pem_dir
                .. "/rsa.key -out " .. pem_dir .. "/rsa.pem -days 1 -subj /CN=r >/dev/null 2>&1")
            assert.truthy(helpers.read_file(pem_dir .. "/rsa.key"), "openssl failed")
        end)

        it("rejects an unsupported --prometheus-verb", function()
            fails({ "--prometheus-verb=PUT" },
                'unsupported Prometheus HTTP verb "PUT"; supported verbs: "GET" and "POST"')
        end)

        it("rejects an unreadable --prometheus-token-file", function()
            fails({ "--prometheus-token-file=/nonexistent/token" },
                "failed to read prometheus-token-file: open /nonexistent/token: no such file or directory")
        end)

        it("rejects an unreadable --prometheus-ca-file", function()
            fails({ "--prometheus-ca-file=/nonexistent/ca.pem" },
                "failed to read prometheus-ca-file: open /nonexistent/ca.pem: no such file or directory")
        end)

        it("rejects a --prometheus-ca-file without a certificate Go can parse", function()
            for _, text in ipairs({
                "not a certificate\n",
                -- a CERTIFICATE block whose contents are not a certificate
                "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
                -- a certificate with PEM headers (Go skips those blocks)
                (helpers.read_file(pki.ca):gsub("CERTIFICATE%-%-%-%-%-\n",
                    "CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n", 1)),
                -- only a key
                helpers.read_file(pki.ca_key),
            }) do
                local f = helpers.temp_file(text, "ca.pem")
                fails({ "--prometheus-ca-file=" .. f }, "no certs found in prometheus-ca-file")
            end
            -- one good certificate among bad blocks is enough
            local f = helpers.temp_file("junk\n" .. helpers.read_file(pki.ca_key)
                .. helpers.read_file(pki.ca), "ca.pem")
            starts({ "--prometheus-ca-file=" .. f })
        end)

        it("rejects an unreadable or empty client key pair (both files are read first)", function()
            local ca = pki.ca
            fails({ "--prometheus-ca-file=" .. ca, "--prometheus-client-tls-cert-file=/nonexistent/c.pem",
                "--prometheus-client-tls-key-file=" .. pki.client_key },
                "failed to read TLS key pair: open /nonexistent/c.pem: no such file or directory")
            local empty = helpers.temp_file("", "empty.pem")
            fails({ "--prometheus-ca-file=" .. ca, "--prometheus-client-tls-cert-file=" .. empty,
                "--prometheus-client-tls-key-file=/nonexistent/k.pem" },
                "failed to read TLS key pair: open /nonexistent/k.pem: no such file or directory")
            fails({ "--prometheus-ca-file=" .. ca, "--prometheus-client-tls-cert-file=" .. empty,
                "--prometheus-client-tls-key-file=" .. pki.client_key },
                "failed to read TLS key pair: tls: failed to find any PEM data in certificate input")
            fails({ "--prometheus-ca-file=" .. ca, "--prometheus-client-tls-cert-file=" .. pki.client,
                "--prometheus-client-tls-key-file=" .. empty },
                "failed to read TLS key pair: tls: failed to find any PEM data in key input")
        end)

        it("rejects a client key pair that Go's tls.X509KeyPair refuses", function()
            local function pair(cert, key, want)
                fails({ "--prometheus-ca-file=" .. pki.ca, "--prometheus-client-tls-cert-file=" .. cert,
                    "--prometheus-client-tls-key-file=" .. key }, "failed to read TLS key pair: " .. want)
            end
            pair(pki.client, pki.client2_key, "tls: private key does not match public key")
            pair(pki.client, pem_dir .. "/rsa.key", "tls: private key type does not match public key type")
            pair(pki.client_key, pki.client_key, "tls: failed to find certificate PEM data in certificate "
                .. "input, but did find a private key; PEM inputs may have been switched")
            pair(pki.client, pki.client, "tls: found a certificate rather than a key in the PEM for the private key")
            pair(pki.client, helpers.temp_file("-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n"),
                "tls: failed to parse private key")
            pair(helpers.temp_file("-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"),
                pki.client_key, "x509: malformed certificate")
            -- the matching pair, with the CA chain after the leaf, starts
            local chain = helpers.temp_file(helpers.read_file(pki.client) .. helpers.read_file(pki.ca))
            starts({ "--prometheus-ca-file=" .. pki.ca, "--prometheus-client-tls-cert-file=" .. chain,
                "--prometheus-client-tls-key-file=" .. pki.client_key })
        end)

        it("checks --prometheus-url and the verb before the TLS files (PA's order)", function()
            fails({ "--prometheus-url=http://[::1", "--prometheus-verb=PUT",
                "--prometheus-ca-file=/nonexistent/ca.pem" },
                [[invalid Prometheus URL <nil>: parse "http://[::1": missing ']' in host]])
            fails({ "--prometheus-verb=PUT", "--prometheus-ca-file=/nonexistent/ca.pem" },
                'unsupported Prometheus HTTP verb "PUT"; supported verbs: "GET" and "POST"')
        end)

        it("rejects a --prometheus-url Go's url.Parse rejects, with its message", function()
            -- PA formats the nil *url.URL url.Parse returns: "<nil>"
            for _, c in ipairs({
                { "http://[::1", [[parse "http://[::1": missing ']' in host]] },
                { "http://prometheus:90x0", [[parse "http://prometheus:90x0": invalid port ":90x0" after host]] },
                { "http://[::1]x", [[parse "http://[::1]x": invalid port "x" after host]] },
                { "http://prom etheus", [[parse "http://prom etheus": invalid character " " in host name]] },
                { "10.0.0.1:9090", [[parse "10.0.0.1:9090": first path segment in URL cannot contain colon]] },
                { "://prometheus", [[parse "://prometheus": missing protocol scheme]] },
                { "http://p/pre%zzfix", [[parse "http://p/pre%zzfix": invalid URL escape "%zz"]] },
                { "http://p/#a%", [[parse "http://p/#a%": invalid URL escape "%"]] },
                { "http://us er@p", [[parse "http://us er@p": net/url: invalid userinfo]] },
                { "http://p/\t", [[parse "http://p/\t": net/url: invalid control character in URL]] },
            }) do
                fails({ "--prometheus-url=" .. c[1] }, "invalid Prometheus URL <nil>: " .. c[2])
            end
        end)

        it("accepts a --prometheus-url Go parses but cannot send to, and fails each request", function()
            -- PA starts with these; every Prometheus call then fails with
            -- Go's transport error. We start too, and say so at start-up.
            local cases = {
                { "prometheus:9090", 'unsupported protocol scheme "prometheus"' },
                { "", 'unsupported protocol scheme ""' },
                { "ftp://prometheus:9090", 'unsupported protocol scheme "ftp"' },
                { "http:///api", "http: no Host in request URL" },
            }
            for _, c in ipairs(cases) do
                local err = starts({ "--prometheus-url=" .. c[1] })
                assert.truthy(err:find("--prometheus-url cannot be used, every Prometheus request will fail: "
                    .. c[2] .. "\n", 1, true), err)
            end
            -- and the calls fail with that error (the client through FFI)
            local ffi = require "ffi"
            require "ffi_prom"
            local lib = ffi.load(helpers.core_so())
            for _, c in ipairs(cases) do
                local err = ffi.new("char[256]")
                local po = ffi.new("struct prom_options")
                po.url = c[1]
                local p = lib.prom_client_new(po, err, 256)
                assert.is_true(p ~= nil, ffi.string(err))   -- a NULL cdata is not nil
                local kv = ffi.new("const char *[3]", { "query", "up" })
                local w = ffi.new("struct prom_wire")
                local rc = lib.prom_build_request(p, "/api/v1/query", kv, w, err, 256)
                -- freed now, not by ffi.gc: lib is dlclose'd when collected,
                -- which may come before such a finalizer runs
                lib.prom_client_free(p)
                assert.equal(-1, rc)
                assert.equal(c[2], ffi.string(err))
            end
        end)

        it("rejects in-cluster auth together with an explicit kubeconfig", function()
            fails({ "--prometheus-auth-incluster", "--prometheus-auth-config=/x/kubeconfig" },
                "may not use both in-cluster auth and an explicit kubeconfig at the same time")
        end)

        it("rejects in-cluster auth outside a cluster", function()
            fails({ "--prometheus-auth-incluster" },
                "unable to construct in-cluster auth configuration for connecting to Prometheus: unable to "
                .. "load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined")
        end)

        describe("--prometheus-auth-config (client-go's errors, PA's prefixes)", function()
            local function config_error(kc, want)
                fails({ "--prometheus-auth-config=" .. kc }, "unable to construct auth configuration from \""
                    .. kc .. "\" for connecting to Prometheus: " .. want)
            end
            local function transport_error(kc, want)
                fails({ "--prometheus-auth-config=" .. kc },
                    "unable to construct client transport for connecting to Prometheus: " .. want)
            end

            it("rejects a missing file and exec plugins", function()
                config_error("/nonexistent/kubeconfig", "stat /nonexistent/kubeconfig: no such file or directory")
                local kdir = helpers.tmpdir("kc")
                local kc = kubeconfig(kdir, nil,
                    "    exec: {command: get-token, apiVersion: client.authentication.k8s.io/v1}")
                config_error(kc, "kubeconfig " .. kc .. ': user "prom": exec credential plugins are not supported')
            end)

            it("rejects missing certificate-authority, client-certificate and client-key files", function()
                local kdir = helpers.tmpdir("kc")
                local kc = kubeconfig(kdir, "    certificate-authority: ./sub/../missing-ca.pem")
                local ca = kdir .. "/missing-ca.pem"    -- resolved against the kubeconfig, cleaned
                config_error(kc, "invalid configuration: unable to read certificate-authority " .. ca
                    .. " for prom due to open " .. ca .. ": no such file or directory")
                kc = kubeconfig(kdir, nil, "    client-certificate: c.pem\n    client-key: k.pem")
                local c, k = kdir .. "/c.pem", kdir .. "/k.pem"
                config_error(kc, "invalid configuration: [unable to read client-cert " .. c .. " for prom due to open "
                    .. c .. ": no such file or directory, unable to read client-key " .. k
                    .. " for prom due to open " .. k .. ": no such file or directory]")
                kc = kubeconfig(kdir, nil, "    client-certificate: " .. pki.client)
                config_error(kc, "invalid configuration: client-key-data or client-key must be specified for "
                    .. "prom to use the clientCert authentication method.")
                kc = kubeconfig(kdir, nil, "    token: t\n    username: u\n    password: p")
                config_error(kc, "invalid configuration: more than one authentication method found for prom; "
                    .. "found [token basicAuth], only one is allowed")
                kc = kubeconfig(kdir, nil, "    tokenFile: " .. kdir .. "/no-token")
                config_error(kc, "open " .. kdir .. "/no-token: no such file or directory")
            end)

            it("rejects *-data that is not base64", function()
                local kdir = helpers.tmpdir("kc")
                local kc = kubeconfig(kdir, "    certificate-authority-data: bm90IHBlbQ")
                config_error(kc, 'error loading config file "' .. kc .. '": illegal base64 data at input byte 8')
                kc = kubeconfig(kdir, nil, "    client-certificate-data: 'ab*d'\n    client-key-data: YQ==")
                config_error(kc, 'error loading config file "' .. kc .. '": illegal base64 data at input byte 2')
            end)

            it("rejects CA data or a CA file without a usable certificate", function()
                local kdir = helpers.tmpdir("kc")
                transport_error(kubeconfig(kdir, "    certificate-authority-data: " .. b64("not pem\n")),
                    "unable to load root certificates: unable to parse bytes as PEM block")
                helpers.write_file(kdir .. "/key-only.pem", helpers.read_file(pki.ca_key))
                transport_error(kubeconfig(kdir, "    certificate-authority: key-only.pem"),
                    "unable to load root certificates: no valid certificate authority data seen")
                transport_error(kubeconfig(kdir, "    certificate-authority-data: "
                    .. b64("-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n")),
                    "unable to load root certificates: failed to parse certificate: x509: malformed certificate")
                transport_error(kubeconfig(kdir, "    certificate-authority: " .. pki.ca
                    .. "\n    insecure-skip-tls-verify: true"),
                    "specifying a root certificates file with the insecure flag is not supported")
            end)

            it("rejects client certificate data that does not match its key", function()
                local kdir = helpers.tmpdir("kc")
                transport_error(kubeconfig(kdir, nil,
                    "    client-certificate-data: " .. b64(helpers.read_file(pki.client)) .. "\n"
                    .. "    client-key-data: " .. b64(helpers.read_file(pki.client2_key))),
                    "tls: private key does not match public key")
                -- one of the two as data is enough for client-go to check the pair
                transport_error(kubeconfig(kdir, nil,
                    "    client-certificate: " .. pki.client .. "\n"
                    .. "    client-key-data: " .. b64(helpers.read_file(pki.client))),
                    "tls: found a certificate rather than a key in the PEM for the private key")
            end)

            it("applies the same client-go checks to --lister-kubeconfig", function()
                local kdir = helpers.tmpdir("kc")
                local kc = kubeconfig(kdir, "    certificate-authority: missing-ca.pem")
                local ca = kdir .. "/missing-ca.pem"
                local rc, err = helpers.run_adapter { config = CONFIG, args = { "--lister-kubeconfig=" .. kc } }
                assert.equal(255, rc, err)
                assert.truthy(err:find("unable to construct lister client config: invalid configuration: unable to "
                    .. "read certificate-authority " .. ca .. " for prom due to open " .. ca
                    .. ": no such file or directory\n", 1, true), err)
            end)
        end)

        it("does not check in-cluster/kubeconfig conflicts when --prometheus-ca-file is set", function()
            starts({ "--prometheus-ca-file=" .. pki.ca,
                "--prometheus-auth-incluster", "--prometheus-auth-config=/x/kubeconfig" })
        end)
    end)
end)
