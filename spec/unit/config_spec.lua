-- Config decoding and start-up validation (spec-rules.md §1): PA's
-- messages with line and key path.
local Y = require "unit.yamltree"
local engine = require "adapter.engine"
local config = require "adapter.config"

local function errs_of(text)
    local eng, errs, warns = engine.new(Y.parse(text), {})
    return eng, errs or {}, warns or {}
end

describe("config decoding", function()
    it("accepts an empty document", function()
        local eng = errs_of("# only a comment\n")
        assert.truthy(eng)
        assert.is_false(eng:has("custom"))
        assert.is_false(eng:has("resource"))
    end)

    it("rejects unknown keys with line and path", function()
        local eng, errs = errs_of("rules:\n- seriesQuery: x\n  resources:\n    overrides:\n      pod: {resourc: pod}\n")
        assert.is_nil(eng)
        assert.are.same({ line = 5, path = "rules[0].resources.overrides.pod.resourc",
            msg = "field resourc not found in type config.GroupResource" }, errs[1])
    end)

    it("rejects duplicate keys", function()
        local _, errs = errs_of("rules:\n- seriesQuery: x\n  seriesQuery: y\n")
        assert.are.equal("field seriesQuery already set in type config.DiscoveryRule", errs[1].msg)
        assert.are.equal(3, errs[1].line)
        _, errs = errs_of("rules:\n- resources:\n    overrides:\n      pod: {resource: pod}\n      pod: {resource: pod}\n")
        assert.are.equal('key "pod" already set in map', errs[1].msg)
    end)

    it("rejects wrong kinds", function()
        local _, errs = errs_of("rules:\n- seriesQuery: {a: b}\n")
        assert.are.equal("cannot unmarshal !!map into string", errs[1].msg)
        assert.are.equal("rules[0].seriesQuery", errs[1].path)
        _, errs = errs_of("rules:\n- resources:\n    namespaced: \"true\"\n")
        assert.are.equal("cannot unmarshal !!str `true` into bool", errs[1].msg)
    end)

    it("reads YAML 1.1 bools and stringifies scalars", function()
        local eng = errs_of("externalRules:\n- seriesQuery: true\n  name: {as: 1}\n  resources: {namespaced: off}\n  metricsQuery: x\n")
        assert.truthy(eng)
        local r = eng.cfg.externalRules[1]
        assert.are.equal("true", r.seriesQuery)
        assert.are.equal("1", r.name.as)
        assert.is_false(r.resources.namespaced)
    end)

    it("parses Prometheus durations", function()
        assert.are.equal(5400000, config.parse_duration("1h30m"))
        assert.are.equal(0, config.parse_duration("0"))
        assert.are.same({ nil, "empty duration string" }, { config.parse_duration("") })
        assert.are.same({ nil, 'not a valid duration string: "5"' }, { config.parse_duration("5") })
        assert.are.same({ nil, 'not a valid duration string: "1.5m"' }, { config.parse_duration("1.5m") })
        assert.are.same({ nil, 'not a valid duration string: "30m1h"' }, { config.parse_duration("30m1h") })
        assert.are.same({ nil, 'unknown unit "x" in duration "1x"' }, { config.parse_duration("1x") })
        local _, errs = errs_of("resourceRules:\n  window: 5\n")
        assert.are.equal("resourceRules.window", errs[1].path)
    end)
end)

describe("start-up validation", function()
    it("checks filters", function()
        local _, errs = errs_of("rules:\n- seriesQuery: q\n  seriesFilters:\n  - {is: a, isNot: b}\n")
        assert.are.equal('unable to generate series name filter associated with series query "q": '
            .. 'cannot have both an `is` ("a") and `isNot` ("b") expression in a single filter', errs[1].msg)
        assert.are.equal("rules[0].seriesFilters[0]", errs[1].path)
        _, errs = errs_of("rules:\n- seriesQuery: q\n  seriesFilters:\n  - {}\n")
        assert.matches("must have either an `is` or `isNot` expression", errs[1].msg, 1, true)
    end)

    it("requires as for two capture groups", function()
        local _, errs = errs_of("rules:\n- seriesQuery: q\n  name: {matches: '(a)(b)'}\n")
        assert.are.equal("must specify an 'as' value for name matcher \"(a)(b)\" associated with series query \"q\"", errs[1].msg)
        assert.are.equal("rules[0].name.as", errs[1].path)
    end)

    it("reports bad regexes under matches", function()
        local _, errs = errs_of("rules:\n- seriesQuery: q\n  name: {matches: '(a'}\n")
        assert.matches('^unable to generate series name filter from name rules associated with series query "q": unable to compile series filter "%(a": ', errs[1].msg)
    end)

    it("checks templates", function()
        local _, errs = errs_of("rules:\n- seriesQuery: q\n  metricsQuery: '<<.Series'\n")
        assert.matches('unable to construct metrics query associated with series query "q": unable to parse metrics query template', errs[1].msg, 1, true)
        _, errs = errs_of("rules:\n- seriesQuery: q\n  resources: {template: 'kube_<<.Group>>'}\n")
        assert.matches("must include at least `{{.Resource}}` in the label template", errs[1].msg, 1, true)
    end)

    it("warns about $1_suffix and namespaced on custom rules", function()
        local eng, _, warns = errs_of("rules:\n- seriesQuery: q\n  name: {matches: '^(.*)_total$', as: '$1_x'}\n  resources: {namespaced: true, template: '<<.Resource>>'}\n  metricsQuery: 'x by (<<.GroupBy>>)'\n")
        assert.truthy(eng)
        assert.are.equal(2, #warns)
        assert.are.equal("rules[0].name.as", warns[1].path)
        assert.are.equal("rules[0].resources.namespaced", warns[2].path)
    end)

    it("fails set_resources on an override the cluster does not know", function()
        local eng = errs_of("rules:\n- seriesQuery: q\n  resources:\n    overrides:\n      b: {group: cheese.io, resource: brand}\n  metricsQuery: 'x by (<<.GroupBy>>)'\n")
        local ok, err = eng:set_resources({ { group = "", version = "v1", resource = "pods",
            singular = "pod", kind = "Pod", namespaced = true, preferred = true } })
        assert.is_nil(ok)
        assert.are.equal("rules[0].resources.overrides: unable to normalize group-resource "
            .. "{cheese.io brand}: no matches for cheese.io/, Resource=brand", err)
    end)
end)
