-- spec/integration/faults_spec.lua: the real binary against a Prometheus
-- and a Kubernetes API that fail: refused connections, resets mid-body, a
-- 1 byte/s answer, a 1 GiB body, invalid UTF-8, deep JSON nesting, wrong
-- content types; discovery failing or timing out (the client's fixed 30 s:
-- the slowest test), LIST timing out, watches expiring (410), a LIST of
-- 50,000 objects, invalid UTF-8 in objects. For each: memory stays
-- bounded (VmHWM from /proc), the client gets a Status (or the data) and
-- the log names the cause, and the adapter keeps serving
-- afterwards. Invalid UTF-8 is read as prometheus-adapter (Go's
-- encoding/json) reads it: one U+FFFD per bad byte, and a 200.
-- Uses: spec/helpers.lua, spec/robust_helpers.lua,
-- spec/fixtures/fault_server.lua, fake_kube.lua, fake_prometheus.lua.

local helpers = require "helpers"
local R = require "robust_helpers"
local cjson = require "cjson"

local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (namespace, queue)'
resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[3m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(node_cpu_seconds_total{<<.LabelMatchers>>,mode!="idle"}[3m])) by (<<.GroupBy>>)'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(node_memory_MemTotal_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  window: 1m
]]

-- U+FFFD, what Go's decoder puts in place of each byte of invalid UTF-8
local FFFD = "\239\191\189"
-- bytes never valid, an overlong "/", a UTF-8-encoded surrogate
local BAD = "a\255\254b\192\175c\237\160\128"
local FIXED = "a" .. FFFD .. FFFD .. "b" .. FFFD .. FFFD .. "c" .. FFFD .. FFFD .. FFFD

local CUSTOM = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_per_second"
local EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"
local SERIES = cjson.encode({ status = "success", data = {
    { __name__ = "http_requests_total", namespace = "default", pod = "p", job = "j" },
    { __name__ = "queue_depth", namespace = "default", job = "j" } } })
local EMPTY = '{"status":"success","data":{"resultType":"vector","result":[]}}'

local function vector(samples)
    return cjson.encode({ status = "success", data = { resultType = "vector", result = samples } })
end

-- The adapter answered with a Kubernetes Status of this code.
local function assert_status(status, doc, body, code)
    assert.are.equal(code, status, body)
    assert.is_table(doc, body)
    assert.are.equal("Status", doc.kind)
    assert.are.equal(code, doc.code)
    assert.is_string(doc.message)
end

-- Healthy answers again once the fault is gone (within a few relists).
local function assert_serving(a, fault)
    if fault then fault:set({ path = "/api/v1/query", body = vector({
        { metric = { namespace = "default", queue = "q1" }, value = { 1715851267, "7" } } }) }) end
    local st, doc, body
    helpers.wait_until(function()
        st, doc, body = a:get_json(EXTERNAL)
        return st == 200
    end, helpers.scale(10), 0.2)
    assert.are.equal(200, st, body)
    assert.are.equal("7", doc.items[1].value)
    assert.are.equal("ExternalMetricValueList", doc.kind)
    local lst = a:get("/readyz")
    assert.are.equal(200, lst)
end

-- Peak memory growth over a call must stay under limit_mb (scaled: ASan
-- shadow memory and quarantine make everything bigger).
local function bounded(a, limit_mb, fn)
    local before = R.hwm_kb(a.pid)
    fn()
    local after = R.hwm_kb(a.pid)
    local limit = helpers.scale(limit_mb) * 1024
    assert.is_true(after - before < limit, string.format(
        "peak RSS grew by %d kB (limit %d kB)", after - before, limit))
end

describe("faults: Prometheus", function()
    local kube, fault, a

    lazy_setup(function()
        kube = helpers.start_kube({ state_file = helpers.fixture("kube/objects.json") })
        fault = R.start_fault_server()
        fault:set({ path = "/api/v1/series", body = SERIES })
        fault:set({ path = "/api/v1/query", body = EMPTY })
        a = helpers.start_adapter({ config = CONFIG, kube = kube,
            args = { "--prometheus-url=" .. fault:url() } })
        -- discovery done: the external metric is listed
        assert.is_truthy(helpers.wait_until(function()
            local st = a:get(EXTERNAL)
            return st == 200
        end, helpers.scale(10), 0.2))
    end)

    lazy_teardown(function()
        if a then a:stop() end
        if fault then fault:stop() end
        if kube then kube:stop() end
    end)

    before_each(function()
        fault:clear()
        fault:set({ path = "/api/v1/series", body = SERIES })
    end)

    it("a connection reset mid-body is a 500 Status naming no internals, logged with the cause", function()
        fault:set({ path = "/api/v1/query", mode = "reset", body = vector({
            { metric = { namespace = "default", queue = "q1" }, value = { 1715851267, "7" } } }) })
        bounded(a, 64, function()
            local st, doc, body = a:get_json(EXTERNAL)
            assert_status(st, doc, body, 500)
            assert.matches("unable to fetch metrics", doc.message)
            assert.is_truthy(helpers.wait_until(function()
                return a:stderr():find("unable to fetch metrics from prometheus: [^\n]*[Rr]eset", 1)
                    or a:stderr():find("unable to fetch metrics from prometheus: [^\n]*transfer closed", 1)
            end, 5), a:stderr())
        end)
        assert_serving(a, fault)
    end)

    it("a connection closed without an answer is a 500 Status", function()
        fault:set({ path = "/api/v1/query", mode = "close" })
        local st, doc, body = a:get_json(EXTERNAL)
        assert_status(st, doc, body, 500)
        assert.is_truthy(a:stderr():find("Empty reply from server", 1, true), a:stderr())
        assert_serving(a, fault)
    end)

    it("a 1 byte/s answer is cut at the request deadline while other requests are served", function()
        -- the pods cache warm first, so the request's whole deadline is
        -- spent on the trickling Prometheus answer
        fault:set({ path = "/api/v1/query", body = EMPTY })
        assert.are.equal(200, (a:get(CUSTOM)))
        fault:set({ path = "/api/v1/query", mode = "trickle", interval = 1, bytes = 1,
            query = "http_requests_total", body = vector({}) .. string.rep(" ", 200) })
        fault:set({ path = "/api/v1/query", query = "queue_depth", body = EMPTY })
        local deadline = helpers.scale(3)
        local mark = #a:stderr()
        bounded(a, 64, function()
            local t0 = helpers.now()
            -- ?timeout=: the apiserver request deadline (below the default)
            local out = helpers.tmpdir("trickle") .. "/body"
            local bg = R.background(string.format(
                "curl -sk -o %s -w '%%{http_code}' --max-time 60 'https://127.0.0.1:%d%s?timeout=%ds'",
                helpers.shq(out), a.port, CUSTOM, deadline))
            helpers.sleep(0.5)
            -- meanwhile another client is answered at once
            local t1 = helpers.now()
            local st = a:get(EXTERNAL)
            assert.are.equal(200, st)
            assert.is_true(helpers.now() - t1 < helpers.scale(2))
            local code, rc = R.wait_background(bg, helpers.scale(30))
            assert.are.equal(0, rc)
            local elapsed = helpers.now() - t0
            -- an error within a few seconds of the deadline, not after the
            -- 260 s the body would take: 504 when the deadline check after
            -- the handler wins (the Prometheus call's timeout is capped at
            -- the same deadline), 500 when that timeout fired a little early
            code = tonumber(code)
            local body = helpers.read_file(out) or ""
            local ok, doc = pcall(cjson.decode, body)
            assert.is_true(ok, body)
            assert_status(code, doc, body, code == 500 and 500 or 504)
            if code == 500 then
                assert.are.equal("Internal error occurred: unable to fetch metrics", doc.message)
            else
                assert.are.equal("Timeout", doc.reason)
                assert.are.equal("Timeout: request did not complete within the allotted timeout", doc.message)
            end
            assert.is_true(elapsed < deadline + helpers.scale(5), "took " .. elapsed)
            -- either way the log names the cut Prometheus call
            assert.is_truthy(helpers.wait_until(function()
                return a:stderr():sub(mark):find("unable to fetch metrics from prometheus: [^\n]*"
                    .. "[Tt]imed out[^\n]*http_requests_total")
            end, 5), a:stderr():sub(mark))
        end)
        assert_serving(a, fault)
    end)

    it("a body declaring 1 GiB is refused without buffering it", function()
        fault:set({ path = "/api/v1/query", mode = "huge", declared = 1073741824,
            body = '{"status":"success","data":{"resultType":"vector","result":[' })
        bounded(a, 64, function()
            local st, doc, body = a:get_json(EXTERNAL)
            assert_status(st, doc, body, 500)
        end)
        assert.is_truthy(a:stderr():find("response body exceeds", 1, true), a:stderr())
        assert_serving(a, fault)
    end)

    it("a chunked body that never ends is cut at the body cap, memory returned", function()
        -- no Content-Length: the 256 MiB cap applies as the bytes arrive
        fault:set({ path = "/api/v1/query", mode = "huge", chunked = true,
            declared = 300 * 1048576,
            body = '{"status":"success","data":{"resultType":"vector","result":[' })
        local rss0 = R.rss_kb(a.pid)
        local st, doc, body = a:get_json(EXTERNAL, nil, { max_time = helpers.scale(60) })
        assert_status(st, doc, body, 500)
        assert.is_truthy(a:stderr():find("response body exceeds 268435456 bytes", 1, true), a:stderr())
        -- the buffer is gone once the request is over
        assert.is_true(R.rss_kb(a.pid) - rss0 < helpers.scale(64) * 1024,
            "RSS after: " .. R.rss_kb(a.pid) .. " kB, before: " .. rss0 .. " kB")
        assert_serving(a, fault)
    end)

    it("invalid UTF-8 in an external metric's labels: 200, U+FFFD per bad byte in metricLabels", function()
        fault:set({ path = "/api/v1/query", body =
            '{"status":"success","data":{"resultType":"vector","result":[' ..
            '{"metric":{"namespace":"default","queue":"' .. BAD .. '"},"value":[1715851267,"3"]}]}}' })
        local st, doc, body = a:get_json(EXTERNAL)
        assert.are.equal(200, st, body)
        assert.is_true(R.valid_utf8(body), body)
        assert.are.equal("ExternalMetricValueList", doc.kind)
        assert.are.equal(FIXED, doc.items[1].metricLabels.queue)
        assert.are.equal("default", doc.items[1].metricLabels.namespace)
        assert.are.equal("3", doc.items[1].value)
        assert_serving(a, fault)
    end)

    it("invalid UTF-8 in a custom metric's object label: 200, the repaired name matches its object", function()
        -- a pod whose (valid) name is what Go makes of the bad label value
        local name = "utf8-" .. FFFD .. "-" .. FFFD
        kube:control("POST", "/_fake/objects", { resource = "pods",
            items = { { name = name, namespace = "default", phase = "Running" } } })
        local ok, err = pcall(function()
            fault:set({ path = "/api/v1/query", body =
                '{"status":"success","data":{"resultType":"vector","result":[' ..
                '{"metric":{"namespace":"default","pod":"utf8-\255-\192"},"value":[1715851267,"5"]}]}}' })
            local st, doc, body
            helpers.wait_until(function()   -- the pod cache sees the new pod
                st, doc, body = a:get_json(CUSTOM)
                return st == 200 and doc.items and #doc.items == 1
            end, helpers.scale(10), 0.2)
            assert.are.equal(200, st, body)
            assert.is_true(R.valid_utf8(body), body)
            assert.are.equal(1, #doc.items, body)
            assert.are.equal(name, doc.items[1].describedObject.name)
            assert.are.equal("5", doc.items[1].value)
        end)
        kube:control("POST", "/_fake/delete", { resource = "pods",
            items = { { name = name, namespace = "default" } } })
        assert(ok, err)
        assert_serving(a, fault)
    end)

    it("invalid UTF-8 in a container label (metrics.k8s.io): 200, the container named with U+FFFD", function()
        local pod = "sample-app-7cfb596f98-8h5mv"
        local function answer(v)
            return '{"status":"success","data":{"resultType":"vector","result":[' ..
                '{"metric":{"pod":"' .. pod .. '","container":"' .. BAD .. '"},"value":[1715851267,"' .. v .. '"]}]}}'
        end
        fault:set({ path = "/api/v1/query", query = "container_cpu_usage_seconds_total", body = answer("0.5") })
        fault:set({ path = "/api/v1/query", query = "container_memory_working_set_bytes", body = answer("1048576") })
        local st, doc, body = a:get_json("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/" .. pod)
        assert.are.equal(200, st, body)
        assert.is_true(R.valid_utf8(body), body)
        assert.are.equal("PodMetrics", doc.kind)
        assert.are.equal(1, #doc.containers, body)
        assert.are.equal(FIXED, doc.containers[1].name)
        assert.are.equal("500m", doc.containers[1].usage.cpu)
        assert.are.equal("1Mi", doc.containers[1].usage.memory)
        assert_serving(a, fault)
    end)

    it("invalid UTF-8 in series names: the repaired name is discovered and queried, as in PA", function()
        fault:set({ path = "/api/v1/series", body =
            '{"status":"success","data":[{"__name__":"bad\255\254_total","namespace":"default","pod":"p"},' ..
            '{"__name__":"http_requests_total","namespace":"default","pod":"p"},' ..
            '{"__name__":"queue_depth","namespace":"default"}]}' })
        -- "bad\uFFFD\uFFFD_total" matches "^(.*)_total" like any name
        local metric = "bad" .. FFFD .. FFFD .. "_per_second"
        local st0, body
        assert.is_truthy(helpers.wait_until(function()
            local _
            st0, _, body = a:get_json("/apis/custom.metrics.k8s.io/v1beta2")
            return st0 == 200 and body:find("pods/" .. metric, 1, true)
        end, helpers.scale(10), 0.2), body)
        assert.is_true(R.valid_utf8(body), body)
        assert.is_truthy(body:find("pods/http_requests_per_second", 1, true), body)
        assert.is_table(cjson.decode(body))
        local st, _, b2 = a:get_json("/apis/custom.metrics.k8s.io/v1beta1")
        assert.are.equal(200, st)
        assert.is_true(R.valid_utf8(b2), b2)
        assert.is_truthy(b2:find("pods/" .. metric, 1, true), b2)
        -- the PromQL names the repaired series (the rule only answers that)
        fault:set({ path = "/api/v1/query", query = "bad" .. FFFD .. FFFD .. "_total", body = vector({
            { metric = { namespace = "default", pod = "other-0" }, value = { 1715851267, "4" } } }) })
        local st2, doc, b3 = a:get_json(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/" .. helpers.urlencode(metric))
        assert.are.equal(200, st2, b3)
        assert.are.equal(1, #doc.items, b3)
        assert.are.equal("other-0", doc.items[1].describedObject.name)
        assert.are.equal(metric, doc.items[1].metric.name)
        assert_serving(a, fault)
    end)

    it("JSON nested 100,000 levels deep is a 500 Status, not a stack overflow", function()
        fault:set({ path = "/api/v1/query", body =
            '{"status":"success","data":{"resultType":"vector","result":[' ..
            string.rep("[", 100000) .. string.rep("]", 100000) .. ']}}' })
        bounded(a, 64, function()
            local st, doc, body = a:get_json(EXTERNAL)
            assert_status(st, doc, body, 500)
        end)
        fault:set({ path = "/api/v1/query", body =
            '{"status":"success","data":{"resultType":"vector","result":[{"metric":' ..
            string.rep('{"a":', 100000) .. "1" .. string.rep("}", 100000) .. ',"value":[1,"1"]}]}}' })
        local st, doc, body = a:get_json(EXTERNAL)
        assert_status(st, doc, body, 500)
        assert_serving(a, fault)
    end)

    it("deeply nested series data fails that discovery with a log line and keeps the registry", function()
        fault:set({ path = "/api/v1/series", body =
            '{"status":"success","data":[' .. string.rep("[", 100000) .. string.rep("]", 100000) .. ']}' })
        assert.is_truthy(helpers.wait_until(function()
            return a:stderr():find("bad_response", 1, true)
        end, helpers.scale(10), 0.2), a:stderr())
        -- the metrics discovered earlier are still served
        assert_serving(a, fault)
    end)

    it("wrong content types: HTML is a 500 Status, JSON labelled text/plain is read", function()
        bounded(a, 64, function()
            fault:set({ path = "/api/v1/query", content_type = "text/html",
                body = "<html><body>502 Bad Gateway</body></html>" })
            local st, doc, body = a:get_json(EXTERNAL)
            assert_status(st, doc, body, 500)
            assert.is_truthy(helpers.wait_until(function()
                return a:stderr():find("bad_response", 1, true)
            end, 5), a:stderr())
            fault:set({ path = "/api/v1/query", content_type = "text/plain; charset=utf-8", body = vector({
                { metric = { namespace = "default", queue = "q9" }, value = { 1715851267, "9" } } }) })
            st, doc, body = a:get_json(EXTERNAL)
            assert.are.equal(200, st, body)
            assert.are.equal("9", doc.items[1].value)
        end)
        assert_serving(a, fault)
    end)

    it("HTTP 502 and 503 with HTML bodies are 500 Statuses with the cause logged", function()
        fault:set({ path = "/api/v1/query", status = 502, content_type = "text/html",
            body = "<html>bad gateway</html>" })
        local st, doc, body = a:get_json(EXTERNAL)
        assert_status(st, doc, body, 500)
        assert.is_truthy(a:stderr():find("unknown response code 502", 1, true), a:stderr())
        -- 503 is one of the API's own error codes: the body is read as JSON
        -- first, as client_golang does, so the log names the bad body
        fault:set({ path = "/api/v1/query", status = 503, content_type = "text/html",
            body = "<html>unavailable</html>" })
        local before = #a:stderr()
        st, doc, body = a:get_json(EXTERNAL)
        assert_status(st, doc, body, 500)
        assert.is_truthy(a:stderr():sub(before):find("bad_response", 1, true), a:stderr())
        assert_serving(a, fault)
    end)
end)

describe("faults: Prometheus refusing connections", function()
    it("the adapter starts, logs the refusal, answers Status errors and recovers when Prometheus comes", function()
        local kube = helpers.start_kube({ state_file = helpers.fixture("kube/objects.json") })
        local port = helpers.free_port()
        local a = helpers.start_adapter({ config = CONFIG, kube = kube,
            args = { "--prometheus-url=http://127.0.0.1:" .. port } })
        local fault
        local ok, err = pcall(function()
            assert.is_truthy(helpers.wait_until(function()
                return a:stderr():find("[Cc]onnection refused")
                    or a:stderr():find("Couldn't connect")
            end, helpers.scale(10), 0.2), a:stderr())
            local st, doc, body = a:get_json(EXTERNAL)
            -- nothing discovered yet: the metric is unknown (404 Status)
            assert_status(st, doc, body, 404)
            assert.are.equal(200, (a:get("/livez")))
            -- Prometheus comes up on that port: the next relists find the
            -- series and the metric is served
            fault = R.start_fault_server(port)
            fault:set({ path = "/api/v1/series", body = SERIES })
            assert_serving(a, fault)
        end)
        a:stop()
        kube:stop()
        if fault then fault:stop() end
        assert(ok, err)
    end)
end)

describe("faults: Kubernetes API", function()
    local KCONFIG = [[
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'svc_hits_total{namespace!="",service!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: "^(.*)_total", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'ep_hits_total{namespace!="",endpoints!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: "^(.*)_total", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
]]
    local SVC = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/*/svc_hits_per_second"
    local kube, prom, a

    local function queries()
        local out = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            local q = r.params.query
            if not q and r.body then q = helpers.parse_query(r.body).query end
            out[#out + 1] = q
        end
        return out
    end

    lazy_setup(function()
        kube = helpers.start_kube({ state_file = helpers.fixture("kube/objects.json") })
        prom = helpers.start_prometheus()
        prom:control("POST", "/_fake/series", { match = 'http_requests_total{namespace!="",pod!=""}',
            data = { { __name__ = "http_requests_total", namespace = "default", pod = "p", job = "j" } } })
        prom:control("POST", "/_fake/series", { match = 'queue_depth{namespace!=""}',
            data = { { __name__ = "queue_depth", namespace = "default", job = "j" } } })
        prom:control("POST", "/_fake/series", { match = 'svc_hits_total{namespace!="",service!=""}',
            data = { { __name__ = "svc_hits_total", namespace = "default", service = "s", job = "j" } } })
        prom:control("POST", "/_fake/series", { match = 'ep_hits_total{namespace!="",endpoints!=""}',
            data = { { __name__ = "ep_hits_total", namespace = "default", endpoints = "e", job = "j" } } })
        a = helpers.start_adapter({ config = KCONFIG, kube = kube, prometheus = prom,
            args = { "--discovery-interval=1s" } })
        assert.is_truthy(helpers.wait_until(function()
            local st, _, body = a:get("/apis/custom.metrics.k8s.io/v1beta2")
            return a:get(CUSTOM) == 200 and st == 200
                and body:find("endpoints/ep_hits_per_second", 1, true)
                and body:find("services/svc_hits_per_second", 1, true)
        end, helpers.scale(10), 0.2))
    end)

    lazy_teardown(function()
        if a then a:stop() end
        if prom then prom:stop() end
        if kube then kube:stop() end
    end)

    after_each(function()
        kube:control("DELETE", "/_fake/fail")
    end)

    it("failing discovery keeps the previous resource map, logged, and requests keep working", function()
        kube:control("POST", "/_fake/fail", { path = "/apis", status = 500 })
        kube:control("POST", "/_fake/fail", { path = "/api", status = 503 })
        assert.is_truthy(helpers.wait_until(function()
            return a:stderr():find("API discovery failed, keeping the previous resource map", 1, true)
        end, helpers.scale(10), 0.2), a:stderr())
        local st, doc, body = a:get_json(CUSTOM)
        assert.are.equal(200, st, body)
        assert.are.equal("MetricValueList", doc.kind)
        st = a:get("/apis/custom.metrics.k8s.io/v1beta2")
        assert.are.equal(200, st)
    end)

    it("a LIST that keeps failing is a Status naming it; the cache recovers after back-off", function()
        kube:control("POST", "/_fake/fail", { pattern = "^/api/v1/services$", status = 500 })
        local st, doc, body = a:get_json(SVC)
        assert.is_true(st >= 500, body)
        assert.are.equal("Status", doc.kind)
        assert.are.equal("Internal error occurred: unable to list matching resources", doc.message)
        assert.is_truthy(a:stderr():find("kcache /api/v1/services: list /api/v1/services: HTTP 500", 1, true),
            a:stderr())
        kube:control("DELETE", "/_fake/fail")
        -- back-off doubles from 0.5 s: the next attempts are seconds apart
        assert.is_truthy(helpers.wait_until(function()
            return a:get(SVC) == 200
        end, helpers.scale(20), 0.3), a:stderr())
    end)

    it("a LIST that never answers costs the request its deadline, not more", function()
        kube:control("POST", "/_fake/fail", { pattern = "^/api/v1/endpoints$", hang = true })
        local mark = #a:stderr()
        bounded(a, 64, function()
            local t0 = helpers.now()
            local st, doc, body = a:get_json(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/endpoints/*/ep_hits_per_second?timeout=3s")
            local took = helpers.now() - t0
            assert.is_true(took < helpers.scale(6), "took " .. took)
            -- the cache wait is capped at the deadline: 504 when the answer
            -- comes at the deadline, 500 when the wait ended a little early
            assert_status(st, doc, body, st == 500 and 500 or 504)
            if st == 500 then
                assert.are.equal("Internal error occurred: unable to list matching resources", doc.message)
            else
                assert.are.equal("Timeout: request did not complete within the allotted timeout", doc.message)
            end
            assert.is_truthy(helpers.wait_until(function()
                return a:stderr():sub(mark):find("unable to list matching resources: timed out waiting "
                    .. "for the initial list of /api/v1/endpoints", 1, true)
            end, 5), a:stderr():sub(mark))
        end)
        -- the server itself stays responsive, other caches too
        assert.are.equal(200, (a:get("/livez")))
        assert.are.equal(200, (a:get(CUSTOM)))
    end)

    it("a discovery that never answers keeps the previous resource map until its 30 s timeout, logged", function()
        -- the relist thread waits out the Kubernetes client's fixed 30 s
        -- timeout on /api; meanwhile everything is served from the last
        -- resource map and caches
        kube:control("POST", "/_fake/fail", { path = "/api", hang = true })
        local mark = #a:stderr()
        bounded(a, 64, function()
            local t0 = helpers.now()
            local function logged()
                return a:stderr():sub(mark):find("API discovery failed, keeping the previous "
                    .. "resource map: [^\n]*[Tt]imed out")
            end
            local served = 0
            while not logged() and helpers.now() - t0 < 30 + helpers.scale(15) do
                local st, doc, body = a:get_json(CUSTOM)
                assert.are.equal(200, st, body)
                assert.are.equal("MetricValueList", doc.kind)
                local st2, _, list = a:get("/apis/custom.metrics.k8s.io/v1beta2")
                assert.are.equal(200, st2)
                assert.is_truthy(list:find("services/svc_hits_per_second", 1, true), list)
                assert.are.equal(200, (a:get("/livez")))
                served = served + 1
                helpers.sleep(1)
            end
            assert.is_truthy(logged(), a:stderr():sub(mark))
            assert.is_true(helpers.now() - t0 > 25, "logged after " .. (helpers.now() - t0) .. " s")
            assert.is_true(served >= 10, "served " .. served .. " rounds")
        end)
        -- discovery recovers once /api answers again
        kube:control("DELETE", "/_fake/fail")
        local after = #a:stderr()
        helpers.sleep(3)
        assert.is_falsy(a:stderr():sub(after):find("API discovery failed", 1, true), a:stderr():sub(after))
        assert.are.equal(200, (a:get(CUSTOM)))
    end)

    it("an expired watch (ERROR 410 event, then HTTP 410) makes the cache re-list and see new objects", function()
        -- the pods cache is warm (set-up asked for pods)
        kube:control("POST", "/_fake/expire", { resource = "pods", mode = "event" })
        kube:control("POST", "/_fake/objects", { resource = "pods",
            items = { { name = "late-pod-1", namespace = "default", labels = { app = "late" } } } })
        kube:control("POST", "/_fake/expire", { resource = "pods", mode = "status" })
        kube:control("POST", "/_fake/objects", { resource = "pods",
            items = { { name = "late-pod-2", namespace = "default", labels = { app = "late" } } } })
        prom:clear_requests()
        assert.is_truthy(helpers.wait_until(function()
            a:get(CUSTOM)
            for _, q in ipairs(queries()) do
                if q:find("late-pod-1", 1, true) and q:find("late-pod-2", 1, true) then return true end
            end
        end, helpers.scale(15), 0.3), cjson.encode(queries()))
        -- a LIST after the expiry
        local lists = 0
        for _, r in ipairs(kube:requests()) do
            if r.path == "/api/v1/pods" and not (r.params.watch) then lists = lists + 1 end
        end
        assert.is_true(lists >= 1)
    end)

    it("invalid UTF-8 in objects (WATCH and LIST) is read as Go reads it, not a failed cache", function()
        local fixed = "utf8-" .. FFFD .. FFFD
        local function named()
            a:get(CUSTOM)
            for _, q in ipairs(queries()) do
                if q:find(fixed, 1, true) then return true end
            end
        end
        local function lists()
            local n = 0
            for _, r in ipairs(kube:requests()) do
                if r.path == "/api/v1/pods" and not r.params.watch then n = n + 1 end
            end
            return n
        end
        local ok, err = pcall(function()
            -- the pods cache is warm: the pod comes as a WATCH event
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "utf8-\255\254", namespace = "default", labels = { app = "x\192" } } } })
            prom:clear_requests()
            assert.is_truthy(helpers.wait_until(named, helpers.scale(10), 0.3), a:stderr())
            -- and in a LIST, once the watch expired
            local before = lists()
            kube:control("POST", "/_fake/expire", { resource = "pods", mode = "status" })
            assert.is_truthy(helpers.wait_until(function() return lists() > before end,
                helpers.scale(10), 0.2))
            prom:clear_requests()
            assert.is_truthy(helpers.wait_until(named, helpers.scale(10), 0.3), a:stderr())
            assert.are.equal(200, (a:get(CUSTOM)))
            assert.is_falsy(a:stderr():find("bad watch event", 1, true), a:stderr())
            assert.is_falsy(a:stderr():find("invalid JSON", 1, true), a:stderr())
        end)
        kube:control("POST", "/_fake/delete", { resource = "pods",
            items = { { name = "utf8-\255\254", namespace = "default" } } })
        assert(ok, err)
    end)

    it("a LIST of 50,000 pods: bounded memory, one query naming them all", function()
        -- fake_kube.lua grows quadratically with that many objects, so a
        -- fault_server plays the lister's API: discovery, one 50,000-item
        -- LIST page, and a watch that never sends anything
        local big = R.start_fault_server()
        local items = {}
        for i = 1, 50000 do
            items[i] = string.format(
                '{"metadata":{"name":"big-%05d","namespace":"big","resourceVersion":"5","labels":{"app":"big"}}}', i)
        end
        big:set({ path = "/api", body = '{"kind":"APIVersions","versions":["v1"]}' })
        big:set({ path = "/apis", body = '{"kind":"APIGroupList","groups":[]}' })
        big:set({ path = "/api/v1", body = cjson.encode({ kind = "APIResourceList", groupVersion = "v1",
            resources = {
                { name = "pods", singularName = "pod", namespaced = true, kind = "Pod" },
                { name = "namespaces", singularName = "namespace", namespaced = false, kind = "Namespace" } } }) })
        big:set({ path = "/api/v1/pods", body = '{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":['
            .. table.concat(items, ",") .. "]}" })
        big:set({ path = "/api/v1/pods", params = { watch = "true" }, mode = "hang" })
        local kc = helpers.write_file(helpers.tmpdir("bigkc") .. "/kubeconfig", table.concat({
            "apiVersion: v1", "kind: Config", "current-context: c",
            "clusters: [{name: k, cluster: {server: '" .. big:url() .. "'}}]",
            "contexts: [{name: c, context: {cluster: k, user: u}}]",
            "users: [{name: u, user: {token: t}}]", "" }, "\n"))
        -- under ASan a small quarantine: freed blocks held back (256 MiB by
        -- default) would otherwise be counted as the adapter's own
        local env = {}
        if os.getenv("ADAPTER_ASAN") == "1" then
            env.ASAN_OPTIONS = (os.getenv("ASAN_OPTIONS") or "") .. ":quarantine_size_mb=16"
        end
        local b = helpers.start_adapter({ config = KCONFIG, kube = kube, prometheus = prom,
            args = { "--lister-kubeconfig=" .. kc }, env = env })
        local ok, err = pcall(function()
            local hwm0 = R.hwm_kb(b.pid)
            prom:clear_requests()
            local path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/big/pods/*/http_requests_per_second"
            local st, doc, body
            helpers.wait_until(function()
                st, doc, body = b:get_json(path, nil, { max_time = helpers.scale(30) })
                return st == 200
            end, helpers.scale(30), 0.5)
            assert.are.equal(200, st, body)
            assert.are.equal("MetricValueList", doc.kind)
            local found
            for _, q in ipairs(queries()) do
                if q:find("big-00001", 1, true) then
                    local _, bars = q:gsub("|", "")
                    found = bars
                    assert.is_truthy(q:find("big-50000", 1, true))
                end
            end
            assert.are.equal(49999, found)
            local grew = R.hwm_kb(b.pid) - hwm0
            assert.is_true(grew < helpers.scale(256) * 1024, "peak RSS grew by " .. grew .. " kB")
            assert.are.equal(200, (b:get("/readyz")))
        end)
        b:stop()
        big:stop()
        assert(ok, err)
    end)
end)
