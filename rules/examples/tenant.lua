-- tenant.lua: render queries differently per namespace.  Tenants that
-- share one Prometheus are told apart by a label (team-a's series carry
-- tenant="a"); a tenant with a recording rule is served from it (cheaper
-- than a raw rate over many series).  Other namespaces get the rule's own
-- query.
--
-- Use it on a rule with  hooks: {render_query: per_tenant}
-- and --lua-script=rules/examples/tenant.lua.

local TENANTS = {
    ["team-a"] = { label = "tenant", value = "a" },
    ["team-b"] = { recording = "team_b:http_requests:rate2m" },
}

-- Plain (non-pattern) replacement of the first occurrence of `old`.
local function replace(s, old, new)
    local i, j = s:find(old, 1, true)
    if not i then return s end
    return s:sub(1, i - 1) .. new .. s:sub(j + 1)
end

local function per_tenant(rule, request, default)
    local t = TENANTS[request.namespace]
    if t and t.recording then
        -- same matchers and grouping as the rule's query, on the recording
        return string.format("sum(%s{%s}) by (%s)", t.recording,
            request.label_matchers, request.group_by)
    end
    local q, err = default(rule, request)
    if not q or not t then return q, err end
    return replace(q, request.series .. "{",
        string.format('%s{%s="%s",', request.series, t.label, t.value))
end

return { per_tenant = per_tenant }
