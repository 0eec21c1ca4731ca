-- spec/core/selector_spec.lua: core.selector_parse / selector_string /
-- selector_matches follow k8s.io/apimachinery labels.Parse (v0.30).
local core = require "adapter.core"

local function parse(s)
    local sel, err = core.selector_parse(s)
    assert.is_nil(err)
    return sel
end

local function perr(s)
    local sel, err = core.selector_parse(s)
    assert.is_nil(sel, "expected an error for " .. s)
    return err
end

local QN = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
local LV = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

describe("core.selector_parse", function()
    it("parses the empty selector", function()
        assert.are.same({}, parse(""))
        assert.are.same({}, parse("  \t "))
    end)

    it("parses every operator", function()
        assert.are.same({
            { key = "a", op = "exists", values = {} },
            { key = "b", op = "!", values = {} },
            { key = "c", op = "=", values = { "1" } },
            { key = "d", op = "==", values = { "2" } },
            { key = "e", op = "!=", values = { "3" } },
            { key = "f", op = "in", values = { "x", "y" } },
            { key = "g", op = "notin", values = { "z" } },
            { key = "h", op = ">", values = { "5" } },
            { key = "i", op = "<", values = { "10" } },
        }, parse("a,!b,c=1,d==2,e!=3,f in (x,y),g notin (z),h>5,i<10"))
    end)

    it("sorts requirements by key, stably, and values as bytes with dedup", function()
        assert.are.same({
            { key = "a", op = "in", values = { "B", "a", "b" } },
            { key = "b", op = "=", values = { "2" } },
            { key = "b", op = "!=", values = { "1" } },
            { key = "c", op = "exists", values = {} },
        }, parse("c, b=2, a in (b,a,B,b), b!=1"))
    end)

    it("tolerates whitespace and empty values", function()
        assert.are.same({ { key = "app", op = "in", values = { "a", "b" } } },
            parse("  app   in   ( a , b )  "))
        assert.are.same({ { key = "k", op = "=", values = { "" } } }, parse("k="))
        assert.are.same({ { key = "k", op = "in", values = { "" } } }, parse("k in ()"))
        assert.are.same({ { key = "k", op = "in", values = { "", "a" } } }, parse("k in (,a)"))
        assert.are.same({ { key = "k", op = "in", values = { "", "a" } } }, parse("k in (a,)"))
        assert.are.same({ { key = "k", op = "in", values = { "", "a", "b" } } }, parse("k in (a,,b)"))
        assert.are.same({
            { key = "a", op = "=", values = { "" } },
            { key = "b", op = "exists", values = {} },
        }, parse("a=,b"))
    end)

    it("treats in/notin as identifiers where values are expected", function()
        assert.are.same({ { key = "in", op = "exists", values = {} } }, parse("in"))
        assert.are.same({ { key = "x", op = "in", values = { "in", "notin" } } },
            parse("x in (notin,in)"))
        assert.are.same({ { key = "x", op = "=", values = { "in" } } }, parse("x=in"))
    end)

    it("accepts qualified keys", function()
        assert.are.same({ { key = "app.kubernetes.io/name", op = "=", values = { "web" } } },
            parse("app.kubernetes.io/name=web"))
        local long = string.rep("a", 63)
        assert.are.equal(long, parse(long .. "=" .. long)[1].key)
    end)

    local errors = {
        { "app in", "unable to parse requirement: found '' expected: '('" },
        { "app in a", "unable to parse requirement: found 'a' expected: '('" },
        { "app in (a", "unable to parse requirement: found '', expected: ',' or ')'" },
        { "app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'" },
        { "app in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier" },
        { "app in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier" },
        { ",", "found ',', expected: !, identifier, or 'end of string'" },
        { "a,", "found '', expected: identifier after ','" },
        { "k in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier" },
        { "a,,b", "found ',', expected: identifier after ','" },
        { "a=b c", "found 'c', expected: ',' or 'end of string'" },
        { "!a=b", "found '=', expected: ',' or 'end of string'" },
        { "!", "unable to parse requirement: found '', expected: identifier" },
        { "a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt" },
        { "a>=1", "unable to parse requirement: found '=', expected: identifier" },
        { "a=(", "unable to parse requirement: found '(', expected: identifier" },
        { "a@b=c", "unable to parse requirement: <nil>: Invalid value: \"a@b\": name part " .. QN },
        { "a/=c", "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part " .. QN },
        { "/a=c", "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty" },
        { "A.com/a=c", "unable to parse requirement: <nil>: Invalid value: \"A.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')" },
        { "a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name " .. QN .. " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')" },
        { string.rep("k", 64), "unable to parse requirement: <nil>: Invalid value: \"" .. string.rep("k", 64) .. "\": name part must be no more than 63 characters" },
        { "app=a@b", "unable to parse requirement: values[0][app]: Invalid value: \"a@b\": " .. LV },
        { "app=" .. string.rep("v", 64), "unable to parse requirement: values[0][app]: Invalid value: \"" .. string.rep("v", 64) .. "\": must be no more than 63 characters" },
        { "app=-a-", "unable to parse requirement: values[0][app]: Invalid value: \"-a-\": " .. LV },
        { "app in (b@,a@)", "unable to parse requirement: [values[0][app]: Invalid value: \"a@\": " .. LV .. ", values[1][app]: Invalid value: \"b@\": " .. LV .. "]" },
        { "a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer" },
        { "a<99999999999999999999", "unable to parse requirement: values[0]: Invalid value: \"99999999999999999999\": for 'Gt', 'Lt' operators, the value must be an integer" },
        { "a>1.5", "unable to parse requirement: values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, the value must be an integer" },
        { "a>x@", "unable to parse requirement: [values[0]: Invalid value: \"x@\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][a]: Invalid value: \"x@\": " .. LV .. "]" },
        { "a=\"b\"", "unable to parse requirement: values[0][a]: Invalid value: \"\\\"b\\\"\": " .. LV },
    }
    for _, c in ipairs(errors) do
        it("error for " .. c[1]:sub(1, 30), function()
            assert.are.equal(c[2], perr(c[1]))
        end)
    end

    it("rejects a non-string", function()
        assert.has_error(function() core.selector_parse({}) end)
    end)
end)

describe("core.selector_string", function()
    it("renders the canonical form", function()
        assert.are.equal("a,!b,c=1,d==2,e!=3,f in (x,y),g notin (z),h>5,i<10",
            core.selector_string("i<10, h>5, g notin (z), f in (y,x,y), e!=3, d==2, c=1, !b, a"))
        assert.are.equal("", core.selector_string(""))
        assert.are.equal("k in ()", core.selector_string("k in ()"))
        local s, err = core.selector_string("a in")
        assert.is_nil(s)
        assert.are.equal("unable to parse requirement: found '' expected: '('", err)
    end)
end)

describe("core.selector_matches", function()
    local labels = { app = "web", tier = "1", n = "7" }
    local cases = {
        { "", true },
        { "app", true }, { "nope", false },
        { "!nope", true }, { "!app", false },
        { "app=web", true }, { "app==web", true }, { "app=db", false },
        { "nope=web", false },
        { "app!=db", true }, { "app!=web", false }, { "nope!=x", true },
        { "app in (db,web)", true }, { "app in (db)", false }, { "nope in (x)", false },
        { "app notin (db)", true }, { "app notin (web)", false }, { "nope notin (x)", true },
        { "n>5", true }, { "n>7", false }, { "n<8", true }, { "nope>1", false },
        { "app>1", false },      -- not an integer label value
        { "app=web,tier=1", true }, { "app=web,tier=2", false },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.are.equal(c[2], core.selector_matches(c[1], labels))
        end)
    end

    it("compares integer label values with a sign", function()
        assert.is_true(core.selector_matches("n>-1", { n = "+3" }) == nil)  -- "-1" is not a label value
        assert.is_true(core.selector_matches("n<1", { n = "-3" }))
    end)

    it("returns nil, err for a bad selector", function()
        local ok, err = core.selector_matches("a in", {})
        assert.is_nil(ok)
        assert.are.equal("unable to parse requirement: found '' expected: '('", err)
    end)
end)
