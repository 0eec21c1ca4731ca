-- seriesFilters and the implicit name.matches filter (spec-rules.md §4.1).
local naming = require "adapter.naming"

local function rule(filters, matches)
    local c = { filters = {} }
    for _, f in ipairs(filters) do
        c.filters[#c.filters + 1] = assert(naming.compile_filter(f.is, f.isNot))
    end
    local n = assert(naming.compile_name(matches, ""))
    if n.filter then c.filters[#c.filters + 1] = n.filter end
    c.namer = n
    return { c = c }
end

describe("series filters", function()
    it("is / isNot are unanchored searches on the name", function()
        local r = rule({ { isNot = ".*_seconds_total" } }, "^(.*)_total$")
        assert.is_true(naming.match_series(r, { name = "http_requests_total" }))
        assert.is_false(naming.match_series(r, { name = "cpu_seconds_total" }))
        assert.is_false(naming.match_series(r, { name = "up" }))
        -- the config-gen gap: rule 5 drops x_seconds_total_foo_total
        assert.is_false(naming.match_series(r, { name = "x_seconds_total_foo_total" }))
        local r2 = rule({ { is = "requests" } }, "")
        assert.is_true(naming.match_series(r2, { name = "http_requests_total" }))
        assert.is_false(naming.match_series(r2, { name = "up" }))
    end)

    it("derives the default as from the capture count", function()
        assert.are.equal("$0", naming.compile_name("_total$", "").as)
        assert.are.equal("$1", naming.compile_name("^(.*)_(?:x)$", "").as)
        local n, _, which = naming.compile_name("(a)(b)", "")
        assert.is_nil(n)
        assert.are.equal("as", which)
    end)
end)
