-- spec/unit/hooks_steps_spec.lua: each hook point through the real engine
-- (adapter.engine + adapter.hooks, real PCRE2 via build/lua/adapter/core.so):
-- match_series, metric_name, resources_for_series, render_query, compute;
-- `default` wrapping; per-rule hooks over global ones; a hook that raises
-- or returns the wrong type drops only that series (counted) or fails only
-- that request with a message naming the hook; metamethods on what a hook
-- returns run under its time limit; a compute hook that hands on a failure
-- of prom.query or default unchanged fails as the built-in path does.

local core = require "adapter.core"
local engine = require "adapter.engine"

local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'jobs_running'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  %s
externalRules:
- seriesQuery: 'queue_depth'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
  %s
]]

local RESOURCES = {
    { group = "", version = "v1", resource = "pods", singular = "pod", kind = "Pod",
      namespaced = true, preferred = true },
    { group = "", version = "v1", resource = "namespaces", singular = "namespace",
      kind = "Namespace", namespaced = false, preferred = true },
}

-- Builds an engine from CONFIG (rule 2's and the external rule's extra
-- YAML lines) and hook script texts.  Raises with the errors otherwise.
local function build(script, rule2, ext, io_)
    local text = string.format(CONFIG, rule2 or "", ext or "")
    local tree = assert(core.yaml_parse(text, "c.yaml"))
    local scripts = nil
    if script then scripts = { { path = "hook.lua", text = script } } end
    local eng, errs = engine.new(tree, { file = "c.yaml", scripts = scripts,
        hook_timeout_ms = 300, io = io_ })
    if not eng then
        local m = {}
        for _, e in ipairs(errs) do m[#m + 1] = (e.file or "") .. ":" .. tostring(e.line) .. ": "
            .. tostring(e.path) .. ": " .. e.msg end
        error(table.concat(m, "\n"), 2)
    end
    assert(eng:set_resources(RESOURCES))
    return eng
end

local SHAPES = {
    http_requests_total = { shapes = {
        { name = "http_requests_total", labels = { "namespace", "pod" } } } },
    jobs_running = { shapes = {
        { name = "jobs_running", labels = { "namespace", "pod" } } } },
}

local function metrics(eng)
    local out = {}
    local ents = eng:discover("custom", SHAPES)
    for _, e in ipairs(ents) do
        out[#out + 1] = string.format("%s %s %s", e.metric, e.resource, tostring(e.namespaced))
    end
    table.sort(out)
    return out
end

local function custom_req(rule, extra)
    local r = { rule = rule, series = rule == 1 and "http_requests_total" or "jobs_running",
        metric = "m", resource = "pods", group = "", namespace = "ns", names = { "a", "b" },
        metric_selector = "", resource_label = "pod", namespace_label = "namespace" }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
end

describe("hooks: step overrides", function()
    it("without scripts keeps the built-in steps", function()
        local eng = build(nil)
        assert.same({ "http_requests_per_second namespaces false",
            "http_requests_per_second pods true", "jobs_running namespaces false",
            "jobs_running pods true" }, metrics(eng))
    end)

    it("match_series gets the rule view, the series and the default", function()
        local eng = build([[
            return { match_series = function(rule, series, default)
                if rule.seriesQuery == "jobs_running" then return false end
                assert(series.name and series.labels[1] == "namespace")
                return default(rule, series)
            end }]])
        assert.same({ "http_requests_per_second namespaces false",
            "http_requests_per_second pods true" }, metrics(eng))
    end)

    it("metric_name renames, wraps default, and nil drops the series", function()
        local eng = build([[
            return { metric_name = function(rule, name, default)
                if name == "jobs_running" then return nil end
                return "x_" .. default(rule, name)
            end }]])
        assert.same({ "x_http_requests_per_second namespaces false",
            "x_http_requests_per_second pods true" }, metrics(eng))
    end)

    it("resources_for_series chooses resources and may force the scope", function()
        local eng = build([[
            return { resources_for_series = function(rule, series, default)
                local grs = default(rule, series)
                local out = {}
                for _, gr in ipairs(grs) do
                    if gr.resource == "pods" then out[#out + 1] = gr end
                end
                if rule.seriesQuery == "jobs_running" then return out, false end
                return out
            end }]])
        assert.same({ "http_requests_per_second pods true", "jobs_running pods false" },
            metrics(eng))
    end)

    it("render_query sees the request and can wrap default", function()
        local eng = build([[
            return { render_query = function(rule, request, default)
                return "label_replace(" .. default(rule, request) .. ")"
            end }]])
        local q = eng:render_custom(custom_req(1, { metric_selector = "env=prod",
            label_selector = "app in (web)" }))
        assert.equal('label_replace(sum(rate(http_requests_total{env="prod",namespace="ns",'
            .. 'pod=~"a|b"}[2m])) by (pod))', q)
    end)

    it("render_query's request view holds every documented field", function()
        local eng = build([[
            local fields = {}
            return { view = function() return fields end,
              render_query = function(rule, request, default)
                for k, v in pairs(request) do fields[k] = v end
                fields.rule_path = rule.path
                fields.rule_metricsQuery = rule.metricsQuery
                return default(rule, request)
            end }]])
        assert.truthy(eng:render_custom(custom_req(1, { metric_selector = "env=prod",
            label_selector = "app in (web)" })))
        local v = eng.hooks:lookup("view").fn()
        assert.equal("custom", v.api)
        assert.equal("m", v.metric)
        assert.equal("http_requests_total", v.series)
        assert.equal("ns", v.namespace)
        assert.equal("pods", v.resource)
        assert.equal("", v.group)
        assert.same({ "a", "b" }, v.names)
        assert.equal("pod", v.resource_label)
        assert.equal("namespace", v.namespace_label)
        assert.equal("env", v.metric_label_selector[1].key)
        assert.same({ "prod" }, v.metric_label_selector[1].values)
        assert.equal("app", v.label_selector[1].key)
        assert.equal("in", v.label_selector[1].op)
        assert.equal("app in (web)", v.label_selector_text)
        assert.equal('env="prod",namespace="ns",pod=~"a|b"', v.label_matchers)
        assert.equal("pod", v.group_by)
        assert.equal("rules[0]", v.rule_path)
        assert.truthy(v.rule_metricsQuery:find("<<.GroupBy>>", 1, true))
    end)

    it("default of render_query honours a changed request", function()
        local eng = build([[
            return { render_query = function(rule, request, default)
                request.namespace = "other"
                return default(rule, request)
            end }]])
        local q = eng:render_custom(custom_req(1))
        assert.truthy(q:find('namespace="other"', 1, true), q)
    end)

    it("render_query hooks external rules too", function()
        local eng = build([[
            return { render_query = function(rule, request, default)
                assert(request.api == "external" and request.namespaced == true)
                return default(rule, request) .. " > 0"
            end }]])
        local q = eng:render_external({ rule = 1, series = "queue_depth", metric = "queue_depth",
            namespace = "ns", selector = "q=a" })
        assert.equal('sum(queue_depth{q="a",namespace="ns"}) > 0', q)
    end)
end)

describe("hooks: per-rule hooks", function()
    local SCRIPT = [[
        return {
            metric_name = function(rule, name, default) return "global_" .. default(rule, name) end,
            local_name = function(rule, name, default) return "local_" .. default(rule, name) end,
        }]]

    it("win over the global hook for their rule only", function()
        local eng = build(SCRIPT, "hooks: {metric_name: local_name}")
        assert.same({ "global_http_requests_per_second namespaces false",
            "global_http_requests_per_second pods true", "local_jobs_running namespaces false",
            "local_jobs_running pods true" }, metrics(eng))
    end)

    it("apply without any global hook", function()
        local eng = build([[
            return { local_name = function(rule, name, default) return "l_" .. name end }]],
            "hooks: {metric_name: local_name}")
        assert.same({ "http_requests_per_second namespaces false",
            "http_requests_per_second pods true", "l_jobs_running namespaces false",
            "l_jobs_running pods true" }, metrics(eng))
    end)
end)

describe("hooks: failures", function()
    it("a match_series hook that raises drops only that series, logged and counted", function()
        local eng = build([[
            return { match_series = function(rule, series, default)
                if series.name == "jobs_running" then error("boom") end
                return default(rule, series)
            end }]])
        assert.same({ "http_requests_per_second namespaces false",
            "http_requests_per_second pods true" }, metrics(eng))
        local f = eng:hook_failures()
        assert.equal(1, f["hook match_series (hook.lua: match_series)"])
    end)

    it("reports each failure to io.hook_failure with the hook's name", function()
        local names = {}
        local eng = build([[
            return { mn = function(rule, name, default) error("x") end }]],
            "hooks: {metric_name: mn}", nil, { hook_failure = function(n) names[#names + 1] = n end })
        metrics(eng)
        assert.same({ "mn" }, names)
    end)

    it("wrong return types drop the series and are counted per hook", function()
        for _, case in ipairs({
            { "match_series", "return 1" },
            { "metric_name", "return {}" },
            { "resources_for_series", "return 'pods'" },
            { "resources_for_series", "return {{resource = 1}}" },
            { "resources_for_series", "return {}, 'yes'" },
        }) do
            local eng = build(string.format([[
                return { %s = function(rule, x, default)
                    if rule.seriesQuery == "jobs_running" then %s end
                    return default(rule, x)
                end }]], case[1], case[2]))
            assert.same({ "http_requests_per_second namespaces false",
                "http_requests_per_second pods true" }, metrics(eng), case[2])
            local label = string.format("hook %s (hook.lua: %s)", case[1], case[1])
            assert.equal(1, eng:hook_failures()[label], case[2])
        end
    end)

    it("a resources_for_series item with a looping __index times out: series dropped, counted",
        function()
        local eng = build([[
            local loop = { __index = function() while true do end end }
            return { resources_for_series = function(rule, series, default)
                if rule.seriesQuery == "jobs_running" then return { setmetatable({}, loop) } end
                return default(rule, series)
            end }]])
        local t0 = core.now()
        local logged, real_log = {}, core.log
        core.log = function(level, msg) logged[#logged + 1] = level .. " " .. msg end
        local ok, got = pcall(metrics, eng)
        core.log = real_log
        assert(ok, got)
        assert.same({ "http_requests_per_second namespaces false",
            "http_requests_per_second pods true" }, got)
        assert.is_true(core.now() - t0 < 3)
        assert.equal(1, eng:hook_failures()["hook resources_for_series (hook.lua: "
            .. "resources_for_series)"])
        -- logged, with where the deadline struck (the __index, line 1)
        assert.same({ "error rules[1]: hook resources_for_series (hook.lua: resources_for_series) "
            .. "failed: hook.lua:1: lua hook timed out after 300 ms" }, logged)
    end)

    it("an error object with a looping __tostring times out and is counted", function()
        local eng = build([[
            return { render_query = function()
                error(setmetatable({}, { __tostring = function() while true do end end }))
            end }]])
        local t0 = core.now()
        local q, msg, status = eng:render_custom(custom_req(1))
        assert.is_true(core.now() - t0 < 3)
        assert.is_nil(q)
        assert.equal(500, status)
        -- where the deadline struck: inside __tostring, line 2
        assert.equal("rules[0]: hook render_query (hook.lua: render_query) failed: "
            .. "hook.lua:2: lua hook timed out after 300 ms", msg)
        assert.equal(1, eng:hook_failures()["hook render_query (hook.lua: render_query)"])
    end)

    it("a render_query hook that raises fails the request with a 500 naming it", function()
        local eng = build([[
            return { render_query = function(rule, request, default) error("no tenant") end }]])
        local q, msg, status = eng:render_custom(custom_req(1))
        assert.is_nil(q)
        assert.equal(500, status)
        assert.truthy(msg:find("rules[0]: hook render_query (hook.lua: render_query) failed:", 1,
            true), msg)
        assert.truthy(msg:find("no tenant", 1, true), msg)
        -- the engine keeps serving
        local q2, msg2, status2 = eng:render_custom(custom_req(2))
        assert.is_nil(q2)
        assert.equal(500, status2)
        assert.truthy(msg2)
    end)

    it("a render_query hook returning a non-string fails the request", function()
        local eng = build([[return { render_query = function() return 42 end }]])
        local q, msg, status = eng:render_custom(custom_req(1))
        assert.is_nil(q)
        assert.equal(500, status)
        assert.truthy(msg:find("must return a non-empty PromQL string, got number", 1, true), msg)
    end)

    it("render_query may fail on purpose with (nil, message)", function()
        local eng = build([[return { render_query = function() return nil, "tenant unknown" end }]])
        local q, msg, status = eng:render_custom(custom_req(1))
        assert.is_nil(q)
        assert.equal(500, status)
        assert.equal("rules[0]: tenant unknown", msg)
    end)

    it("selector errors stay 400s before any hook runs", function()
        local eng = build([[return { render_query = function() error("must not run") end }]])
        local q, msg, status = eng:render_custom(custom_req(1, { metric_selector = "a in (" }))
        assert.is_nil(q)
        assert.equal(400, status)
        assert.truthy(msg:find("invalid metricLabelSelector", 1, true))
        assert.same({}, eng:hook_failures())
    end)
end)

describe("hooks: compute", function()
    local function fake_prom(answers)
        local queries = {}
        return { query = function(q)
            queries[#queries + 1] = q
            local a = answers[q]
            if a == nil then return nil, "no answer for " .. q end
            return a
        end }, queries
    end

    it("applies only to rules that have one", function()
        local eng = build([[return { c = function() return {} end }]], nil, "hooks: {compute: c}")
        assert.is_false(eng:has_compute("custom", 1))
        assert.is_false(eng:has_compute("custom", 2))
        assert.is_true(eng:has_compute("external", 1))
    end)

    it("default runs the normal render-and-query path", function()
        local q = 'sum(queue_depth{namespace="ns"})'
        local io_, queries = fake_prom({ [q] = { { labels = {}, value = 7, timestamp = 10 } } })
        local eng = build([[
            return { c = function(rule, request, prom, default)
                local s = assert(default(rule, request))
                s[1].value = s[1].value * 2
                return s
            end }]], nil, "hooks: {compute: c}", io_)
        local samples = assert(eng:compute_external({ rule = 1, series = "queue_depth",
            metric = "queue_depth", namespace = "ns", selector = "" }))
        assert.same({ q }, queries)
        assert.same({ { labels = {}, value = 14, timestamp = 10 } }, samples)
    end)

    it("prom.query runs any query; custom compute returns the selector echo", function()
        local io_, queries = fake_prom({
            ["up"] = { { labels = { pod = "a" }, value = 1 } } })
        local eng = build([[
            return { c = function(rule, request, prom, default)
                local s = assert(prom.query("up"))
                return { { labels = { pod = s[1].labels.pod }, value = s[1].value + 1 } }
            end }]], "hooks: {compute: c}", nil, io_)
        local samples, sel = eng:compute_custom(custom_req(2, { metric_selector = "env=prod" }))
        assert.same({ "up" }, queries)
        assert.same({ { labels = { pod = "a" }, value = 2 } }, samples)
        assert.equal('{"matchLabels":{"env":"prod"}}', sel)
    end)

    it("a global compute hook applies to every rule", function()
        local eng = build([[return { compute = function() return {} end }]])
        assert.is_true(eng:has_compute("custom", 1))
        assert.is_true(eng:has_compute("custom", 2))
        assert.is_true(eng:has_compute("external", 1))
    end)

    it("wrong samples or an error fail the request naming the hook", function()
        for _, body in ipairs({ "return 5", "return {{value = 'x'}}",
            "return {{value = 1, labels = {a = 1}}}", "error('kaput')",
            "return nil, 'gave up'" }) do
            local eng = build("return { c = function() " .. body .. " end }", nil,
                "hooks: {compute: c}")
            local s, msg, status = eng:compute_external({ rule = 1, series = "queue_depth",
                metric = "queue_depth", namespace = "ns", selector = "" })
            assert.is_nil(s, body)
            assert.equal(500, status, body)
            assert.truthy(msg:find("externalRules[0]: hook compute (hook.lua: c) failed: ", 1,
                true), msg)
            assert.equal(1, eng:hook_failures()["hook compute (hook.lua: c)"], body)
        end
    end)

    it("a sample with a looping __index times out, counted; the engine keeps serving", function()
        local eng = build([[
            local calls = 0
            return { c = function()
                calls = calls + 1
                if calls > 1 then return { { labels = { a = "b" }, value = 2 } } end
                return { setmetatable({ labels = {} },
                    { __index = function() while true do end end }) }
            end }]], nil, "hooks: {compute: c}")
        local req = { rule = 1, series = "queue_depth", metric = "queue_depth", namespace = "ns",
            selector = "" }
        local t0 = core.now()
        local s, msg, status = eng:compute_external(req)
        assert.is_true(core.now() - t0 < 3)
        assert.is_nil(s)
        assert.equal(500, status)
        -- where the deadline struck: inside __index, line 6
        assert.equal("externalRules[0]: hook compute (hook.lua: c) failed: "
            .. "hook.lua:6: lua hook timed out after 300 ms", msg)
        assert.equal(1, eng:hook_failures()["hook compute (hook.lua: c)"])
        assert.same({ { labels = { a = "b" }, value = 2 } }, (eng:compute_external(req)))
    end)

    it("returns plain copies of the samples; labels left out stay nil", function()
        local eng = build([[
            local proxy = setmetatable({}, { __index = { value = 3 } })
            return { c = function() return { proxy, { value = 4, timestamp = 9 } } end }]],
            nil, "hooks: {compute: c}")
        local s = assert(eng:compute_external({ rule = 1, series = "queue_depth",
            metric = "queue_depth", namespace = "ns", selector = "" }))
        assert.same({ { value = 3 }, { value = 4, timestamp = 9 } }, s)
        assert.is_nil(getmetatable(s[1]))
    end)

    it("prom.query failures come back as nil, message", function()
        local io_ = fake_prom({})
        local eng = build([[
            return { c = function(rule, request, prom)
                local s, err = prom.query("missing")
                return { { labels = {}, value = s == nil and #err or -1 } }
            end }]], nil, "hooks: {compute: c}", io_)
        local s = assert(eng:compute_external({ rule = 1, series = "queue_depth",
            metric = "queue_depth", namespace = "ns", selector = "" }))
        assert.equal(#"no answer for missing", s[1].value)
    end)
end)

describe("hooks: compute hands on the built-in path's failures", function()
    -- io.query as the binary's: (nil, message, kind) on failure; records
    -- each query and what it asked for
    local function failing_prom(kind)
        local calls = {}
        return { query = function(q, want)
            calls[#calls + 1] = { q, want }
            return nil, "unable to fetch metrics: boom", kind
        end }, calls
    end
    local EXT = { rule = 1, series = "queue_depth", metric = "queue_depth", namespace = "ns",
        selector = "" }

    local PASS = [[return { c = function(rule, request, prom, default)
        return %s
    end }]]

    it("returns prom.query's and default's failures unchanged, not counted", function()
        for _, case in ipairs({
            { "fetch", "prom.query('up')", "unable to fetch metrics", 500, false },
            { "type", "prom.query('up')", "encountered an unexpected query result type", 500, true },
            { "budget", "prom.query('up')", "the request's time budget is spent", 504, false },
            { "fetch", "default(rule, request)", "unable to fetch metrics", 500, false },
            { "fetch", "error(select(2, default(rule, request)), 0)", "unable to fetch metrics",
              500, false },
        }) do
            local io_ = failing_prom(case[1])
            local eng = build(string.format(PASS, case[2]), nil, "hooks: {compute: c}", io_)
            local s, msg, status, untyped = eng:compute_external(EXT)
            assert.is_nil(s, case[2])
            assert.equal(case[3], msg, case[2])
            assert.equal(case[4], status, case[2])
            assert.equal(case[5], untyped, case[2])
            assert.same({}, eng:hook_failures(), case[2])
        end
    end)

    it("custom metrics: a non-vector answer fails as without hooks; default asks for a vector",
        function()
        local io_, calls = failing_prom("type")
        local eng = build(string.format(PASS, "default(rule, request)"), "hooks: {compute: c}",
            nil, io_)
        local s, msg, status, untyped = eng:compute_custom(custom_req(2))
        assert.is_nil(s)
        assert.equal("unable to fetch metrics", msg)
        assert.equal(500, status)
        assert.is_false(untyped)
        assert.same({ { 'sum(jobs_running{namespace="ns",pod=~"a|b"}) by (pod)', "vector" } },
            calls)
    end)

    it("default's render failure is answered as the built-in render failure", function()
        local io_, calls = failing_prom("fetch")
        local hooks = [[return {
            c = function(rule, request, prom, default) return default(rule, request) end,
            rq = function() return nil, "tenant unknown" end,
        }]]
        local eng = build(hooks, nil, "hooks: {compute: c, render_query: rq}", io_)
        local s, msg, status = eng:compute_external(EXT)
        assert.is_nil(s)
        assert.equal(500, status)
        -- what render_external answers with the same render_query hook
        assert.equal("externalRules[0]: tenant unknown", msg)
        assert.same({ nil, "externalRules[0]: tenant unknown", 500 },
            { eng:render_external(EXT) })
        assert.same({}, calls)
        assert.same({}, eng:hook_failures())
    end)

    it("a changed message is the hook's own failure: named and counted", function()
        local io_ = failing_prom("fetch")
        local eng = build(string.format(PASS, "nil, select(2, prom.query('up')) .. '!'"), nil,
            "hooks: {compute: c}", io_)
        local s, msg, status = eng:compute_external(EXT)
        assert.is_nil(s)
        assert.equal(500, status)
        assert.equal("externalRules[0]: hook compute (hook.lua: c) failed: "
            .. "unable to fetch metrics: boom!", msg)
        assert.equal(1, eng:hook_failures()["hook compute (hook.lua: c)"])
    end)

    it("prom.query rejects a second argument other than \"vector\"", function()
        local io_ = failing_prom("fetch")
        local eng = build(string.format(PASS, "prom.query('up', 'matrix')"), nil,
            "hooks: {compute: c}", io_)
        local s, msg = eng:compute_external(EXT)
        assert.is_nil(s)
        assert.truthy(msg:find('prom.query: the second argument must be "vector" or nil', 1, true),
            msg)
    end)
end)
