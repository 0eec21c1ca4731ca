-- spec/integration/e2e_prometheus_spec.lua: the demo stack end to end: a
-- real Prometheus (Debian's /usr/bin/prometheus) on loopback scraping the
-- demo workload (scripts/demo/exporter.lua) every second, the fake
-- Kubernetes API with the demo's objects, the adapter with the demo config
-- (rules/default.yaml + scripts/demo/external.yaml), and nginx as the
-- aggregator for kubectl. Every answer is checked against Prometheus' own:
-- Prometheus' query log gives the exact PromQL the adapter sent and its
-- evaluation time; the same query at the same instant through Prometheus'
-- API must give the values the adapter returned (int64(v*1000) milli units).
-- Uses: spec/helpers.lua, scripts/demo/stack.lua, prometheus, nginx, kubectl.
-- Must never: leave a process behind (teardown stops each, by pid).

local helpers = require "helpers"
local cjson = require "cjson"
package.path = "scripts/?.lua;" .. package.path
local stack = require "demo.stack"

local shq = helpers.shq

-- A background process with its pid, stopped by pid (the spec helpers'
-- spawn is private, and these are not fakes or the adapter).
local procs = {}
local function start(name, cmd, dir)
    local sh = string.format("%s >%s 2>%s & echo $! >%s.tmp && mv %s.tmp %s; wait",
        cmd, shq(dir .. "/" .. name .. ".out"), shq(dir .. "/" .. name .. ".err"),
        shq(dir .. "/" .. name .. ".pid"), shq(dir .. "/" .. name .. ".pid"),
        shq(dir .. "/" .. name .. ".pid"))
    os.execute("sh -c " .. shq(sh) .. " </dev/null >/dev/null 2>&1 &")
    local pid = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/" .. name .. ".pid")
        return s and tonumber(s:match("%d+"))
    end, 5)
    assert(pid, name .. " did not start")
    procs[#procs + 1] = pid
    return pid
end

local function stop_all()
    for _, pid in ipairs(procs) do os.execute("kill " .. pid .. " 2>/dev/null") end
    for _, pid in ipairs(procs) do
        helpers.wait_until(function()
            return os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= 0
        end, 5, 0.05)
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    procs = {}
end

local function have(cmd)
    return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == 0
end

-- "42", "500m", "50Mi", "1500m", "2Gi", "12345n" -> value in milli units.
local SUFFIX = { n = 1e-9, u = 1e-6, m = 1e-3, [""] = 1, k = 1e3, M = 1e6, G = 1e9,
    T = 1e12, P = 1e15, Ki = 1024, Mi = 1024 ^ 2, Gi = 1024 ^ 3, Ti = 1024 ^ 4 }
local function milli(q)
    local num, suf = tostring(q):match("^(%-?%d+%.?%d*)(%a*)$")
    assert(num and SUFFIX[suf], "not a quantity: " .. tostring(q))
    local v = tonumber(num) * SUFFIX[suf] * 1000
    return v >= 0 and math.floor(v + 1e-6) or math.ceil(v - 1e-6)
end

-- Go's int64(v*1000) for a Prometheus sample value text.
local function go_milli(text)
    local v = tonumber(text) * 1000
    return v >= 0 and math.floor(v) or math.ceil(v)
end

describe("end to end with a real Prometheus", function()
    local dir, prom_url, kube, adapter, front_port
    local query_log

    -- the Prometheus HTTP API (plain HTTP, loopback)
    local function prom_get(path, params)
        local code, body = helpers.http("GET", prom_url .. path .. "?" .. helpers.build_query(params or {}))
        assert(code == 200, "prometheus " .. path .. " -> " .. tostring(code) .. " " .. tostring(body))
        return cjson.decode(body)
    end

    -- The query-log entries (oldest first) whose PromQL equals `q`.
    local function logged(q)
        local out = {}
        for line in (helpers.read_file(query_log) or ""):gmatch("[^\n]+") do
            local ok, e = pcall(cjson.decode, line)
            if ok and e.params and e.params.query == q then out[#out + 1] = e end
        end
        return out
    end

    -- Runs `request` (returns the adapter's answer), finds the adapter's
    -- query for it in the query log, re-runs it at the logged instant and
    -- calls check(answer, prometheus_result). A scrape landing during the
    -- adapter's query can make the later re-run see one more sample, so up
    -- to three rounds are tried; a wrong query or value never matches.
    local function against_prometheus(q, request, check)
        local last_err
        for _ = 1, 3 do
            local before = #logged(q)
            local answer = request()
            local entries = helpers.wait_until(function()
                local l = logged(q)
                return #l > before and l
            end, 5)
            assert(entries, "the adapter never sent this query to Prometheus:\n" .. q)
            local at = entries[#entries].params["end"]
            local res = prom_get("/api/v1/query", { query = q, time = at })
            local ok, err = pcall(check, answer, res.data.result)
            if ok then return end
            last_err = err
        end
        error(last_err, 2)
    end

    lazy_setup(function()
        assert(have("prometheus"), "prometheus is not installed (scripts/deps.sh test)")
        dir = helpers.tmpdir("e2e")
        os.execute("chmod 755 " .. shq(dir))
        query_log = dir .. "/query.log"
        local root = shq(helpers.root())
        start("exporter", "cd " .. root .. " && exec luajit scripts/demo/exporter.lua --port 0", dir)
        local exporter_port = helpers.wait_until(function()
            local s = helpers.read_file(dir .. "/exporter.out")
            return s and tonumber(s:match("PORT (%d+)"))
        end, 5)
        assert(exporter_port, "the exporter did not start")
        local ports = { exporter = exporter_port, prometheus = helpers.free_port(), kube = 1,
            adapter = helpers.free_port(), front = helpers.free_port() }
        stack.write(dir, ports)
        kube = helpers.start_kube { discovery = dir .. "/discovery.json",
            state_file = dir .. "/objects.json" }
        ports.kube = kube.port
        stack.write(dir, ports)
        front_port = ports.front
        prom_url = "http://127.0.0.1:" .. ports.prometheus
        start("prometheus", "exec prometheus --config.file=" .. shq(dir .. "/prometheus.yml")
            .. " --storage.tsdb.path=" .. shq(dir .. "/prometheus-data")
            .. " --web.listen-address=127.0.0.1:" .. ports.prometheus .. " --log.level=warn", dir)
        assert(helpers.wait_until(function()
            return helpers.http("GET", prom_url .. "/-/ready", nil, nil, 1) == 200
        end, 30, 0.2), "Prometheus did not get ready:\n" .. (helpers.read_file(dir .. "/prometheus.err") or ""))
        -- three scrapes: rate() and irate() need two samples
        assert(helpers.wait_until(function()
            local code, body = helpers.http("GET", prom_url .. "/api/v1/query?" .. helpers.build_query {
                query = "min(count_over_time(container_cpu_usage_seconds_total[1m])) >= 3" }, nil, nil, 2)
            return code == 200 and body:find('"result":[{', 1, true)
        end, 30, 0.2), "Prometheus did not scrape the workload")
        -- delegated authn/authz through the fake (it allows every review),
        -- as scripts/demo.sh runs it
        local kc = dir .. "/kube.kubeconfig"
        adapter = helpers.start_adapter {
            config_file = dir .. "/config.yaml", kube = kube, relist = "2s", port = ports.adapter,
            prometheus = { url = function() return prom_url .. "/" end },
            args = { "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc,
                "--authentication-tolerate-lookup-failure=true" },
        }
        -- the first relist may have run before the series existed
        assert(helpers.wait_until(function()
            local _, _, body = adapter:get("/apis/custom.metrics.k8s.io/v1beta2")
            return body:find('"pods/http_requests"', 1, true)
        end, helpers.scale(20), 0.2), "no relist found the workload's series")
    end)

    lazy_teardown(function()
        stop_all()
        helpers.cleanup()
    end)

    it("discovers the custom metrics the default rules derive from the scraped series", function()
        local st, doc = adapter:get_json("/apis/custom.metrics.k8s.io/v1beta2")
        assert.are.equal(200, st)
        local names = {}
        for _, r in ipairs(doc.resources) do names[#names + 1] = r.name end
        table.sort(names)
        -- http_requests_total (rule 5: rate, _total dropped) and
        -- queue_messages_ready (rule 4: gauge, name kept) carry namespace,
        -- pod (http only), and the scrape's job label (jobs.batch, as PA
        -- maps it); the container_* series (rules 1 and 3) map namespace
        -- and pod only; node_* series have no namespace and match no rule.
        helpers.assert_same({
            "jobs.batch/http_requests", "jobs.batch/queue_messages_ready",
            "namespaces/cpu_usage", "namespaces/http_requests",
            "namespaces/memory_working_set_bytes", "namespaces/queue_messages_ready",
            "pods/cpu_usage", "pods/http_requests", "pods/memory_working_set_bytes",
        }, names)
    end)

    it("answers a custom metric by selector with Prometheus' values at the same instant", function()
        local q = 'sum(rate(http_requests_total{namespace="demo",pod=~"web-0|web-1|web-2"}[5m])) by (pod)'
        against_prometheus(q, function()
            local st, doc, body = adapter:get_json(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/http_requests?labelSelector=app%3Dweb")
            assert.are.equal(200, st, body)
            return doc
        end, function(doc, result)
            local want = {}
            for _, s in ipairs(result) do want[s.metric.pod] = go_milli(s.value[2]) end
            local got = {}
            for _, it in ipairs(doc.items) do
                assert.are.equal("Pod", it.describedObject.kind)
                assert.are.equal("http_requests", it.metric.name)
                got[it.describedObject.name] = milli(it.value)
            end
            assert.are.equal(3, #result)
            helpers.assert_same(want, got)
        end)
    end)

    it("answers a custom metric for one object and for the namespace", function()
        local q = 'sum(container_memory_working_set_bytes{namespace="demo",pod="web-1",container!="POD"}) by (pod)'
        against_prometheus(q, function()
            local st, doc = adapter:get_json(
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/pods/web-1/memory_working_set_bytes")
            assert.are.equal(200, st)
            return doc
        end, function(doc, result)
            assert.are.equal(1, #result)
            assert.are.equal(1, #doc.items)
            assert.are.equal("web-1", doc.items[1].describedObject.name)
            assert.are.equal(go_milli(result[1].value[2]), milli(doc.items[1].value))
            -- and that is what the workload exports
            assert.are.equal(60 * 1048576 * 1000, milli(doc.items[1].value))
        end)
        local nq = 'sum(queue_messages_ready{namespace="demo"}) by (namespace)'
        against_prometheus(nq, function()
            local st, doc = adapter:get_json(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/metrics/queue_messages_ready")
            assert.are.equal(200, st)
            return doc
        end, function(doc, result)
            assert.are.equal(1, #doc.items)
            assert.are.equal("Namespace", doc.items[1].describedObject.kind)
            assert.are.equal(go_milli(result[1].value[2]), milli(doc.items[1].value))
            assert.are.equal(49000, milli(doc.items[1].value))
        end)
    end)

    it("answers an external metric with Prometheus' samples", function()
        local q = 'sum(queue_messages_ready{queue="orders",namespace="demo"}) by (queue)'
        against_prometheus(q, function()
            local st, doc = adapter:get_json(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_messages_ready?labelSelector=queue%3Dorders")
            assert.are.equal(200, st)
            return doc
        end, function(doc, result)
            assert.are.equal(1, #result)
            assert.are.equal(1, #doc.items)
            assert.are.equal("queue_messages_ready", doc.items[1].metricName)
            helpers.assert_same({ queue = "orders" }, doc.items[1].metricLabels)
            assert.are.equal(go_milli(result[1].value[2]), milli(doc.items[1].value))
            assert.are.equal(42000, milli(doc.items[1].value))
        end)
        local all = 'sum(queue_messages_ready{namespace="demo"}) by (queue)'
        against_prometheus(all, function()
            local st, doc = adapter:get_json(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_messages_ready")
            assert.are.equal(200, st)
            return doc
        end, function(doc, result)
            local want, got = {}, {}
            for _, s in ipairs(result) do want[s.metric.queue] = go_milli(s.value[2]) end
            for _, it in ipairs(doc.items) do got[it.metricLabels.queue] = milli(it.value) end
            helpers.assert_same(want, got)
            helpers.assert_same({ orders = 42000, emails = 7000 }, got)
        end)
    end)

    it("answers metrics.k8s.io for pods and nodes from the resource rules' queries", function()
        -- rules/default.yaml's containerQuery templates, rendered for the
        -- namespace's four running pods (matchers: namespace, then pod)
        local pods = 'namespace="demo",pod=~"web-0|web-1|web-2|worker-0",container!="",pod!=""'
        local cpu = 'sum by (pod,container) (\n  irate (\n      container_cpu_usage_seconds_total{'
            .. pods .. '}[4m]\n  )\n)\n'
        local mem = 'sum by (pod,container) (\n  container_memory_working_set_bytes{' .. pods .. '}\n)\n'
        local before_mem = #logged(mem)
        against_prometheus(cpu, function()
            local st, doc, body = adapter:get_json("/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods")
            assert.are.equal(200, st, body)
            return doc
        end, function(doc, result)
            local want = {}
            for _, s in ipairs(result) do want[s.metric.pod .. "/" .. s.metric.container] = go_milli(s.value[2]) end
            local got, mems = {}, {}
            for _, pm in ipairs(doc.items) do
                assert.are.equal("5m0s", pm.window)
                for _, c in ipairs(pm.containers) do
                    got[pm.metadata.name .. "/" .. c.name] = milli(c.usage.cpu)
                    mems[pm.metadata.name] = milli(c.usage.memory)
                end
            end
            helpers.assert_same(want, got)
            local wmem = {}
            for _, p in ipairs(stack.workload.pods) do wmem[p.name] = p.mem * 1000 end
            helpers.assert_same(wmem, mems)
        end)
        assert.is_true(#logged(mem) > before_mem, "the memory query was not sent as expected:\n" .. mem)
        local st, node = adapter:get_json("/apis/metrics.k8s.io/v1beta1/nodes/demo-node")
        assert.are.equal(200, st)
        assert.are.equal(stack.workload.node_mem * 1000, milli(node.usage.memory))
        -- irate of a counter growing at 1.5/s, sampled at scrape times
        assert.is_true(math.abs(milli(node.usage.cpu) - 1500) < 150, node.usage.cpu)
    end)

    it("serves kubectl top pod through a front that routes as the aggregator does", function()
        if not have("nginx") or not have("kubectl") then
            error("nginx and kubectl are needed (scripts/deps.sh test)")
        end
        start("front", "exec nginx -p " .. shq(dir) .. " -c " .. shq(dir .. "/nginx.conf")
            .. " -e " .. shq(dir .. "/nginx-error.log"), dir)
        assert(helpers.wait_until(function()
            return helpers.http("GET", "http://127.0.0.1:" .. front_port .. "/api", nil, nil, 1) == 200
        end, 10, 0.1), "the front did not start")
        local f = io.popen("kubectl --kubeconfig=" .. shq(dir .. "/front.kubeconfig")
            .. " --cache-dir=" .. shq(dir .. "/kube-cache") .. " --request-timeout=15s top pod 2>&1")
        local out = f:read("*a")
        f:close()
        local rows = {}
        for name, cpu, mem in out:gmatch("\n(%S+)%s+(%d+m)%s+(%d+Mi)") do
            rows[name] = { cpu = cpu, mem = mem }
        end
        for _, p in ipairs(stack.workload.pods) do
            assert(rows[p.name], "kubectl top pod lacks " .. p.name .. ":\n" .. out)
            assert.are.equal(string.format("%dMi", p.mem / 1048576), rows[p.name].mem)
        end
    end)
end)
