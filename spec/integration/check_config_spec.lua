-- spec/integration/check_config_spec.lua: `promlua-adapter check-config`
-- (issue 8): validates the config and hook scripts without Prometheus or
-- Kubernetes; every error and warning as "FILE:LINE: key.path: message"
-- (warnings "...: warning: message") on stdout; exit 0 valid, 1 invalid,
-- 2 bad usage. Messages are asserted exactly, line numbers included.
-- Uses: spec/helpers.lua (run_adapter, temp files).

local helpers = require "helpers"

local function check(text, extra, name)
    local dir = helpers.tmpdir("check")
    local path = helpers.write_file(dir .. "/" .. (name or "config.yaml"), text)
    local args = { "check-config", "--config=" .. path }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local rc, err, out = helpers.run_adapter { config = false, args = args }
    -- the file's directory is variable: report lines relative to it
    out = out:gsub(dir:gsub("%p", "%%%0") .. "/", "")
    return rc, out, err
end

local function lines(s)
    local t = {}
    for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
    return t
end

local GOOD = [[
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
]]

describe("check-config", function()
    teardown(helpers.cleanup)

    it("accepts a valid config silently with exit 0", function()
        local rc, out, err = check(GOOD)
        assert.are.equal(0, rc, err)
        assert.are.equal("", out)
        assert.truthy(err:find("config.yaml: 0 error(s), 0 warning(s)", 1, true), err)
    end)

    it("needs no Prometheus and no Kubernetes (nothing is contacted)", function()
        -- unreachable endpoints given: still validates
        local rc = check(GOOD, { "--prometheus-url=http://127.0.0.1:1",
            "--lister-kubeconfig=/nonexistent/kubeconfig" })
        assert.are.equal(0, rc)
        -- reachable fakes given for every endpoint the server would use:
        -- their request logs stay empty
        local prom = helpers.start_prometheus {}
        local kube = helpers.start_kube {}
        local ok, e = pcall(function()
            local kc = helpers.kubeconfig(kube)
            local out, err
            rc, out, err = check(GOOD, { "--prometheus-url=" .. prom:url(),
                "--lister-kubeconfig=" .. kc, "--authentication-kubeconfig=" .. kc,
                "--authorization-kubeconfig=" .. kc, "--prometheus-auth-config=" .. kc })
            assert.are.equal(0, rc, out .. err)
            assert.are.same({}, prom:requests())
            assert.are.same({}, kube:requests())
        end)
        prom:stop()
        kube:stop()
        if not ok then error(e, 0) end
    end)

    it("prints every error with file, line and key path, exit 1", function()
        local rc, out = check([[
rules:
- seriesQuery: 'x{a!=""}'
  resources:
    template: "<<.Resource>>"
  name:
    matches: "(("
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'y{a!=""}'
  resources:
    template: "<<.Resource>>"
  seriesFilters:
  - is: "a"
    isNot: "b"
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy'
]])
        assert.are.equal(1, rc)
        assert.are.same({
            'config.yaml:6: rules[0].name.matches: unable to generate series name filter from '
                .. 'name rules associated with series query "x{a!=\\"\\"}": unable to compile '
                .. 'series filter "((": error parsing regexp: missing closing ): `((`',
            'config.yaml:14: rules[1].metricsQuery: unable to construct metrics query associated '
                .. 'with series query "y{a!=\\"\\"}": unable to parse metrics query template '
                .. '"sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy": template: '
                .. 'metrics-query:1: unclosed action',
            'config.yaml:12: rules[1].seriesFilters[0]: unable to generate series name filter '
                .. 'associated with series query "y{a!=\\"\\"}": cannot have both an `is` ("a") '
                .. 'and `isNot` ("b") expression in a single filter',
        }, lines(out))
    end)

    it("reports unknown keys (strict YAML) with their line", function()
        local text = GOOD:gsub("  metricsQuery: 'sum%(rate", "  bogus: 1\n  metricsQuery: 'sum(rate", 1)
        local rc, out = check(text)
        assert.are.equal(1, rc)
        assert.are.same({ "config.yaml:10: rules[0].bogus: field bogus not found in type "
            .. "config.DiscoveryRule" }, lines(out))
    end)

    it("reports YAML syntax errors with line and column", function()
        local rc, out = check("rules:\n- seriesQuery: [\n")
        assert.are.equal(1, rc)
        assert.are.same({ "config.yaml:3:1: did not find expected node content (while parsing "
            .. "a flow node at line 3, column 1)" }, lines(out))
    end)

    it("warns about the quirks of decisions.md, exit 0", function()
        local rc, out = check([[
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "_total"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'foo_seconds{namespace!=""}'
  seriesFilters:
  - isNot: "^foo"
  resources:
    template: "<<.Resource>>"
  name:
    matches: "^(.*)$"
    as: "$1_suffix"
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'bar{x!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]])
        assert.are.equal(0, rc)
        assert.are.same({
            'config.yaml:8: rules[0].name.matches: warning: name.matches "_total" is not anchored '
                .. 'and the name is the whole match ($0): the API name is only the matched part of '
                .. 'the series name; anchor it (^...$) or capture the part to keep',
            'config.yaml:10: rules[1].seriesQuery: warning: every series of "foo_seconds" is '
                .. 'rejected by rules[1].seriesFilters[0] (isNot "^foo"): the rule can never answer',
            'config.yaml:17: rules[1].name.as: warning: $1_suffix refers to a capture group named '
                .. '"1_suffix", which expands to "" (Go Regexp.Expand); write ${1}_suffix if the '
                .. 'number was meant',
            'config.yaml:19: rules[2].resources: warning: rule maps no label to any resource (no '
                .. 'template, no overrides): it can never answer',
            'config.yaml:22: externalRules[0].resources: warning: external rule is namespaced but '
                .. 'maps no label to namespaces: every request will fail; add an override such as '
                .. '`namespace: {resource: namespace}` or set `namespaced: false`',
        }, lines(out))
    end)

    it("warns about a name.matches that rejects the rule's only series", function()
        local rc, out = check([[
rules:
- seriesQuery: 'node_load1{node!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^container_(.*)$', as: ''}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]])
        assert.are.equal(0, rc)
        assert.are.same({ 'config.yaml:2: rules[0].seriesQuery: warning: every series of '
            .. '"node_load1" is rejected by rules[0].name.matches (is "^container_(.*)$"): the '
            .. 'rule can never answer' }, lines(out))
    end)

    it("checks --lua-script files and reports their syntax errors", function()
        -- a path longer than Lua's 60-byte chunk names, which Lua would
        -- shorten to "...tail"
        local dir = helpers.tmpdir("hooks-" .. string.rep("long", 20))
        local hook = helpers.write_file(dir .. "/hook.lua", "local M = {}\nfunction M.f( return M\n")
        local rc, out = check(GOOD, { "--lua-script=" .. hook })
        assert.are.equal(1, rc)
        assert.are.same({ hook .. ":2: <name> or '...' expected near 'return'" }, lines(out))
        -- no table returned: the line of the chunk's last statement, the
        -- full path once (not "path: path: ...")
        local none = helpers.write_file(dir .. "/none.lua", "local M = {}\n\nM.x = 1\n-- end\n")
        rc, out = check(GOOD, { "--lua-script=" .. none })
        assert.are.equal(1, rc)
        assert.are.same({ none .. ":3: the script must return a table of functions (got nil)" },
            lines(out))
        -- an export that is not a function: the line of the return
        local notfn = helpers.write_file(dir .. "/notfn.lua",
            "local M = {}\nM.limit = 3\nfunction M.f() end\nreturn M\n")
        rc, out = check(GOOD, { "--lua-script=" .. notfn })
        assert.are.equal(1, rc)
        assert.are.same({ notfn .. ':4: export "limit" is a number, not a function' }, lines(out))
        local ok = helpers.write_file(dir .. "/ok.lua", "return {}\n")
        rc, out = check(GOOD, { "--lua-script=" .. ok })
        assert.are.equal(0, rc, out)
    end)

    it("reports a missing file and bad usage", function()
        local rc, err, out = helpers.run_adapter { config = false,
            args = { "check-config", "--config=/nonexistent/config.yaml" } }
        assert.are.equal(1, rc)
        assert.are.equal("open /nonexistent/config.yaml: no such file or directory\n", out)
        rc, err = helpers.run_adapter { config = false, args = { "check-config" } }
        assert.are.equal(2, rc)
        assert.truthy(err:find("check-config needs --config FILE", 1, true))
        rc = helpers.run_adapter { config = false, args = { "check-config", "--no-such-flag" } }
        assert.are.equal(2, rc)
    end)
end)
