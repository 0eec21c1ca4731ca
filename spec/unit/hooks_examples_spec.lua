-- spec/unit/hooks_examples_spec.lua: the example hook scripts in
-- rules/examples/ through the real engine, with an in-process fake
-- Prometheus behind prom.query (it records every query):
-- fallback.lua (last good value, then the default), formula.lua (backlog ÷
-- workers), tenant.lua (per-namespace rendering), rename.lua (rename and
-- filter), parity.lua (same discovery, queries, answers and failures as the
-- built-in steps).

local core = require "adapter.core"
local engine = require "adapter.engine"

local RESOURCES = {
    { group = "", version = "v1", resource = "pods", singular = "pod", kind = "Pod",
      namespaced = true, preferred = true },
    { group = "", version = "v1", resource = "namespaces", singular = "namespace",
      kind = "Namespace", namespaced = false, preferred = true },
    { group = "", version = "v1", resource = "nodes", singular = "node", kind = "Node",
      namespaced = false, preferred = true },
    { group = "apps", version = "v1", resource = "deployments", singular = "deployment",
      kind = "Deployment", namespaced = true, preferred = true },
}

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

-- scripts: list of { path, text|nil }; answers: query -> samples | false
-- (a failure).  Returns the engine and the list of queries sent.
local function build(yaml, scripts, answers)
    local queries = {}
    local io_ = { query = function(q)
        queries[#queries + 1] = q
        local a = answers and answers[q]
        -- "fetch": the kind the binary's io.query gives a failed query
        if a == false or a == nil then return nil, "unable to fetch metrics: 503", "fetch" end
        return a
    end }
    local tree = assert(core.yaml_parse(yaml, "c.yaml"))
    local list = {}
    for i, s in ipairs(scripts or {}) do list[i] = { path = s[1], text = s[2] } end
    local eng, errs = engine.new(tree, { file = "c.yaml", scripts = list, io = io_,
        hook_timeout_ms = 1000 })
    assert(eng, errs and errs[1] and ((errs[1].path or errs[1].file) .. ": " .. errs[1].msg))
    assert(eng:set_resources(RESOURCES))
    return eng, queries
end

describe("rules/examples/fallback.lua", function()
    local YAML = [[
externalRules:
- seriesQuery: 'jobs_waiting'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
  hooks: {compute: fallback}
rules:
- seriesQuery: 'jobs_running'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {compute: fallback}
]]
    -- HOLD shortened so the spec can watch it expire.
    local SCRIPT = read("rules/examples/fallback.lua"):gsub("HOLD_SECONDS = 300",
        "HOLD_SECONDS = 0.3"):gsub("DEFAULT_VALUE = 0", "DEFAULT_VALUE = -1")
    local Q = "sum(jobs_waiting{})"
    local REQ = { rule = 1, series = "jobs_waiting", metric = "jobs_waiting", namespace = "ns",
        selector = "" }

    it("passes good answers through, then holds the last one, then the default", function()
        local answers = { [Q] = { { labels = {}, value = 42, timestamp = 5 } } }
        local eng, queries = build(YAML, { { "fallback.lua", SCRIPT } }, answers)
        assert.same({ { labels = {}, value = 42, timestamp = 5 } }, eng:compute_external(REQ))
        answers[Q] = false                                          -- Prometheus fails
        assert.same({ { labels = {}, value = 42, timestamp = 5 } }, eng:compute_external(REQ))
        answers[Q] = {}                                             -- or answers nothing
        assert.same({ { labels = {}, value = 42, timestamp = 5 } }, eng:compute_external(REQ))
        require("socket").sleep(0.4)
        assert.same({ { labels = {}, value = -1 } }, eng:compute_external(REQ))
        assert.same({ Q, Q, Q, Q }, queries)
        answers[Q] = { { labels = {}, value = 7, timestamp = 6 } }   -- recovers
        assert.same({ { labels = {}, value = 7, timestamp = 6 } }, eng:compute_external(REQ))
    end)

    it("gives custom metrics one default sample per object", function()
        local eng = build(YAML, { { "fallback.lua", SCRIPT } }, {})
        local s = eng:compute_custom({ rule = 1, series = "jobs_running", metric = "jobs_running",
            resource = "pods", group = "", namespace = "ns", names = { "p1", "p2" },
            metric_selector = "", resource_label = "pod", namespace_label = "namespace" })
        assert.same({ { labels = { pod = "p1" }, value = -1 }, { labels = { pod = "p2" }, value = -1 } }, s)
    end)
end)

describe("rules/examples/formula.lua", function()
    it("divides the backlog by the workers of the namespace", function()
        local answers = {
            ['sum(queue_backlog{namespace="shop"})'] = { { labels = {}, value = 120 } },
            ['sum(queue_workers{namespace="shop"})'] = { { labels = {}, value = 4 } },
        }
        local eng, queries = build(read("rules/examples/formula.yaml"),
            { { "rules/examples/formula.lua" } }, answers)
        local ents = eng:discover("external", { ['queue_backlog{namespace!=""}'] = { shapes = {
            { name = "queue_backlog", labels = { "namespace" } } } } })
        assert.equal("backlog_per_worker", ents[1].metric)
        local req = { rule = 1, series = "queue_backlog", metric = "backlog_per_worker",
            namespace = "shop", selector = "" }
        assert.same({ { labels = {}, value = 30 } }, eng:compute_external(req))
        assert.same({ 'sum(queue_backlog{namespace="shop"})', 'sum(queue_workers{namespace="shop"})' },
            queries)
        answers['sum(queue_workers{namespace="shop"})'] = {}       -- no workers: whole backlog
        assert.same({ { labels = {}, value = 120 } }, eng:compute_external(req))
        answers['sum(queue_backlog{namespace="shop"})'] = false    -- a failed query fails the request
        local s, msg, status = eng:compute_external(req)
        assert.is_nil(s)
        assert.equal(500, status)
        assert.truthy(msg:find("hook compute (rules/examples/formula.lua: backlog_per_worker) "
            .. "failed: queue_backlog: unable to fetch metrics: 503", 1, true), msg)
    end)
end)

describe("rules/examples/tenant.lua", function()
    local YAML = [[
rules:
- seriesQuery: 'http_requests_total'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
  hooks: {render_query: per_tenant}
]]
    local function render(eng, ns)
        return eng:render_custom({ rule = 1, series = "http_requests_total", metric = "m",
            resource = "pods", group = "", namespace = ns, names = { "p1" }, metric_selector = "",
            resource_label = "pod", namespace_label = "namespace" })
    end

    it("adds the tenant label, uses the recording rule, or keeps the query", function()
        local eng = build(YAML, { { "rules/examples/tenant.lua" } })
        assert.equal('sum(rate(http_requests_total{tenant="a",namespace="team-a",pod="p1"}[2m])) by (pod)',
            render(eng, "team-a"))
        assert.equal('sum(team_b:http_requests:rate2m{namespace="team-b",pod="p1"}) by (pod)',
            render(eng, "team-b"))
        assert.equal('sum(rate(http_requests_total{namespace="other",pod="p1"}[2m])) by (pod)',
            render(eng, "other"))
    end)
end)

describe("rules/examples/rename.lua", function()
    it("renames counters, drops denied and pod-less series", function()
        local eng = build([[
rules:
- seriesQuery: '{__name__=~".+"}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  hooks: {metric_name: rename, match_series: pods_only}
]], { { "rules/examples/rename.lua" } })
        local ents = eng:discover("custom", { ['{__name__=~".+"}'] = { shapes = {
            { name = "http_request_duration_seconds_total", labels = { "namespace", "pod" } },
            { name = "net_bytes_total", labels = { "namespace", "pod" } },
            { name = "queue_length", labels = { "namespace", "pod" } },
            { name = "process_cpu_seconds_total", labels = { "namespace", "pod" } },
            { name = "node_load1", labels = { "node" } },
            { name = string.rep("x", 70), labels = { "namespace", "pod" } },
        } } })
        local got = {}
        for _, e in ipairs(ents) do
            if e.resource == "pods" then got[#got + 1] = e.metric end
        end
        table.sort(got)
        assert.same({ "http_request_duration_per_second", "net_bytes_per_second", "queue_length" }, got)
    end)
end)

describe("rules/examples/parity.lua", function()
    local YAML = [[
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: "^container_.*_seconds_total$"}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)_total$"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)
- seriesQuery: '{namespace!="",deployment!=""}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(?P<base>.*)_(?P<unit>bytes|count)$", as: "${base}_${unit}x$$"}
  metricsQuery: <<.Series>>{<<.LabelMatchers>>}
- seriesQuery: 'kube_node_info'
  resources: {template: "kube_<<.Resource>>"}
  metricsQuery: 'max(<<.Series>>{<<range $k, $v := .LabelValuesByName>><<$k>>=~"<<$v>>",<<end>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)'
- seriesQuery: 'raw'
  resources: {namespaced: false}
  metricsQuery: '<<.Series>>{<<.LabelMatchers>>}'
]]
    local SHAPES = {
        ['{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'] = { shapes = {
            { name = "container_cpu_usage_seconds_total", labels = { "container", "namespace", "pod" } },
            { name = "container_fs_reads_total", labels = { "container", "namespace", "pod" } },
            { name = "container_memory_rss", labels = { "container", "namespace", "pod" } } } },
        ['{namespace!="",deployment!=""}'] = { shapes = {
            { name = "replica_bytes", labels = { "deployment", "namespace", "pod" } },
            { name = "replica_count", labels = { "deployment", "namespace" } },
            { name = "replica_other", labels = { "deployment", "namespace" } } } },
        kube_node_info = { shapes = { { name = "kube_node_info", labels = { "kube_node" } } } },
    }
    local CUSTOM_REQS = {
        { rule = 1, series = "container_fs_reads_total", metric = "fs_reads", resource = "pods",
          group = "", namespace = "default", names = { "a", "b" },
          metric_selector = "env in (prod,dev),tier!=web,x,!y" },
        { rule = 2, series = "replica_bytes", metric = "replica_bytesx$", resource = "deployments",
          group = "apps", namespace = "shop", names = { "web" }, metric_selector = "a==b" },
        { rule = 3, series = "kube_node_info", metric = "kube_node_info", resource = "nodes",
          group = "", namespace = "", names = { "n1", "n2" }, metric_selector = "" },
        { rule = 1, series = "container_fs_reads_total", metric = "fs_reads", resource = "pods",
          group = "", namespace = "default", names = { "quo\"te" }, metric_selector = "" },
    }
    local EXT_REQS = {
        { rule = 1, series = "queue_depth", metric = "queue_depth", namespace = "shop",
          selector = "topic notin (a,b),name=x" },
        { rule = 2, series = "raw", metric = "raw", namespace = "shop", selector = "" },
    }

    -- One line per sample, labels sorted ("-" for none).
    local function encode(samples)
        local out = {}
        for i, smp in ipairs(samples) do
            local ls = nil
            if smp.labels then
                ls = {}
                for k, v in pairs(smp.labels) do ls[#ls + 1] = k .. "=" .. v end
                table.sort(ls)
            end
            out[i] = string.format("{%s} %s %s", ls and table.concat(ls, ",") or "-",
                tostring(smp.value), tostring(smp.timestamp))
        end
        return table.concat(out, "; ")
    end

    -- What the adapter answers for one request, as src/custom.c and
    -- src/external.c do: a compute hook's samples, or else the rendered
    -- query's answer, where a failed query is a 500 "unable to fetch
    -- metrics".
    local function serve(eng, kind, r)
        if eng:has_compute(kind, r.rule) then
            local s, msg, status, untyped
            if kind == "custom" then s, msg, status, untyped = eng:compute_custom(r)
            else s, msg, status, untyped = eng:compute_external(r) end
            if not s then return string.format("fail %d %s %s", status, msg, tostring(untyped)) end
            return "samples " .. encode(s)
        end
        local q, msg, status
        if kind == "custom" then q, msg, status = eng:render_custom(r)
        else q, msg, status = eng:render_external(r) end
        if not q then return string.format("fail %d %s false", status, msg) end
        local s = eng.io.query(q)
        if not s then return "fail 500 unable to fetch metrics false" end
        return "samples " .. encode(s)
    end

    -- answers: nil = every query answers one sample (its value the
    -- query's length), {} = every query fails.
    local function run(scripts, answers)
        answers = answers or setmetatable({}, { __index = function(_, q)
            return { { labels = { pod = "a", namespace = "default" }, value = #q, timestamp = 7 } }
        end })
        local eng, queries = build(YAML, scripts, answers)
        local out = {}
        local ents, probs = eng:discover("custom", SHAPES)
        for _, e in ipairs(ents) do
            out[#out + 1] = table.concat({ "entry", e.metric, e.resource, e.group,
                tostring(e.namespaced), e.series, e.rule, e.resource_label,
                tostring(e.namespace_label) }, " ")
        end
        for _, p in ipairs(probs) do out[#out + 1] = "problem " .. p.msg end
        for _, r in ipairs(CUSTOM_REQS) do
            out[#out + 1] = table.concat({ "custom", tostring((eng:render_custom(r))) }, " ")
        end
        for _, r in ipairs(EXT_REQS) do
            out[#out + 1] = table.concat({ "external", tostring((eng:render_external(r))) }, " ")
        end
        for _, r in ipairs(CUSTOM_REQS) do out[#out + 1] = "serve " .. serve(eng, "custom", r) end
        for _, r in ipairs(EXT_REQS) do out[#out + 1] = "serve " .. serve(eng, "external", r) end
        out[#out + 1] = "queries " .. table.concat(queries, " | ")
        return out, eng
    end

    it("discovers, renders and answers exactly like the built-in steps", function()
        local builtin = run(nil)
        local hooked, eng = run({ { "rules/examples/parity.lua" } })
        assert.is_true(#builtin >= 16)
        assert.same(builtin, hooked)
        -- and the hooks did run: every reserved step of parity.lua is in use
        for _, step in ipairs({ "match_series", "metric_name", "resources_for_series",
            "render_query", "compute" }) do
            assert.truthy(eng.hooks.global[step], step)
        end
        assert.is_true(eng:has_compute("custom", 1))
        assert.is_true(eng:has_compute("external", 1))
        assert.same({}, eng:hook_failures())
    end)

    it("fails a request exactly like the built-in path when Prometheus fails", function()
        local builtin = run(nil, {})
        local hooked, eng = run({ { "rules/examples/parity.lua" } }, {})
        local fails = 0
        for _, l in ipairs(builtin) do
            if l == "serve fail 500 unable to fetch metrics false" then fails = fails + 1 end
        end
        assert.equal(#CUSTOM_REQS + #EXT_REQS, fails)
        assert.same(builtin, hooked)
        -- a failure handed on unchanged is Prometheus's, not the hook's
        assert.same({}, eng:hook_failures())
    end)

    it("is not vacuous: a changed parity step changes the results", function()
        local builtin = run(nil)
        local text = read("rules/examples/parity.lua"):gsub('%(#names >= 2 and "=~" or "="%)', '"="')
        local hooked = run({ { "parity.lua", text } })
        assert.are_not.same(builtin, hooked)
    end)
end)
