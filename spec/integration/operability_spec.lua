-- spec/integration/operability_spec.lua: issue 8 end to end with the real
-- binary against the fakes: every /metrics family after traffic (secure
-- port and the plain --metrics-bind-address listener; Prometheus and
-- Kubernetes call errors by endpoint/verb), config reload on SIGHUP and on
-- a change of the config or a hook script (a broken edit is refused while
-- serving continues; quick writes are debounced into one reload), graceful
-- shutdown (readyz fails, the secure port refuses, drain, exit 0; a second
-- signal exits at once), and log lines at each --v level in text and JSON,
-- with no secret.
-- Uses: spec/helpers.lua, spec/fixtures/{prometheus,kube}/*.json.

local helpers = require "helpers"
local cjson = require "cjson"
local socket = require "socket"

local P1 = "sample-app-7cfb596f98-8h5mv"
local BASE = "/apis/custom.metrics.k8s.io/v1beta2"
local METRIC_PATH = BASE .. "/namespaces/default/pods/*/"

local function config(as, extra)
    return [[
rules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
      kubernetes_pod_name: {resource: "pod"}
  name:
    matches: "^(.*)_total"
    as: "]] .. as .. [["
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
]] .. (extra or "")
end

-- A second rule whose series query Prometheus fails (rules[1]).
local BROKEN_RULE = [[
- seriesQuery: 'broken_total{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_total$', as: ''}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]]

local EXTERNAL = [[
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
]]

-- -- Helpers local to this spec ------------------------------------------------

local function start_fakes()
    local prom = helpers.start_prometheus {
        state_file = helpers.root() .. "/spec/fixtures/prometheus/custom_metrics.json" }
    local kube = helpers.start_kube {
        state_file = helpers.root() .. "/spec/fixtures/kube/objects.json" }
    prom:control("POST", "/_fake/query", { pattern = "http_requests_total", result = {
        resultType = "vector",
        result = { { metric = { kubernetes_pod_name = P1 }, value = { 1715851267.1, "2.5" } } } } })
    return prom, kube
end

-- Starts the adapter with delegated auth pointed at the fake kube (as
-- start_adapter does; its SubjectAccessReview allows everything by
-- default), without the ConfigMap lookup unless opts.lookup (then the
-- ConfigMap is listed once at start-up: the fake has none, which
-- start_adapter's --authentication-tolerate-lookup-failure accepts).
local function start(prom, kube, opts)
    opts.prometheus, opts.kube = prom, kube
    local args = { opts.lookup and "--authentication-skip-lookup=false"
        or "--authentication-skip-lookup" }
    for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
    opts.args = args
    return helpers.start_adapter(opts)
end

-- Parses the text exposition format: { ['name{a="x",b="y"}'] = value }
-- (label order as rendered) and the set of families with HELP and TYPE.
local function parse_metrics(text)
    local samples, help, types = {}, {}, {}
    for line in text:gmatch("[^\n]+") do
        local h = line:match("^# HELP (%S+) ")
        local tn, tt = line:match("^# TYPE (%S+) (%S+)$")
        if h then help[h] = true
        elseif tn then types[tn] = tt
        elseif not line:match("^#") then
            local key, v = line:match("^(.*) (%S+)$")
            assert(key, "malformed sample line: " .. line)
            samples[key] = tonumber(v) or (v == "+Inf" and math.huge) or v
        end
    end
    return samples, help, types
end

local function scrape(adapter)
    local st, hs, body = adapter:get("/metrics")
    assert.are.equal(200, st, body)
    assert.truthy(hs["content-type"]:find("text/plain; version=0.0.4", 1, true))
    local samples, help, types = parse_metrics(body)
    return samples, help, types, body
end

local function discovery_names(adapter)
    local st, doc, body = adapter:get_json(BASE)
    assert.are.equal(200, st, body)
    local names = {}
    for _, r in ipairs(doc.resources) do names[r.name] = true end
    return names
end

local function sighup(p) os.execute("kill -HUP " .. p.pid) end

local FAMILIES = {
    "build_info", "config_last_reload_successful",
    "config_last_reload_success_timestamp_seconds", "config_reloads_total",
    "http_requests_total", "http_request_duration_seconds", "http_requests_inflight",
    "prometheus_request_duration_seconds", "prometheus_request_errors_total",
    "kubernetes_request_duration_seconds", "kubernetes_request_errors_total",
    "kubernetes_watches_total", "hook_failures_total", "cache_lookups_total",
    "relist_duration_seconds", "relist_runs_total", "rule_last_relist_successful",
    "rule_series", "rule_metrics", "rule_last_relist_duration_seconds",
}

-- -- /metrics --------------------------------------------------------------------

describe("/metrics", function()
    local prom, kube, adapter, mport

    setup(function()
        prom, kube = start_fakes()
        -- 422 (an API error the client reads as an answer, not an unknown
        -- status): still a failed call for prometheus_request_errors_total
        prom:control("POST", "/_fake/series", { match = 'broken_total{namespace!="",pod!=""}',
            status = 422, body = '{"status":"error","errorType":"execution","error":"boom"}' })
        mport = helpers.free_port()
        adapter = start(prom, kube, { config = config("${1}_per_second", BROKEN_RULE),
            lookup = true,
            args = { "--metrics-bind-address=127.0.0.1:" .. mport,
                "--authorization-webhook-cache-authorized-ttl=0s",
                "--authentication-token-webhook-cache-ttl=0s" } })
        -- traffic: discovery, a metric (200), an unknown metric (404), one
        -- request with a bearer token (a TokenReview)
        assert.are.equal(200, (adapter:get(BASE)))
        helpers.wait_until(function()
            return adapter:get(METRIC_PATH .. "http_requests_per_second") == 200
        end, helpers.scale(10))
        assert.are.equal(404, (adapter:get(METRIC_PATH .. "no_such_metric")))
        assert.are.equal(200, (adapter:get(BASE, { Authorization = "Bearer spec-token" })))
    end)

    teardown(function()
        if adapter then adapter:stop() end
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    it("exposes every promlua_adapter_ family with HELP and TYPE", function()
        local _, help, types, body = scrape(adapter)
        for _, f in ipairs(FAMILIES) do
            local name = "promlua_adapter_" .. f
            assert.is_true(help[name] ~= nil, "missing HELP for " .. name .. " in:\n" .. body:sub(1, 600))
            assert.is_truthy(types[name], "missing TYPE for " .. name)
        end
        assert.are.equal("histogram", types.promlua_adapter_http_request_duration_seconds)
        assert.are.equal("counter", types.promlua_adapter_http_requests_total)
        assert.are.equal("gauge", types.promlua_adapter_rule_metrics)
    end)

    it("has plausible values after traffic", function()
        local s = helpers.wait_until(function()
            local m = scrape(adapter)
            return (m['promlua_adapter_relist_runs_total{kind="custom",outcome="success"}'] or 0) >= 2
                and m
        end, helpers.scale(10))
        assert.is_truthy(s, "no second relist recorded")
        local route = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/pods/*/*'
        assert.is_true(s['promlua_adapter_http_requests_total{route="' .. route .. '",code="200"}'] >= 1)
        assert.is_true(s['promlua_adapter_http_requests_total{route="' .. route .. '",code="404"}'] >= 1)
        assert.is_true(s['promlua_adapter_http_request_duration_seconds_count{route="'
            .. route .. '",code="200"}'] >= 1)
        assert.is_true(s['promlua_adapter_http_request_duration_seconds_bucket{route="'
            .. route .. '",code="200",le="+Inf"}'] >= 1)
        assert.is_true(s['promlua_adapter_http_requests_total{route="/apis/custom.metrics.k8s.io/v1beta2",code="200"}'] >= 1)
        assert.are.equal(1, s['promlua_adapter_config_last_reload_successful'])
        local ts = s['promlua_adapter_config_last_reload_success_timestamp_seconds']
        assert.is_true(math.abs(ts - os.time()) < 600, "timestamp " .. tostring(ts))
        assert.is_true(s['promlua_adapter_prometheus_request_duration_seconds_count{endpoint="series"}'] >= 2)
        assert.is_true(s['promlua_adapter_prometheus_request_duration_seconds_count{endpoint="query"}'] >= 1)
        -- the 422 of rules[1]'s series query
        assert.is_true((s['promlua_adapter_prometheus_request_errors_total{endpoint="series"}'] or 0) >= 1)
        local function kube_count(verb)
            return s['promlua_adapter_kubernetes_request_duration_seconds_count{verb="' .. verb .. '"}'] or 0
        end
        assert.is_true(kube_count("discovery") >= 1)
        assert.is_true(kube_count("list") >= 1)
        -- delegated auth's calls: every request asked (authorized TTL 0),
        -- the bearer token was reviewed, the ConfigMap listed at start-up
        assert.is_true(kube_count("subjectaccessreview") >= 4, tostring(kube_count("subjectaccessreview")))
        assert.is_true(kube_count("tokenreview") >= 1)
        assert.are.equal(1, kube_count("configmap"))
        assert.is_true((s['promlua_adapter_kubernetes_watches_total'] or 0) >= 1)
        assert.is_nil(s['promlua_adapter_kubernetes_request_errors_total{verb="subjectaccessreview"}'])
        assert.is_true(s['promlua_adapter_relist_duration_seconds_count{kind="custom"}'] >= 2)
        -- rules[0] maps namespace and pod: one series, two registry entries
        assert.are.equal(2, s['promlua_adapter_rule_metrics{rule="rules[0]"}'])
        assert.are.equal(1, s['promlua_adapter_rule_series{rule="rules[0]"}'])
        assert.are.equal(1, s['promlua_adapter_rule_last_relist_successful{rule="rules[0]"}'])
        assert.are.equal(0, s['promlua_adapter_rule_last_relist_successful{rule="rules[1]"}'])
        -- a rule that produced nothing is listed too, with zeros
        assert.are.equal(0, s['promlua_adapter_rule_metrics{rule="rules[1]"}'])
        assert.are.equal(0, s['promlua_adapter_rule_series{rule="rules[1]"}'])
        -- the time of each rule's series call (rules[1]'s failed with
        -- retries: at least the first 0.5 s back-off minus its jitter)
        assert.is_true(s['promlua_adapter_rule_last_relist_duration_seconds{rule="rules[0]"}'] > 0)
        assert.is_true(s['promlua_adapter_rule_last_relist_duration_seconds{rule="rules[0]"}'] < 60)
        assert.is_true(s['promlua_adapter_rule_last_relist_duration_seconds{rule="rules[1]"}'] >= 0.4)
        assert.is_true(s['promlua_adapter_cache_lookups_total{cache="registry",result="hit"}'] >= 1)
        assert.is_true(s['promlua_adapter_cache_lookups_total{cache="registry",result="miss"}'] >= 1)
        local bi
        for k, v in pairs(s) do
            if k:match("^promlua_adapter_build_info{version=\"[%d.]+\",luajit=\"LuaJIT 2%.1") then bi = v end
        end
        assert.are.equal(1, bi)
    end)

    it("counts a Prometheus query answered 503 as a failed call", function()
        local function errors()
            return scrape(adapter)['promlua_adapter_prometheus_request_errors_total{endpoint="query"}'] or 0
        end
        local before = errors()
        -- the namespace-level query of the same metric (grouped by
        -- namespace) gets 503 with an API error body
        prom:control("POST", "/_fake/query", { pattern = "by %(kubernetes_namespace%)",
            status = 503, body = '{"status":"error","errorType":"unavailable","error":"overloaded"}' })
        prom:clear_requests()
        local st, _, body = adapter:get(BASE .. "/namespaces/default/metrics/http_requests_per_second")
        assert.are_not.equal(200, st, body)
        local sent = 0
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            local q = r.params and r.params.query
            if type(q) == "string" and q:find("by (kubernetes_namespace)", 1, true) then sent = sent + 1 end
        end
        assert.is_true(sent >= 1, "the namespace query never reached Prometheus")
        assert.are.equal(before + sent, errors())
    end)

    it("counts a failed Kubernetes call by verb (a SubjectAccessReview answered 500)", function()
        local function errors()
            return scrape(adapter)['promlua_adapter_kubernetes_request_errors_total{verb="subjectaccessreview"}'] or 0
        end
        local before = errors()
        kube:control("POST", "/_fake/fail", { path = "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            status = 500, count = 1 })
        adapter:get(BASE)
        kube:control("DELETE", "/_fake/fail")
        assert.are.equal(before + 1, errors())
    end)

    it("serves the same registry on the plain listener, without authentication", function()
        local st, body, hs = helpers.http("GET", "http://127.0.0.1:" .. mport .. "/metrics")
        assert.are.equal(200, st)
        assert.truthy(hs["content-type"]:find("version=0.0.4", 1, true))
        local _, help = parse_metrics(body)
        for _, f in ipairs(FAMILIES) do assert.is_true(help["promlua_adapter_" .. f]) end
        assert.are.equal(404, (helpers.http("GET", "http://127.0.0.1:" .. mport .. BASE)))
        assert.are.equal(200, (helpers.http("GET", "http://127.0.0.1:" .. mport .. "/healthz")))
    end)

    it("asks the authorizer for /metrics on the secure port", function()
        kube:clear_requests()
        assert.are.equal(200, (adapter:get("/metrics")))
        local sars = kube:requests("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        local seen = false
        for _, r in ipairs(sars) do
            local ok, d = pcall(cjson.decode, r.body or "")
            if ok and d.spec and d.spec.nonResourceAttributes
                and d.spec.nonResourceAttributes.path == "/metrics" then seen = true end
        end
        assert.is_true(seen, "no SubjectAccessReview for /metrics")
    end)
end)

-- -- Reload ----------------------------------------------------------------------

describe("config reload", function()
    local prom, kube

    setup(function() prom, kube = start_fakes() end)
    teardown(function()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    it("reloads on SIGHUP, refuses a broken config and keeps serving", function()
        -- The config path is a symlink into another directory, which the
        -- file watcher does not see: only SIGHUP can pick up the edits.
        local real_dir = helpers.tmpdir("real")
        local link_dir = helpers.tmpdir("link")
        local real = helpers.write_file(real_dir .. "/config.yaml", config("${1}_per_second"))
        local path = link_dir .. "/config.yaml"
        os.execute("ln -s " .. helpers.shq(real) .. " " .. helpers.shq(path))
        local a = start(prom, kube, { config_file = path })
        assert.is_true(discovery_names(a)["pods/http_requests_per_second"])

        helpers.write_file(real, config("${1}_rate", EXTERNAL))
        helpers.sleep(1.5)
        assert.is_true(discovery_names(a)["pods/http_requests_per_second"], "reloaded without SIGHUP")
        sighup(a)
        assert.is_truthy(helpers.wait_until(function()
            local n = discovery_names(a)
            return n["pods/http_requests_rate"] and not n["pods/http_requests_per_second"]
        end, helpers.scale(10)), "SIGHUP did not reload")
        -- the APIs served follow the config: externalRules appeared
        local _, groups = a:get_json("/apis")
        local names = {}
        for _, g in ipairs(groups.groups) do names[g.name] = true end
        assert.is_true(names["external.metrics.k8s.io"])
        assert.are.equal(200, (a:get("/apis/external.metrics.k8s.io/v1beta1")))
        local m = scrape(a)
        assert.are.equal(1, m['promlua_adapter_config_reloads_total{outcome="success"}'])
        assert.are.equal(1, m['promlua_adapter_config_last_reload_successful'])

        -- a broken edit: refused with the file, line and key path; the
        -- previous config keeps serving
        helpers.write_file(real, config("${1}_rate") .. "  bogus: 1\n")
        sighup(a)
        assert.is_truthy(helpers.wait_until(function()
            return a:stderr():find("config reload refused", 1, true)
        end, helpers.scale(10)))
        assert.truthy(a:stderr():find("config.yaml:11: rules[0].bogus: field bogus not found",
            1, true), a:stderr())
        m = scrape(a)
        assert.are.equal(0, m['promlua_adapter_config_last_reload_successful'])
        assert.are.equal(1, m['promlua_adapter_config_reloads_total{outcome="failure"}'])
        assert.is_true(discovery_names(a)["pods/http_requests_rate"])
        assert.are.equal(200, (a:get(METRIC_PATH .. "http_requests_rate")))
        assert.are.equal(200, (a:get("/readyz")))
        local rc = a:stop()
        assert.are.equal(0, rc)
    end)

    it("reloads when the file changes, and refuses a broken edit", function()
        local dir = helpers.tmpdir("watched")
        local path = helpers.write_file(dir .. "/config.yaml", config("${1}_per_second"))
        local a = start(prom, kube, { config_file = path })
        assert.is_true(discovery_names(a)["pods/http_requests_per_second"])
        -- an atomic replace, as editors and the kubelet do it
        helpers.write_file(dir .. "/config.yaml.tmp", config("${1}_changed"))
        os.rename(dir .. "/config.yaml.tmp", path)
        assert.is_truthy(helpers.wait_until(function()
            local n = discovery_names(a)
            return n["pods/http_requests_changed"] and not n["pods/http_requests_per_second"]
        end, helpers.scale(10)), "the file change was not picked up")
        assert.are.equal(200, (a:get(METRIC_PATH .. "http_requests_changed")))
        -- broken YAML written in place
        helpers.write_file(path, "rules: [\n")
        assert.is_truthy(helpers.wait_until(function()
            return a:stderr():find("config reload refused", 1, true)
        end, helpers.scale(10)))
        assert.is_true(discovery_names(a)["pods/http_requests_changed"])
        assert.are.equal(200, (a:get(METRIC_PATH .. "http_requests_changed")))
        local m = scrape(a)
        assert.are.equal(0, m['promlua_adapter_config_last_reload_successful'])
        -- fixing it is picked up again
        helpers.write_file(path, config("${1}_fixed"))
        assert.is_truthy(helpers.wait_until(function()
            return discovery_names(a)["pods/http_requests_fixed"]
        end, helpers.scale(10)))
        assert.are.equal(1, scrape(a)['promlua_adapter_config_last_reload_successful'])
        a:stop()
    end)
end)

-- A hook script whose metric_name hook prefixes every name with tag.
local function hook_script(tag)
    return "return {\n  metric_name = function(rule, name, default)\n"
        .. "    local n = default(rule, name)\n"
        .. "    return n and (\"" .. tag .. "_\" .. n)\n  end,\n}\n"
end

describe("hook script reload", function()
    local prom, kube

    setup(function() prom, kube = start_fakes() end)
    teardown(function()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    local function count(s, needle)
        local n, i = 0, 1
        while true do
            local j = s:find(needle, i, true)
            if not j then return n end
            n, i = n + 1, j + #needle
        end
    end

    -- The config sits in the adapter's own directory, where every
    -- adapter:get writes its curl files: changes of unrelated files there
    -- must not keep putting the debounced reload off.
    it("reloads on a script change, refuses a broken script, debounces quick writes", function()
        local dir = helpers.tmpdir("hookreload")
        local hook = helpers.write_file(dir .. "/hook.lua", hook_script("v1"))
        local a = start(prom, kube, { config = config("${1}_per_second"),
            args = { "--lua-script=" .. hook } })
        assert.is_truthy(helpers.wait_until(function()
            return discovery_names(a)["pods/v1_http_requests_per_second"]
        end, helpers.scale(10)), "the v1 hook never applied")

        -- an edit of the script alone is a reload
        helpers.write_file(hook, hook_script("v2"))
        assert.is_truthy(helpers.wait_until(function()
            local n = discovery_names(a)
            return n["pods/v2_http_requests_per_second"] and not n["pods/v1_http_requests_per_second"]
        end, helpers.scale(10)), "the script change was not picked up:\n" .. a:stderr())
        local m = scrape(a)
        assert.are.equal(1, m['promlua_adapter_config_reloads_total{outcome="success"}'])
        assert.are.equal(1, count(a:stderr(), "config reloaded from"))

        -- a broken script: refused with FILE:LINE, the previous one serves
        helpers.write_file(hook, "return {\n  metric_name = function(rule, name, default)\n"
            .. "    return \"v3_\" ..\n  end,\n}\n")
        assert.is_truthy(helpers.wait_until(function()
            return a:stderr():find("config reload refused", 1, true)
        end, helpers.scale(10)))
        assert.truthy(a:stderr():find(hook .. ":4: unexpected symbol near 'end'", 1, true), a:stderr())
        m = scrape(a)
        assert.are.equal(0, m['promlua_adapter_config_last_reload_successful'])
        assert.are.equal(1, m['promlua_adapter_config_reloads_total{outcome="failure"}'])
        assert.are.equal(200, (a:get(METRIC_PATH .. "v2_http_requests_per_second")))
        assert.is_true(discovery_names(a)["pods/v2_http_requests_per_second"])

        -- several writes in quick succession: one reload, of the last text
        for _, tag in ipairs({ "v4", "v5", "v6", "v7" }) do
            helpers.write_file(hook, hook_script(tag))
        end
        assert.is_truthy(helpers.wait_until(function()
            return discovery_names(a)["pods/v7_http_requests_per_second"]
        end, helpers.scale(10)), "the last write was not picked up:\n" .. a:stderr())
        helpers.sleep(1.5)           -- three debounce periods: no late reload
        m = scrape(a)
        assert.are.equal(2, m['promlua_adapter_config_reloads_total{outcome="success"}'])
        assert.are.equal(1, m['promlua_adapter_config_reloads_total{outcome="failure"}'])
        assert.are.equal(2, count(a:stderr(), "config reloaded from"))
        assert.are.equal(1, m['promlua_adapter_config_last_reload_successful'])
        assert.are.equal(200, (a:get(METRIC_PATH .. "v7_http_requests_per_second")))
        assert.are.equal(0, (a:stop()))
    end)
end)

-- -- Shutdown --------------------------------------------------------------------

-- Starts a request in the background; returns a function giving its HTTP
-- status once it finished (nil before).
local function background_get(a, path)
    local dir = helpers.tmpdir("bg")
    os.execute(string.format("(curl -sk -o /dev/null -w '%%{http_code}' --max-time 30 %s >%s; "
        .. "mv %s %s) >/dev/null 2>&1 &",
        helpers.shq("https://127.0.0.1:" .. a.port .. path), helpers.shq(dir .. "/s.tmp"),
        helpers.shq(dir .. "/s.tmp"), helpers.shq(dir .. "/s")))
    return function()
        local s = helpers.read_file(dir .. "/s")
        return s and tonumber(s) or nil
    end
end

describe("graceful shutdown", function()
    local prom, kube

    setup(function() prom, kube = start_fakes() end)
    teardown(function()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    it("drains an in-flight request, refuses new connections, then exits 0", function()
        local mport = helpers.free_port()
        local a = start(prom, kube, { config = config("${1}_per_second"),
            args = { "--metrics-bind-address=127.0.0.1:" .. mport } })
        prom:control("POST", "/_fake/reset")
        prom:control("POST", "/_fake/query", { pattern = "http_requests_total", delay = 2,
            result = { resultType = "vector", result = {
                { metric = { kubernetes_pod_name = P1 }, value = { 1715851267.1, "2.5" } } } } })
        local status = background_get(a, METRIC_PATH .. "http_requests_per_second")
        assert.is_truthy(helpers.wait_until(function()
            return #prom:requests("/api/v1/query") > 0
        end, helpers.scale(5)), "the slow request never reached Prometheus")
        os.execute("kill -TERM " .. a.pid)
        helpers.sleep(0.3)
        assert.is_nil(a:exit_status(), "exited before the in-flight request finished")
        -- the secure port no longer accepts: a new connection is refused
        local c = socket.tcp()
        c:settimeout(2)
        local ok, cerr = c:connect("127.0.0.1", a.port)
        c:close()
        assert.is_nil(ok, "the secure port still accepts during the drain")
        assert.are.equal("connection refused", cerr)
        -- the plain listener answers until the drain ends: /readyz fails
        -- with the shutdown check
        local st, body = helpers.http("GET", "http://127.0.0.1:" .. mport .. "/readyz", nil, nil, 2)
        assert.are.equal(500, st)
        assert.are.equal("[+]ping ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n", body)
        assert.is_nil(a:exit_status(), "exited before the in-flight request finished")
        assert.is_truthy(helpers.wait_until(function() return a:exit_status() end,
            helpers.scale(10)))
        assert.are.equal(0, a:exit_status())
        assert.are.equal(200, helpers.wait_until(status, 5))
        local err = a:stderr()
        assert.truthy(err:find("shutting down", 1, true))
        assert.truthy(err:find("in-flight requests drained", 1, true))
        a.stopped = true
    end)

    it("exits at once on a second signal", function()
        local a = start(prom, kube, { config = config("${1}_per_second"),
            args = { "--prometheus-timeout=30s" } })
        prom:control("POST", "/_fake/reset")
        prom:control("POST", "/_fake/query", { pattern = "http_requests_total", hang = true })
        background_get(a, METRIC_PATH .. "http_requests_per_second")
        assert.is_truthy(helpers.wait_until(function()
            return #prom:requests("/api/v1/query") > 0
        end, helpers.scale(5)))
        os.execute("kill -TERM " .. a.pid)
        helpers.sleep(0.5)
        assert.is_nil(a:exit_status(), "did not wait for the hung request:\n" .. a:stderr())
        local t0 = helpers.now()
        os.execute("kill -TERM " .. a.pid)
        assert.is_truthy(helpers.wait_until(function() return a:exit_status() end, 3))
        assert.is_true(helpers.now() - t0 < 3)
        assert.are.equal(1, a:exit_status())
        assert.truthy(a:stderr():find("exiting immediately", 1, true))
        a.stopped = true
        prom:control("POST", "/_fake/reset")
    end)

    it("bounds the drain by --shutdown-delay-duration", function()
        prom:control("POST", "/_fake/reset")
        prom:control("POST", "/_fake/query", { pattern = "http_requests_total", hang = true })
        local a = start(prom, kube, { config = config("${1}_per_second"),
            args = { "--prometheus-timeout=30s", "--shutdown-delay-duration=1s" } })
        background_get(a, METRIC_PATH .. "http_requests_per_second")
        assert.is_truthy(helpers.wait_until(function()
            return #prom:requests("/api/v1/query") > 0
        end, helpers.scale(5)))
        local t0 = helpers.now()
        os.execute("kill -TERM " .. a.pid)
        assert.is_truthy(helpers.wait_until(function() return a:exit_status() end, helpers.scale(8)))
        assert.is_true(helpers.now() - t0 < helpers.scale(6))
        assert.are.equal(0, a:exit_status())
        a.stopped = true
        prom:control("POST", "/_fake/reset")
    end)
end)

-- -- Logs ------------------------------------------------------------------------

describe("logs", function()
    local prom, kube

    setup(function() prom, kube = start_fakes() end)
    teardown(function()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    -- One marker line per --v level (0, 1, 2, 4, 5, 6), each from the level
    -- where PA logs the same thing (5: this adapter's query cache).
    local MARKERS = {
        { 0, "serving securely on " },
        { 1, 'FLAG: %-%-v="' },
        { 2, "discovered %d+ API resources" },
        { 4, 'series query "http_requests_total' },
        { 5, "query answered from the cache: sum%(rate%(http_requests_total" },
        { 6, "GET http://127%.0%.0%.1:%d+/api/v1/series%?" },
    }

    -- Runs the adapter at --v=v with the query cache on and asks for the
    -- same metric twice (the second answer comes from the cache).
    local function run_at(v, extra)
        local args = { "--v=" .. v, "--query-cache-ttl=5m" }
        for _, x in ipairs(extra or {}) do args[#args + 1] = x end
        local a = start(prom, kube, { config = config("${1}_per_second"), args = args })
        helpers.wait_until(function() return a:stderr():find("series query", 1, true)
            or v < 4 and a:stderr():find("relist", 1, true) end, 3)
        helpers.sleep(1.2)                 -- at least one full relist
        assert.are.equal(200, (a:get(METRIC_PATH .. "http_requests_per_second")))
        assert.are.equal(200, (a:get(METRIC_PATH .. "http_requests_per_second")))
        local _, err = a:stop()
        return err
    end

    for _, v in ipairs({ 0, 2, 4, 5, 6 }) do
        it("--v=" .. v .. " prints exactly the lines of levels <= " .. v, function()
            local err = run_at(v)
            for _, m in ipairs(MARKERS) do
                local found = err:find(m[2]) ~= nil
                assert.are.equal(m[1] <= v, found,
                    string.format("level %d marker %q at --v=%d:\n%s", m[1], m[2], v, err))
            end
            for line in err:gmatch("[^\n]+") do
                assert.truthy(line:match("^[IWEF]%d%d%d%d %d%d:%d%d:%d%d%.%d%d%d%d%d%d +%d+ [%w_%.]+:%d+%] "),
                    "not a klog line: " .. line)
            end
            assert.is_nil(err:find("fake-token", 1, true), "the kubeconfig token was logged")
        end)
    end

    it("--logging-format=json writes one object per line with the V level", function()
        local err = run_at(6, { "--logging-format=json" })
        local levels = {}
        for line in err:gmatch("[^\n]+") do
            local ok, d = pcall(cjson.decode, line)
            assert.is_true(ok, "not JSON: " .. line)
            assert.are.equal("number", type(d.ts))
            assert.truthy(d.caller:match("^[%w_]+%.c:%d+$"))
            assert.are.equal("string", type(d.msg))
            if d.level == "info" then
                for _, m in ipairs(MARKERS) do
                    if d.msg:find(m[2]) then levels[m[1]] = d.v end
                end
            end
        end
        for _, m in ipairs(MARKERS) do
            assert.are.equal(m[1], levels[m[1]], "V level of " .. m[2])
        end
    end)

    it("never logs a credential from the Prometheus URL or the kubeconfig", function()
        local url = prom:url():gsub("^http://", "http://scraper:s3cr3t-pass@")
        local a = helpers.start_adapter { config = config("${1}_per_second"), kube = kube,
            args = { "--v=10", "--prometheus-url=" .. url, "--authentication-skip-lookup" } }
        helpers.sleep(1.5)
        local _, err = a:stop()
        assert.truthy(err:find("scraper:[redacted]@", 1, true), err)
        assert.is_nil(err:find("s3cr3t-pass", 1, true))
        assert.is_nil(err:find("fake-token", 1, true))
    end)
end)

-- -- The C pieces directly (FFI on build/lua/adapter/core.so) ------------------

describe("metrics registry, log scrubbing and route labels (C, through FFI)", function()
    local ffi = require "ffi"
    local core = require "ffi_core"   -- declares struct buf first
    ffi.cdef [[
        void metrics_add(int id, const char *l1, const char *l2, double v);
        void metrics_set(int id, const char *l1, const char *l2, double v);
        void metrics_observe(int id, const char *l1, const char *l2, double v);
        void metrics_reset(int id);
        double metrics_value(int id, const char *l1, const char *l2);
        void metrics_hook_failure(const char *hook);
        int metrics_render(struct buf *out);
        void log_scrub(char *s, size_t n);
        void api_route_label(const char *path, char *out, size_t outlen);
    ]]
    local lib = core.lib
    -- enum metrics_id (src/metrics.h)
    local HTTP_REQUESTS, HTTP_DURATION, HOOK_FAILURES, RULE_METRICS = 4, 5, 12, 18

    local function render()
        return core.with_buf(function(b) return lib.metrics_render(b) end)
    end

    it("renders cumulative histogram buckets, sum and count", function()
        lib.metrics_observe(HTTP_DURATION, "/ffi", "200", 0.003)
        lib.metrics_observe(HTTP_DURATION, "/ffi", "200", 0.2)
        lib.metrics_observe(HTTP_DURATION, "/ffi", "200", 20)
        local t = render()
        local function v(le)
            return tonumber(t:match('promlua_adapter_http_request_duration_seconds_bucket{route="/ffi",'
                .. 'code="200",le="' .. le:gsub("%p", "%%%0") .. '"} (%S+)'))
        end
        assert.are.equal(1, v("0.005"))
        assert.are.equal(1, v("0.1"))
        assert.are.equal(2, v("0.25"))
        assert.are.equal(2, v("10"))
        assert.are.equal(3, v("+Inf"))
        assert.are.equal(20.203, tonumber(t:match(
            'promlua_adapter_http_request_duration_seconds_sum{route="/ffi",code="200"} (%S+)')))
        assert.are.equal(3, lib.metrics_value(HTTP_DURATION, "/ffi", "200"))
    end)

    it("escapes label values and keeps counters monotonic", function()
        lib.metrics_add(HTTP_REQUESTS, 'a"b\\c\nd', "500", 2)
        lib.metrics_add(HTTP_REQUESTS, 'a"b\\c\nd', "500", -1)     -- ignored
        assert.truthy(render():find('promlua_adapter_http_requests_total{route="a\\"b\\\\c\\nd",'
            .. 'code="500"} 2\n', 1, true))
        lib.metrics_hook_failure("render_query (hooks.lua: f)")
        lib.metrics_hook_failure("render_query (hooks.lua: f)")
        assert.are.equal(2, lib.metrics_value(HOOK_FAILURES, "render_query (hooks.lua: f)", nil))
    end)

    it("drops a family's label sets on reset (rules removed by a reload)", function()
        lib.metrics_set(RULE_METRICS, "rules[7]", nil, 3)
        assert.truthy(render():find('promlua_adapter_rule_metrics{rule="rules[7]"} 3', 1, true))
        lib.metrics_reset(RULE_METRICS)
        assert.is_nil(render():find('rule="rules[7]"', 1, true))
        assert.truthy(render():find("# TYPE promlua_adapter_rule_metrics gauge", 1, true))
    end)

    it("scrubs tokens, passwords, URL credentials and private keys", function()
        local cases = {
            { "Authorization: Bearer abc.def", "Authorization: [redacted]" },
            { "sent Bearer eyJhbGciOi to x", "sent Bearer [redacted] to x" },
            { 'token=s3cr3t&x=1', 'token=[redacted]&x=1' },
            { '{"token":"xyz","a":1}', '{"token":"[redacted]","a":1}' },
            { "password: hunter2 next", "password: [redacted] next" },
            { "GET http://u:p4ss@h:9090/api", "GET http://u:[redacted]@h:9090/api" },
            { "k -----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY----- z",
              "k [redacted private key] z" },
            { "unable to read token file /var/run/token: no such file",
              "unable to read token file /var/run/token: no such file" },
            { "-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----" },
        }
        for _, c in ipairs(cases) do
            local b = ffi.new("char[256]")
            ffi.copy(b, c[1])
            lib.log_scrub(b, 256)
            assert.are.equal(c[2], ffi.string(b))
        end
        local small = ffi.new("char[12]")
        ffi.copy(small, "bearer abcd")
        lib.log_scrub(small, 12)
        assert.are.equal(11, #ffi.string(small))          -- bounded, still terminated
    end)

    it("bounds the route label", function()
        local function route(p)
            local b = ffi.new("char[256]")
            lib.api_route_label(p, b, 256)
            return ffi.string(b)
        end
        assert.are.equal("/readyz", route("/readyz"))
        assert.are.equal("/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/pods/*/*",
            route("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-1/rps"))
        assert.are.equal("/apis/custom.metrics.k8s.io/v1beta1/*/*/*",
            route("/apis/custom.metrics.k8s.io/v1beta1/nodes.x/n1/m"))
        assert.are.equal("/apis/external.metrics.k8s.io/v1beta1/namespaces/*/*",
            route("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue"))
        assert.are.equal("/apis/metrics.k8s.io/v1beta1/namespaces/*/pods",
            route("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods"))
        assert.are.equal("other", route("/apis/evil.example.com/v1/x"))
        assert.are.equal("other", route("/random/" .. string.rep("x", 300)))
    end)
end)
