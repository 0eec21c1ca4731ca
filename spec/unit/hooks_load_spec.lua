-- spec/unit/hooks_load_spec.lua: start-up errors of the hook layer: a
-- script that does not compile or raises names file:line; a script that
-- returns no table or exports a non-function; the per-rule `hooks:` key is
-- strict (unknown step, wrong type) and every name must be exported by a
-- script (path and line of the YAML); reserved names cannot be per-rule;
-- scripts load in order (a later export replaces an earlier one).

local core = require "adapter.core"
local engine = require "adapter.engine"

local function new(yaml, scripts)
    local tree = assert(core.yaml_parse(yaml, "c.yaml"))
    return engine.new(tree, { file = "c.yaml", scripts = scripts, hook_timeout_ms = 300 })
end

local RULE = [[
rules:
- seriesQuery: 'up'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]]

local function one_error(yaml, scripts)
    local eng, errs = new(yaml, scripts)
    assert.is_nil(eng)
    assert.equal(1, #errs)
    return errs[1]
end

describe("hooks: loading scripts", function()
    it("reports a syntax error with file and line", function()
        local e = one_error(RULE, { { path = "bad.lua", text = "return {\n  x = function(\n" } })
        assert.equal("bad.lua", e.file)
        assert.equal(3, e.line)
        assert.truthy(e.msg:find("expected", 1, true) or e.msg:find("near", 1, true), e.msg)
    end)

    it("reports an error raised while the script runs, with its line", function()
        local e = one_error(RULE, { { path = "boom.lua", text = "local x = 1\nerror('no config')\n" } })
        assert.equal("boom.lua", e.file)
        assert.equal(2, e.line)
        assert.equal("no config", e.msg)
    end)

    it("requires a table of functions", function()
        local e = one_error(RULE, { { path = "n.lua", text = "return 42" } })
        assert.truthy(e.msg:find("must return a table of functions (got number)", 1, true), e.msg)
        e = one_error(RULE, { { path = "f.lua", text = "return { limit = 3 }" } })
        assert.equal("f.lua", e.file)
        assert.equal('export "limit" is a number, not a function', e.msg)
    end)

    it("reads the exports raw: a script's metamethods never run at load", function()
        -- a loop in __tostring or __index would hang start-up (or the
        -- reload thread) outside any hook time limit
        local loop = "function() while true do end end"
        local e = one_error(RULE, { { path = "m.lua", text = "local k = setmetatable({}, { __tostring = "
            .. loop .. " })\nreturn setmetatable({ [k] = 1, metric_name = function() end }, "
            .. "{ __index = " .. loop .. ", __tostring = " .. loop .. " })" } })
        assert.equal("m.lua", e.file)
        assert.equal("exported key of type table is not a string", e.msg)
    end)

    it("reports a script file that cannot be read", function()
        local e = one_error(RULE, { { path = "/nonexistent/hooks.lua" } })
        assert.equal("/nonexistent/hooks.lua", e.file)
        assert.truthy(e.msg:find("cannot read --lua-script", 1, true), e.msg)
    end)

    it("reads a script from its path when no text is given", function()
        local eng, errs = new(RULE, { { path = "rules/examples/rename.lua" } })
        assert.truthy(eng, errs and errs[1] and errs[1].msg)
        assert.truthy(eng.hooks:lookup("rename"))
    end)

    it("loads scripts in order: a later export replaces an earlier one", function()
        local eng = assert(new(RULE, {
            { path = "a.lua", text = "return { metric_name = function() return 'a' end }" },
            { path = "b.lua", text = "return { metric_name = function() return 'b' end }" },
        }))
        assert.equal("b.lua", eng.hooks:lookup("metric_name").script)
    end)
end)

describe("hooks: the per-rule hooks key", function()
    it("names a function no script exports: start-up error with path and line", function()
        local e = one_error(RULE .. "  hooks: {compute: nowhere}\n",
            { { path = "a.lua", text = "return { elsewhere = function() end }" } })
        assert.equal(5, e.line)
        assert.equal("rules[0].hooks.compute", e.path)
        assert.equal('no --lua-script exports a function named "nowhere"', e.msg)
    end)

    it("is an error without any script", function()
        local e = one_error(RULE .. "  hooks:\n    render_query: tenant\n")
        assert.equal(6, e.line)
        assert.equal("rules[0].hooks.render_query", e.path)
    end)

    it("rejects a reserved name", function()
        local e = one_error(RULE .. "  hooks: {metric_name: metric_name}\n",
            { { path = "a.lua", text = "return { metric_name = function() end }" } })
        assert.equal("rules[0].hooks.metric_name", e.path)
        assert.truthy(e.msg:find("reserved", 1, true), e.msg)
    end)

    it("is strict: unknown keys and wrong types are config errors", function()
        local e = one_error(RULE .. "  hooks: {prepare: x}\n")
        assert.equal("rules[0].hooks.prepare", e.path)
        assert.equal("field prepare not found in type config.RuleHooks", e.msg)
        e = one_error(RULE .. "  hooks: [compute]\n")
        assert.equal("rules[0].hooks", e.path)
        assert.truthy(e.msg:find("cannot unmarshal !!seq into config.RuleHooks", 1, true), e.msg)
    end)

    it("accepts exported names on external rules", function()
        local eng = new([[
externalRules:
- seriesQuery: 'q'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>)'
  hooks: {compute: calc, render_query: rq}
]], { { path = "a.lua", text = "return { calc = function() end, rq = function() end }" } })
        assert.truthy(eng)
        assert.is_true(eng:has_compute("external", 1))
    end)
end)
