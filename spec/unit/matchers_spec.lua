-- Unit-level worked examples of spec-rules.md §2.5 (the GR `resource` has
-- the label `resource`, `namespaces` the label `namespaces`) and §2.4.2.
local matchers = require "adapter.matchers"
local template = require "adapter.template"

-- The converter the PA unit tests use: a label is the resource name.
local cv = { label_for = function(_, gr) return gr.resource end }

local function custom(tpl, req, extra)
    req.series = req.series or "foo"
    req.resource = "resource"
    req.names = req.names or {}
    local data, err = matchers.custom_args(req, cv, extra)
    assert(data, err)
    return assert(template.compile(tpl, "q")):execute(data)
end

local function external(tpl, req, namespaced)
    req.series = "foo"
    local data, err = matchers.external_args(req, cv, namespaced)
    assert(data, err)
    return assert(template.compile(tpl, "q")):execute(data)
end

describe("query template data", function()
    it("custom", function()
        assert.are.equal("series foo", custom("series <<.Series>>", {}))
        assert.are.equal('resource=~"bar|baz"', custom("<<.LabelMatchers>>", { names = { "bar", "baz" } }))
        assert.are.equal('resource="bar"', custom("<<.LabelMatchers>>", { names = { "bar" } }))
        assert.are.equal('metric1="value1",resource="bar"',
            custom("<<.LabelMatchers>>", { names = { "bar" }, metric_selector = "metric1=value1" }))
        assert.are.equal("bar|baz", custom('<<index .LabelValuesByName "resource">>', { names = { "bar", "baz" } }))
        assert.are.equal("default bar|baz", custom('<<index .LabelValuesByName "namespaces">> <<index .LabelValuesByName "resource">>',
            { names = { "bar", "baz" }, namespace = "default" }))
        assert.are.equal("resource", custom("<<.GroupBy>>", {}))
        assert.are.equal("resource,extra,groups", custom("<<.GroupBy>>", {}, { "extra", "groups" }))
        assert.are.equal("[resource]", custom("<<.GroupBySlice>>", {}))
        assert.are.equal("[resource extra groups]", custom("<<.GroupBySlice>>", {}, { "extra", "groups" }))
    end)

    it("external", function()
        assert.are.equal('foo="bar",namespaces="default"',
            external("<<.LabelMatchers>>", { selector = "foo=bar", namespace = "default" }))
        assert.are.equal('foo="bar",qux=~"bar|baz"',
            external("<<.LabelMatchers>>", { selector = "foo=bar,qux in (bar,baz)" }))
        assert.are.equal("map[foo:bar|baz]",
            external("<<.LabelValuesByName>>", { selector = "foo in (bar,baz)" }))
        assert.are.equal(" []", external('<<index .LabelValuesByName "namespaces">> <<.GroupBySlice>>',
            { selector = "", namespace = "default" }, false))
    end)
end)

describe("selector conversion", function()
    local function conv(s)
        local reqs = assert(matchers.parse(s))
        local c, err = matchers.convert(reqs)
        if not c then return nil, err end
        return table.concat(c.matchers, ",")
    end
    it("sorts keys and values", function()
        assert.are.equal('a=~"x|y",b!~"p|q",c="",d!=""', conv("d,!c,b notin (q,p,q),a in (y,x)"))
        assert.are.equal('a=~"x"', conv("a in (x)"))
        assert.are.equal('a!="x"', conv("a!=x"))
    end)
    it("rejects gt/lt and label names Prometheus cannot take", function()
        local c, err = conv("a>1")
        assert.is_nil(c)
        assert.matches("not supported by prometheus", err, 1, true)
        c, err = conv("app.kubernetes.io/name=x")
        assert.is_nil(c)
        assert.matches("not a valid Prometheus label name", err, 1, true)
    end)
end)
