-- spec/integration/hooks_spec.lua: Lua hooks (--lua-script) end to end,
-- the real binary against the fake Prometheus and Kubernetes API:
-- a compute hook answering an external metric from two queries
-- (rules/examples/formula.lua), a per-rule render_query hook
-- (rules/examples/tenant.lua), a global metric_name hook
-- (rules/examples/rename.lua), compute with fallback
-- (rules/examples/fallback.lua), a hook that raises (500 Status naming the
-- hook, logged), one that never returns and one whose sample loops in
-- __index (500 within --lua-hook-timeout, the adapter keeps serving), a
-- discovery hook that raises (series dropped, logged, counted), and the
-- start-up errors (a script that does not load, a rule naming a function
-- no script exports).  The parity run of the other integration specs is
-- ADAPTER_PARITY=1 (spec/helpers.lua).
-- Uses: spec/helpers.lua, rules/examples/*.lua.

local helpers = require "helpers"

local CUSTOM = "/apis/custom.metrics.k8s.io/v1beta1"
local EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1"
local TS = 1715851267.123

local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
  hooks: {render_query: per_tenant, metric_name: rename}
- seriesQuery: 'jobs_running{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {compute: fallback}
- seriesQuery: 'broken_gauge{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {render_query: explode}
- seriesQuery: 'slow_gauge{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {compute: spin}
- seriesQuery: 'loopy_gauge{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {compute: loopy}
- seriesQuery: '{__name__=~"flaky_.*",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {metric_name: flaky_name}
externalRules:
- seriesQuery: 'queue_backlog{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  name: {as: "backlog_per_worker"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
  hooks: {compute: backlog_per_worker}
]]

-- A hook script of this spec: a global match_series, one that raises, one
-- that never returns, one whose sample loops in __index (read by the
-- adapter after the hook returned: it must still be cut), a metric_name
-- hook that raises for one series.
local TEST_HOOKS = [[
return {
    match_series = function(rule, series, default)
        if series.name:find("^hidden_") then return false end
        return default(rule, series)
    end,
    explode = function(rule, request, default) error("tenant table missing") end,
    spin = function(rule, request, prom, default) while true do end end,
    loopy = function(rule, request, prom, default)
        return { setmetatable({ labels = { pod = "worker-1" } },
            { __index = function() while true do end end }) }
    end,
    flaky_name = function(rule, name, default)
        if name == "flaky_broken" then error("no name for " .. name) end
        return default(rule, name)
    end,
}
]]

local SERIES = {
    { match = 'http_requests_total{namespace!="",pod!=""}', data = {
        { __name__ = "http_requests_total", namespace = "team-a", pod = "web-1" } } },
    { match = 'jobs_running{namespace!="",pod!=""}', data = {
        { __name__ = "jobs_running", namespace = "default", pod = "worker-1" },
        { __name__ = "hidden_jobs", namespace = "default", pod = "worker-1" } } },
    { match = 'broken_gauge{namespace!="",pod!=""}', data = {
        { __name__ = "broken_gauge", namespace = "default", pod = "worker-1" } } },
    { match = 'slow_gauge{namespace!="",pod!=""}', data = {
        { __name__ = "slow_gauge", namespace = "default", pod = "worker-1" } } },
    { match = 'loopy_gauge{namespace!="",pod!=""}', data = {
        { __name__ = "loopy_gauge", namespace = "default", pod = "worker-1" } } },
    { match = '{__name__=~"flaky_.*",namespace!="",pod!=""}', data = {
        { __name__ = "flaky_ok", namespace = "default", pod = "worker-1" },
        { __name__ = "flaky_broken", namespace = "default", pod = "worker-1" } } },
    { match = 'queue_backlog{namespace!=""}', data = {
        { __name__ = "queue_backlog", namespace = "shop" } } },
}

local function vector(samples)
    local out = {}
    for i, s in ipairs(samples) do out[i] = { metric = s[1], value = { TS, s[2] } } end
    return { result = { resultType = "vector", result = out } }
end

local test_script   -- the path of TEST_HOOKS, which messages name

local function script_args(extra)
    local dir = helpers.tmpdir("hooks")
    local test = helpers.write_file(dir .. "/test_hooks.lua", TEST_HOOKS)
    test_script = test
    local root = helpers.root()
    local args = { "--prometheus-timeout=2s", "--lua-hook-timeout=300ms" }
    for _, s in ipairs({ "fallback", "formula", "tenant", "rename" }) do
        args[#args + 1] = "--lua-script=" .. root .. "/rules/examples/" .. s .. ".lua"
    end
    args[#args + 1] = "--lua-script=" .. test
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return args
end

describe("lua hooks", function()
    local prom, kube, adapter

    local function ask(path, scripted)
        for q, answer in pairs(scripted or {}) do
            local body = answer
            body.query = q
            prom:control("POST", "/_fake/query", body)
        end
        prom:clear_requests()
        local status, doc, raw = adapter:get_json(path)
        local queries = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do queries[#queries + 1] = r.params.query end
        return status, doc, raw, queries
    end

    -- The first klog line that starts a hook failure with prefix ("<rule>:
    -- hook <step> ("): an error line naming the hook function fn, with where.
    local function assert_logged(prefix, fn, where)
        local line
        for l in adapter:stderr():gmatch("[^\n]+") do
            if l:find(prefix, 1, true) then line = l; break end
        end
        assert.truthy(line, adapter:stderr())
        assert.truthy(line:match("^E%d%d%d%d "), line)
        assert.truthy(line:find("test_hooks.lua: " .. fn .. ") failed: ", 1, true), line)
        assert.truthy(line:find(where, 1, true), line)
    end

    setup(function()
        prom = helpers.start_prometheus { state = { series = SERIES } }
        kube = helpers.start_kube {}
        adapter = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            relist = "1s", args = script_args({ "--authentication-skip-lookup" }) }
        -- wait for the first relist to publish every metric
        helpers.wait_until(function()
            local _, doc = adapter:get_json(CUSTOM)
            return doc and doc.resources and #doc.resources >= 12
        end, helpers.scale(10), 0.1)
    end)

    teardown(function()
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)

    before_each(function()
        prom:control("POST", "/_fake/reset")
    end)

    it("a per-rule metric_name hook and a global match_series hook shape discovery", function()
        local status, doc = adapter:get_json(CUSTOM)
        assert.equal(200, status)
        local names = {}
        for _, r in ipairs(doc.resources) do names[r.name] = true end
        -- rename.lua on rules[0]: http_requests_total -> http_requests_per_second
        assert.truthy(names["pods/http_requests_per_second"])
        assert.is_nil(names["pods/http_requests_total"])
        -- other rules keep their names
        assert.truthy(names["pods/jobs_running"])
        -- the global match_series of the test script drops hidden_* series
        assert.is_nil(names["pods/hidden_jobs"])
    end)

    it("a discovery hook that raises drops only that series, logged and counted", function()
        local status, doc = adapter:get_json(CUSTOM)
        assert.equal(200, status)
        local names = {}
        for _, r in ipairs(doc.resources) do names[r.name] = true end
        assert.truthy(names["pods/flaky_ok"])
        assert.is_nil(names["pods/flaky_broken"])
        -- klog error line naming the rule, the hook and the error
        assert_logged("rules[5]: hook metric_name (", "flaky_name",
            "test_hooks.lua:13: no name for flaky_broken")
        local _, _, body = adapter:get("/metrics")
        local n = body:match('promlua_adapter_hook_failures_total{hook="flaky_name"} (%d+)')
        assert.truthy(n and tonumber(n) >= 1, body)
    end)

    it("formula.lua computes an external metric from two queries", function()
        local status, doc, raw, queries = ask(EXTERNAL .. "/namespaces/shop/backlog_per_worker", {
            ['sum(queue_backlog{namespace="shop"})'] = vector({ { {}, "90" } }),
            ['sum(queue_workers{namespace="shop"})'] = vector({ { {}, "4" } }),
        })
        assert.equal(200, status, raw)
        assert.equal(1, #doc.items)
        assert.equal("backlog_per_worker", doc.items[1].metricName)
        assert.equal("22500m", doc.items[1].value)
        assert.same({ 'sum(queue_backlog{namespace="shop"})', 'sum(queue_workers{namespace="shop"})' },
            queries)
    end)

    it("tenant.lua renders the team-a query with the tenant label", function()
        local q = 'sum(rate(http_requests_total{tenant="a",namespace="team-a",pod="web-1"}[2m])) by (pod)'
        local status, doc, raw, queries = ask(CUSTOM
            .. "/namespaces/team-a/pods/web-1/http_requests_per_second",
            { [q] = vector({ { { pod = "web-1" }, "3" } }) })
        assert.equal(200, status, raw)
        assert.same({ q }, queries)
        assert.equal("3", doc.items[1].value)
    end)

    it("fallback.lua answers when Prometheus fails instead of a 500", function()
        local q = 'sum(jobs_running{namespace="default",pod="worker-1"}) by (pod)'
        local status, doc, raw = ask(CUSTOM .. "/namespaces/default/pods/worker-1/jobs_running",
            { [q] = vector({ { { pod = "worker-1" }, "5" } }) })
        assert.equal(200, status, raw)
        assert.equal("5", doc.items[1].value)
        prom:control("POST", "/_fake/query", { query = q, status = 503, body = "down" })
        local status2, doc2, raw2, queries = ask(CUSTOM .. "/namespaces/default/pods/worker-1/jobs_running")
        assert.equal(200, status2, raw2)
        -- the last good value on the thread that saw it, else the default (0)
        assert.truthy(doc2.items[1].value == "5" or doc2.items[1].value == "0", raw2)
        assert.same({ q }, queries)
    end)

    it("a render_query hook that raises gives a 500 Status naming it; serving goes on", function()
        local status, doc, raw, queries = ask(CUSTOM .. "/namespaces/default/pods/worker-1/broken_gauge")
        assert.equal(500, status, raw)
        assert.equal("Status", doc.kind)
        assert.truthy(doc.message:find("hook render_query (", 1, true), doc.message)
        assert.truthy(doc.message:find("test_hooks.lua: explode) failed: ", 1, true), doc.message)
        assert.truthy(doc.message:find("tenant table missing", 1, true), doc.message)
        assert.same({}, queries)
        -- and logged: the klog error line of the failed hook
        assert_logged("rules[2]: hook render_query (", "explode",
            "test_hooks.lua:6: tenant table missing")
        local st2 = adapter:get_json(CUSTOM)
        assert.equal(200, st2)
        -- counted in the adapter's own metrics
        local st3, _, body = adapter:get("/metrics")
        assert.equal(200, st3)
        local n = body:match('promlua_adapter_hook_failures_total{hook="explode"} (%d+)')
        assert.truthy(n and tonumber(n) >= 1, body)
    end)

    it("a compute hook that never returns is stopped after --lua-hook-timeout", function()
        local t0 = helpers.now()
        local status, doc, raw = ask(CUSTOM .. "/namespaces/default/pods/worker-1/slow_gauge")
        local took = helpers.now() - t0
        assert.equal(500, status, raw)
        assert.truthy(doc.message:find("hook compute (", 1, true), doc.message)
        assert.truthy(doc.message:find("lua hook timed out after 300 ms", 1, true), doc.message)
        assert.is_true(took < helpers.scale(5), took)
        -- the same worker states keep serving
        local q = 'sum(jobs_running{namespace="default",pod="worker-1"}) by (pod)'
        local st2, _, raw2 = ask(CUSTOM .. "/namespaces/default/pods/worker-1/jobs_running",
            { [q] = vector({ { { pod = "worker-1" }, "1" } }) })
        assert.equal(200, st2, raw2)
    end)

    it("a compute hook's sample that loops in __index is cut too; serving goes on", function()
        for _ = 1, 2 do
            local t0 = helpers.now()
            local status, doc, raw = ask(CUSTOM .. "/namespaces/default/pods/worker-1/loopy_gauge")
            local took = helpers.now() - t0
            assert.equal(500, status, raw)
            assert.equal("rules[4]: hook compute (" .. test_script .. ": loopy) failed: "
                .. test_script .. ":10: lua hook timed out after 300 ms",
                doc.details.causes[1].message)
            assert.is_true(took < helpers.scale(5), took)
            -- the same worker states keep serving
            local q = 'sum(jobs_running{namespace="default",pod="worker-1"}) by (pod)'
            local st2, doc2, raw2 = ask(CUSTOM .. "/namespaces/default/pods/worker-1/jobs_running",
                { [q] = vector({ { { pod = "worker-1" }, "2" } }) })
            assert.equal(200, st2, raw2)
            assert.equal("2", doc2.items[1].value)
        end
    end)
end)

describe("lua hooks at start-up", function()
    it("a script that does not load stops start-up with file:line", function()
        local bad = helpers.temp_file("return {\n  f = function()\n", "bad.lua")
        local rc, err = helpers.run_adapter { config = CONFIG:gsub("hooks: {[^}]*}", ""),
            args = { "--lua-script=" .. bad } }
        assert.are_not.equal(0, rc)
        assert.truthy(err:find(bad .. ":3:", 1, true), err)
    end)

    it("scripts in the binary get adapter.json (lua-cjson) and adapter.regex", function()
        -- the load error carries what the script saw
        local probe = helpers.temp_file('error(string.format("probe %s %s", '
            .. 'adapter.json and adapter.json.encode({ a = { 1, 2 } }) or "no-json", '
            .. 'adapter.regex("^a+$"):test("aa") and "rx" or "no-rx"))\n', "probe.lua")
        local rc, err = helpers.run_adapter { config = "rules: []\n",
            args = { "--lua-script=" .. probe } }
        assert.are_not.equal(0, rc)
        assert.truthy(err:find(probe .. ':1: probe {"a":[1,2]} rx', 1, true), err)
    end)

    it("a rule naming a function no script exports stops start-up", function()
        local ok = helpers.temp_file("return { other = function() end }", "ok.lua")
        local rc, err = helpers.run_adapter { config = [[
rules:
- seriesQuery: 'up'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {compute: missing_fn}
]], args = { "--lua-script=" .. ok } }
        assert.are_not.equal(0, rc)
        assert.truthy(err:find(':4: rules[0].hooks.compute: no --lua-script exports a function '
            .. 'named "missing_fn"', 1, true), err)
    end)
end)
