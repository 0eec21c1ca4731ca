-- parity.lua: the built-in rule steps re-implemented in Lua through the
-- hook API, as a worked example of every reserved hook and as a test: the
-- custom- and external-metrics integration specs run a second time with
-- this script loaded (ADAPTER_PARITY=1) and must give identical answers.
--
--  * match_series: seriesFilters and name.matches, with adapter.regex.
--  * metric_name: name.matches / name.as with Go's Regexp.Expand rules.
--  * resources_for_series: the label walk (label order, each group-resource
--    once).  Mapping one label to a group-resource needs the RESTMapper,
--    which hooks do not see, so that part asks `default` one label at a time.
--  * render_query: metricsQuery templates made only of <<.Series>>,
--    <<.LabelMatchers>> and <<.GroupBy>> are rendered here (the matchers
--    rebuilt from the parsed selectors); any other template, or a value
--    that needs more than plain quoting, goes to `default`.
--  * compute: runs its own rendered query with prom.query (`default`, the
--    whole built-in path, when render_query above would hand over), and
--    hands failures on unchanged.

local rx_cache = {}     -- per worker state: pattern -> compiled regex

local function rx(pattern)
    local r = rx_cache[pattern]
    if not r then
        r = assert(adapter.regex(pattern))
        rx_cache[pattern] = r
    end
    return r
end

-- ---------------------------------------------------------- match_series

local function match_series(rule, series, default)
    for _, f in ipairs(rule.seriesFilters) do
        local is = f.is ~= ""
        if rx(is and f.is or f.isNot):test(series.name) ~= is then return false end
    end
    if rule.name.matches ~= "" and not rx(rule.name.matches):test(series.name) then
        return false
    end
    return true
end

-- ----------------------------------------------------------- metric_name

-- Go regexp extract(): the name after "$" (or inside "${...}").
local function extract(s)
    local brace = s:sub(1, 1) == "{"
    if brace then s = s:sub(2) end
    local name = s:match("^[%w_\128-\255]+")
    if not name then return nil end
    local rest = s:sub(#name + 1)
    if brace then
        if rest:sub(1, 1) ~= "}" then return nil end
        rest = rest:sub(2)
    end
    local num = -1
    if name:match("^%d+$") and #name < 9 and not (name:sub(1, 1) == "0" and #name > 1) then
        num = tonumber(name)
    end
    return name, num, rest
end

local function expand(tpl, caps, names)
    local out = {}
    while true do
        local d = tpl:find("$", 1, true)
        if not d then break end
        out[#out + 1] = tpl:sub(1, d - 1)
        tpl = tpl:sub(d + 1)
        if tpl:sub(1, 1) == "$" then
            out[#out + 1] = "$"
            tpl = tpl:sub(2)
        else
            local name, num, rest = extract(tpl)
            if not name then
                out[#out + 1] = "$"
            else
                tpl = rest
                local v
                if num >= 0 then v = caps[num] elseif names[name] then v = caps[names[name]] end
                if v then out[#out + 1] = v end
            end
        end
    end
    out[#out + 1] = tpl
    return table.concat(out)
end

local function metric_name(rule, series_name, default)
    local r = rx(rule.name.matches ~= "" and rule.name.matches or ".*")
    local caps = r:match(series_name)
    if not caps then return nil end
    local as = rule.name.as
    if as == "" then as = r:ncaptures() == 0 and "$0" or "$1" end
    return expand(as, caps, r:names() or {})
end

-- -------------------------------------------------- resources_for_series

local function resources_for_series(rule, series, default)
    local out, seen = {}, {}
    for _, label in ipairs(series.labels) do
        local grs = default(rule, { name = series.name, labels = { label } })
        for _, gr in ipairs(grs) do
            local key = gr.resource .. "." .. (gr.group or "")
            if not seen[key] then
                seen[key] = true
                out[#out + 1] = gr
            end
        end
    end
    return out
end

-- ---------------------------------------------------------- render_query

-- Go %q of plain printable ASCII; nil when the value needs more.
local function quote(s)
    if s:find("[%z\1-\31\127-\255]") then return nil end
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

-- One selector requirement as a PromQL matcher (spec-rules.md §2.4.2).
local function matcher(r)
    local v = r.values or {}
    if r.op == "exists" then return r.key .. '!=""' end
    if r.op == "!" then return r.key .. '=""' end
    local joined = quote(table.concat(v, "|"))
    if not joined then return nil end
    if r.op == "=" or r.op == "==" or r.op == "in" then
        return r.key .. ((#v == 1 and r.op ~= "in") and "=" or "=~") .. joined
    end
    if r.op == "!=" or r.op == "notin" then
        return r.key .. ((#v == 1 and r.op ~= "notin") and "!=" or "!~") .. joined
    end
    return nil
end

local function label_matchers(request)
    local ms = {}
    local sel = request.api == "custom" and request.metric_label_selector or request.label_selector
    for _, r in ipairs(sel) do
        local m = matcher(r)
        if not m then return nil end
        ms[#ms + 1] = m
    end
    local scoped = request.api == "custom" or request.namespaced
    if scoped and request.namespace ~= "" then
        if not request.namespace_label then return nil end
        local q = quote(request.namespace)
        if not q then return nil end
        ms[#ms + 1] = request.namespace_label .. "=" .. q
    end
    if request.api == "custom" then
        local names = request.names
        local q = quote(table.concat(names, "|"))
        if not q or not request.resource_label then return nil end
        ms[#ms + 1] = request.resource_label .. (#names >= 2 and "=~" or "=") .. q
    end
    return table.concat(ms, ",")
end

local FIELDS = { Series = true, LabelMatchers = true, GroupBy = true }

-- The query for request, or nil when this file does not render it.
local function render(rule, request)
    local tpl = rule.metricsQuery
    -- only the three plain fields: anything else is the template engine's job
    for action in tpl:gmatch("<<(.-)>>") do
        if not FIELDS[action:match("^%.(%a+)$") or ""] then return nil end
    end
    local lm = label_matchers(request)
    if not lm then return nil end
    local values = {
        Series = request.series,
        LabelMatchers = lm,
        GroupBy = request.api == "custom" and request.resource_label or "",
    }
    local q = tpl:gsub("<<%.(%a+)>>", function(f) return values[f] end)
    if q == "" then return nil end
    return q
end

local function render_query(rule, request, default)
    local q = render(rule, request)
    if q then return q end
    return default(rule, request)   -- both results: (nil, message) on failure
end

-- --------------------------------------------------------------- compute

-- The built-in path: one query, the rendered one.  Custom metrics match
-- samples to objects by label, so they need a vector ("vector": any other
-- answer fails as it fails without hooks).  A failure of prom.query or of
-- `default` is returned unchanged, so the request fails exactly as it
-- would without this hook (same message and HTTP status).
local function compute(rule, request, prom, default)
    local q = render(rule, request)
    if not q then return default(rule, request) end
    return prom.query(q, request.api == "custom" and "vector" or nil)
end

return {
    match_series = match_series,
    metric_name = metric_name,
    resources_for_series = resources_for_series,
    render_query = render_query,
    compute = compute,
}
