-- spec/core/yaml_spec.lua: core.yaml_parse builds the node tree of
-- docs/architecture.md from libyaml events (src/yaml.c).
local core = require "adapter.core"

local function tree(text)
    local t, err = core.yaml_parse(text, "c.yaml")
    assert.is_nil(err)
    return t
end

local function yerr(text)
    local t, err = core.yaml_parse(text, "c.yaml")
    assert.is_nil(t)
    return err
end

-- map pairs as { key -> value node } for convenience
local function fields(map)
    local out = {}
    for _, p in ipairs(map.pairs) do out[p.key.value] = p.value end
    return out
end

describe("core.yaml_parse", function()
    it("gives nil for an empty or comment-only document", function()
        assert.is_nil(tree(""))
        assert.is_nil(tree("# just a comment\n\n"))
        assert.is_nil(tree("---\n"))
        assert.is_nil(tree("~\n"))
    end)

    it("builds maps with key order, lines and columns", function()
        local t = tree("rules:\n  - seriesQuery: 'up'\n    name: {matches: \"^(.*)$\", as: x}\nb: 1\n")
        assert.are.equal("map", t.tag)
        assert.are.equal(1, t.line)
        assert.are.equal(1, t.col)
        assert.are.equal(2, #t.pairs)
        assert.are.equal("rules", t.pairs[1].key.value)
        assert.are.equal("b", t.pairs[2].key.value)
        assert.are.equal(4, t.pairs[2].key.line)
        local rules = t.pairs[1].value
        assert.are.equal("seq", rules.tag)
        assert.are.equal(1, #rules.items)
        local r = rules.items[1]
        assert.are.equal(2, r.line)
        assert.are.equal(5, r.col)
        local f = fields(r)
        assert.are.equal("up", f.seriesQuery.value)
        assert.are.equal("single", f.seriesQuery.style)
        assert.are.equal(2, f.seriesQuery.line)
        assert.are.equal(18, f.seriesQuery.col)
        local n = fields(f.name)
        assert.are.equal("^(.*)$", n.matches.value)
        assert.are.equal("double", n.matches.style)
        assert.are.equal("x", n.as.value)
        assert.are.equal("plain", n.as.style)
        assert.are.equal(3, n.as.line)
    end)

    it("keeps scalar text and style", function()
        local f = fields(tree("a: 1\nb: true\nc: |\n  x\n  y\nd: >\n  x\n  y\ne: 'it''s'\nf: \"\\t\"\n"))
        assert.are.equal("1", f.a.value)
        assert.are.equal("true", f.b.value)
        assert.are.equal("x\ny\n", f.c.value)
        assert.are.equal("literal", f.c.style)
        assert.are.equal("x y\n", f.d.value)
        assert.are.equal("folded", f.d.style)
        assert.are.equal("it's", f.e.value)
        assert.are.equal("\t", f.f.value)
        for _, k in ipairs { "a", "b", "c", "d", "e", "f" } do
            assert.is_false(f[k].null)
        end
    end)

    it("marks plain nulls only", function()
        local f = fields(tree("a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: ''\ng: 'null'\nh: nULL\ni: !!str ~\nj: !!null x\n"))
        for _, k in ipairs { "a", "b", "c", "d", "e", "j" } do
            assert.is_true(f[k].null, k)
        end
        for _, k in ipairs { "f", "g", "h", "i" } do
            assert.is_false(f[k].null, k)
        end
        assert.are.equal("", f.e.value)
        assert.are.equal("!!str", f.i.ytag)
    end)

    it("keeps duplicate keys and merge keys as ordinary pairs", function()
        local t = tree("a: 1\na: 2\n<<: {b: 3}\n")
        assert.are.equal(3, #t.pairs)
        assert.are.equal("2", t.pairs[2].value.value)
        assert.are.equal("<<", t.pairs[3].key.value)
    end)

    it("resolves aliases to the same table", function()
        local t = tree("base: &b {x: 1}\nother: *b\nlist: [&s v, *s]\n")
        local f = fields(t)
        assert.are.equal(f.base, f.other)
        assert.are.equal("b", f.base.anchor)
        assert.are.equal(f.list.items[1], f.list.items[2])
        assert.are.equal("v", f.list.items[2].value)
    end)

    it("reads only the first document", function()
        local t = tree("a: 1\n---\nb: 2\n--- [\n")
        assert.are.equal(1, #t.pairs)
        assert.are.equal("a", t.pairs[1].key.value)
    end)

    it("reports syntax errors with file:line:col", function()
        assert.are.equal("c.yaml:1:5: mapping values are not allowed in this context", yerr("a: b: c\n"))
        assert.are.equal("c.yaml:3:2: did not find expected key (while parsing a block mapping at line 1, column 1)",
            yerr("a:\n  b: 1\n c: 2\n"))
        assert.are.equal("c.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)",
            yerr("a: [1, 2\n"))
        assert.matches("^c%.yaml:1:1: found character that cannot start any token", yerr("@a"))
    end)

    it("uses <input> without a file name", function()
        local _, err = core.yaml_parse("a: b: c")
        assert.are.equal("<input>:1:5: mapping values are not allowed in this context", err)
    end)

    it("reports unknown and self-referencing anchors", function()
        assert.are.equal("c.yaml:1:4: unknown anchor 'x' referenced", yerr("a: *x\n"))
        assert.are.equal("c.yaml:1:11: anchor 'x' value contains itself", yerr("a: &x [1, *x]\n"))
    end)

    it("refuses documents nested deeper than 64 levels", function()
        assert.is_not_nil(tree(string.rep("[", 64) .. string.rep("]", 64)))
        local err = yerr(string.rep("[", 65) .. string.rep("]", 65))
        assert.are.equal("c.yaml:1:65: document nested deeper than 64 levels", err)
    end)

    it("refuses alias expansion bombs", function()
        local lines = { "a0: &a0 [x, x, x, x, x, x, x, x, x, x]" }
        for i = 1, 7 do
            local refs = {}
            for _ = 1, 10 do refs[#refs + 1] = "*a" .. (i - 1) end
            lines[#lines + 1] = ("a%d: &a%d [%s]"):format(i, i, table.concat(refs, ", "))
        end
        local err = yerr(table.concat(lines, "\n") .. "\n")
        assert.matches("^c%.yaml:%d+:%d+: document too large: more than 1000000 nodes", err)
        -- a smaller one is fine and shares tables
        local t = tree(table.concat(lines, "\n", 1, 3) .. "\n")
        assert.are.equal(t.pairs[2].value.items[1], t.pairs[1].value)
    end)

    it("reports invalid UTF-8 with a position", function()
        assert.matches("^c%.yaml:2:4: invalid", yerr("a: 1\nb: \255\n"))
    end)

    it("rejects a non-string", function()
        assert.has_error(function() core.yaml_parse({}) end)
    end)
end)
