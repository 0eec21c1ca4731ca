-- adapter.config: the prometheus-adapter config schema (spec-rules.md §1).
--
-- Provides: config.decode(tree) -> cfg, errs
--             strict yaml.v2-style decoding of the node tree into plain
--             rule tables (unknown key, duplicate key, wrong kind, YAML 1.1
--             bools, Prometheus durations), each error
--             { line=, path="rules[0].name.matches", msg=<PA's text> }
--             (msg without PA's "line N: " prefix: the line is its own field);
--           config.validate(cfg) -> errs, warns
--             the start-up checks of §1.3 that need no RESTMapper
--             (templates, filters, name regexes, `as`) plus our load
--             warnings (decisions.md 7, 23, 26, 27, 33, 34);
--           config.parse_duration(s) -> ms | nil, err.
-- Extension: each rule may carry `hooks: {match_series:, metric_name:,
--   resources_for_series:, render_query:, compute:}` (names of functions
--   exported by --lua-script files; docs/hooks.md).
-- Uses: adapter.template, adapter.naming (regex compilation via core).
-- Never: consults Kubernetes data (override normalisation happens in
-- adapter.resources once set_resources supplies the RESTMapper).

local template = require "adapter.template"

local M = {}

-- -------------------------------------------------------- YAML 1.1 scalars

local BOOL_TRUE = { y = 1, Y = 1, yes = 1, Yes = 1, YES = 1, ["true"] = 1,
    True = 1, TRUE = 1, on = 1, On = 1, ON = 1 }
local BOOL_FALSE = { n = 1, N = 1, no = 1, No = 1, NO = 1, ["false"] = 1,
    False = 1, FALSE = 1, off = 1, Off = 1, OFF = 1 }

-- yaml.v2's resolve() for a scalar node: returns the short tag.
local function resolve(node)
    if node.null then return "!!null" end
    if node.style ~= "plain" and node.style ~= nil then return "!!str" end
    local s = node.value or ""
    if s == "" or s == "~" or s == "null" or s == "Null" or s == "NULL" then
        return "!!null"
    end
    if BOOL_TRUE[s] or BOOL_FALSE[s] then return "!!bool" end
    local plain = s:gsub("_", "")
    if plain:match("^[-+]?%d+$") or plain:match("^[-+]?0[xX]%x+$")
        or plain:match("^[-+]?0[bB][01]+$") or plain:match("^[-+]?0[oO][0-7]+$") then
        return "!!int"
    end
    if s:match("^[-+]?%.%d+$") or s:match("^[-+]?%d+%.?%d*$")
        or s:match("^[-+]?%.%d+[eE][-+]?%d+$") or s:match("^[-+]?%d+%.?%d*[eE][-+]?%d+$")
        or s:match("^[-+]?%.[iI][nN][fF]$") or s:match("^%.[nN][aA][nN]$") then
        return "!!float"
    end
    if s:match("^%d%d%d%d%-%d%d?%-%d%d?") then return "!!timestamp" end
    return "!!str"
end
M.resolve = resolve

local function tag_text(node)
    if node.tag == "map" then return "!!map" end
    if node.tag == "seq" then return "!!seq" end
    local tag = resolve(node)
    local v = node.value or ""
    if #v > 10 then v = v:sub(1, 7) .. "..." end
    return tag .. " `" .. v .. "`"
end

-- ------------------------------------------------------- Prometheus durations

local UNITS = { { "y", 365 * 24 * 3600 * 1000 }, { "w", 7 * 24 * 3600 * 1000 },
    { "d", 24 * 3600 * 1000 }, { "h", 3600 * 1000 }, { "m", 60 * 1000 },
    { "s", 1000 }, { "ms", 1 } }
local UNIT_RANK = {}
for i, u in ipairs(UNITS) do UNIT_RANK[u[1]] = i end

-- prometheus/common model.ParseDuration (v0.46).  Returns milliseconds.
function M.parse_duration(s)
    if s == "" then return nil, "empty duration string" end
    if s == "0" then return 0 end
    -- The whole string must be <digits><unit> pairs, units in order, once each.
    local full = s:match("^[0-9]+[a-z]+") and s or nil
    local total, pos, last = 0, 1, 0
    if not full then return nil, string.format("not a valid duration string: %q", s) end
    while pos <= #s do
        local digits, unit = s:match("^([0-9]+)([a-z]+)", pos)
        if not digits then return nil, string.format("not a valid duration string: %q", s) end
        -- "ms" vs "m" followed by "s": the regex in prometheus tries ms first.
        local rank = UNIT_RANK[unit]
        if not rank then
            -- e.g. "1m5s": [a-z]+ grabbed only the unit since digits follow.
            return nil, string.format("unknown unit %q in duration %q", unit, s)
        end
        if rank <= last then
            return nil, string.format("not a valid duration string: %q", s)
        end
        last = rank
        local n = tonumber(digits)
        local mult = UNITS[rank][2]
        total = total + n * mult
        if n * mult > 9223372036854 or total > 9223372036854 then
            return nil, "duration out of range"
        end
        pos = pos + #digits + #unit
    end
    return total
end

-- Go time.Duration text of a millisecond count, as metav1.Duration prints
-- it (e.g. 300000 -> "5m0s").
function M.duration_text(ms)
    if ms == 0 then return "0s" end
    local out = ""
    local h = math.floor(ms / 3600000)
    local rem = ms - h * 3600000
    local m = math.floor(rem / 60000)
    rem = rem - m * 60000
    local s = rem / 1000
    local stxt
    if rem % 1000 == 0 then stxt = string.format("%ds", rem / 1000)
    else stxt = (string.format("%.3f", s):gsub("0+$", "")) .. "s" end
    if h > 0 then out = string.format("%dh%dm", h, m)
    elseif m > 0 then out = string.format("%dm", m) end
    if ms < 1000 then return string.format("%dms", ms) end
    return out .. stxt
end

-- ----------------------------------------------------------------- decoder

-- Schema: per type, field -> decoder spec.  Struct specs list the yaml
-- keys and what each holds; "string", "bool" (tri-state), "duration",
-- {seq = T}, {map = T} or a type name.
local TYPES = {
    MetricsDiscoveryConfig = {
        { "rules", { seq = "DiscoveryRule" } },
        { "externalRules", { seq = "DiscoveryRule" } },
        { "resourceRules", "ResourceRules", ptr = true },
    },
    DiscoveryRule = {
        { "seriesQuery", "string" },
        { "seriesFilters", { seq = "RegexFilter" } },
        { "resources", "ResourceMapping" },
        { "name", "NameMapping" },
        { "metricsQuery", "string" },
        -- per-rule user hooks: names of functions exported by --lua-script
        -- files (adapter.hooks; the engine checks they exist)
        { "hooks", "RuleHooks" },
    },
    RuleHooks = {
        { "match_series", "string" },
        { "metric_name", "string" },
        { "resources_for_series", "string" },
        { "render_query", "string" },
        { "compute", "string" },
    },
    RegexFilter = { { "is", "string" }, { "isNot", "string" } },
    ResourceMapping = {
        { "template", "string" },
        { "overrides", { map = "GroupResource" } },
        { "namespaced", "bool" },
    },
    GroupResource = { { "group", "string" }, { "resource", "string" } },
    NameMapping = { { "matches", "string" }, { "as", "string" } },
    ResourceRules = {
        { "cpu", "ResourceRule" },
        { "memory", "ResourceRule" },
        { "window", "duration" },
    },
    ResourceRule = {
        { "containerQuery", "string" },
        { "nodeQuery", "string" },
        { "resources", "ResourceMapping" },
        { "containerLabel", "string" },
    },
}

local function gotype(spec)
    if spec == "string" or spec == "duration" then return "string" end
    if spec == "bool" then return "bool" end
    if type(spec) == "table" and spec.seq then return "[]config." .. spec.seq end
    if type(spec) == "table" and spec.map then return "map[string]config." .. spec.map end
    return "config." .. spec
end

local function is_null(node)
    return node == nil or (node.tag == "scalar" and resolve(node) == "!!null")
end

local decode

-- Decodes node (may be nil) per spec; appends errors to errs.
local function decode_value(node, spec, path, errs)
    local function terror()
        errs[#errs + 1] = { line = node.line, path = path,
            msg = string.format("cannot unmarshal %s into %s", tag_text(node), gotype(spec)) }
    end
    if spec == "string" or spec == "duration" then
        if node == nil or is_null(node) then
            if spec == "duration" then return nil end
            return ""
        end
        if node.tag ~= "scalar" then terror(); return "" end
        return node.value
    elseif spec == "bool" then
        if node == nil or is_null(node) then return nil end
        if node.tag == "scalar" and resolve(node) == "!!bool" then
            return BOOL_TRUE[node.value] ~= nil
        end
        terror()
        return nil
    elseif type(spec) == "table" and spec.seq then
        if node == nil or is_null(node) then return {} end
        if node.tag ~= "seq" then terror(); return {} end
        local out = {}
        for i, item in ipairs(node.items) do
            local v = decode_value(item, spec.seq, string.format("%s[%d]", path, i - 1), errs)
            out[#out + 1] = v
        end
        return out
    elseif type(spec) == "table" and spec.map then
        -- Ordered list of { key=, value=, line= } so "first override wins"
        -- (decisions #21) is well defined.
        local out = {}
        if node == nil or is_null(node) then return out end
        if node.tag ~= "map" then terror(); return out end
        local seen = {}
        for _, pair in ipairs(node.pairs) do
            local k = pair.key
            local key
            if k.tag ~= "scalar" then
                errs[#errs + 1] = { line = k.line, path = path,
                    msg = string.format("cannot unmarshal %s into string", tag_text(k)) }
            else
                key = is_null(k) and "" or k.value
                local v = decode_value(pair.value, spec.map, path .. "." .. key, errs)
                if seen[key] then
                    errs[#errs + 1] = { line = pair.value.line, path = path .. "." .. key,
                        msg = string.format("key %q already set in map", key) }
                else
                    seen[key] = true
                    out[#out + 1] = { key = key, value = v, line = k.line }
                end
            end
        end
        return out
    else
        return decode(node, spec, path, errs)
    end
end

-- Decodes a struct of the named type.  Returns a table (fields at their
-- zero values when absent) with _line set to the node's line.
function decode(node, tname, path, errs, out, done)
    local fields = TYPES[tname]
    out = out or { _line = node and node.line }
    done = done or {}
    if node == nil or is_null(node) then
        -- zero value for every field
        for _, f in ipairs(fields) do
            if out[f[1]] == nil then
                out[f[1]] = decode_value(nil, f[2], path, errs)
            end
        end
        return out
    end
    if node.tag ~= "map" then
        errs[#errs + 1] = { line = node.line, path = path ~= "" and path or "(root)",
            msg = string.format("cannot unmarshal %s into config.%s", tag_text(node), tname) }
        return decode(nil, tname, path, errs, out, done)
    end
    local byname = {}
    for _, f in ipairs(fields) do byname[f[1]] = f end
    for _, pair in ipairs(node.pairs) do
        local k = pair.key
        local kpath
        if k.tag == "scalar" and k.style == "plain" and k.value == "<<" then
            -- YAML merge key: the merged mapping(s) fill this struct.
            local v = pair.value
            local list = v.tag == "seq" and v.items or { v }
            for _, m in ipairs(list) do decode(m, tname, path, errs, out, {}) end
        elseif k.tag ~= "scalar" then
            errs[#errs + 1] = { line = k.line, path = path,
                msg = string.format("cannot unmarshal %s into string", tag_text(k)) }
        else
            local key = is_null(k) and "" or k.value
            kpath = path == "" and key or (path .. "." .. key)
            local f = byname[key]
            if not f then
                errs[#errs + 1] = { line = k.line, path = kpath,
                    msg = string.format("field %s not found in type config.%s", key, tname) }
            elseif done[key] then
                errs[#errs + 1] = { line = k.line, path = kpath,
                    msg = string.format("field %s already set in type config.%s", key, tname) }
            else
                done[key] = true
                out[key] = decode_value(pair.value, f[2], kpath, errs)
                out["_line_" .. key] = pair.value.line
                if f.ptr then out["_has_" .. key] = not is_null(pair.value) end
            end
        end
    end
    for _, f in ipairs(fields) do
        if out[f[1]] == nil and not done[f[1]] then
            if type(f[2]) == "string" and TYPES[f[2]] then
                if not f.ptr then out[f[1]] = decode(nil, f[2], path, errs) end
            else
                out[f[1]] = decode_value(nil, f[2], path, errs)
            end
        end
    end
    return out
end

-- Node tree -> config.  cfg.resourceRules is nil when the key is absent or
-- null (the metrics API is then not installed, §1.4).
function M.decode(tree)
    local errs = {}
    local cfg = decode(tree, "MetricsDiscoveryConfig", "", errs)
    cfg.rules = cfg.rules or {}
    cfg.externalRules = cfg.externalRules or {}
    if not cfg._has_resourceRules then cfg.resourceRules = nil end
    local rr = cfg.resourceRules
    if rr then
        rr.window_ms = 0
        if rr.window ~= nil then
            local ms, err = M.parse_duration(rr.window)
            if not ms then
                errs[#errs + 1] = { line = rr._line_window or rr._line,
                    path = "resourceRules.window", msg = err }
            else
                rr.window_ms = ms
            end
        end
    end
    table.sort(errs, function(a, b)
        if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
        return false
    end)
    return cfg, errs
end

-- --------------------------------------------------------------- validation

-- Go's regexp Expand name rule: `$1_x` is the group named "1_x".
-- Quirk #24 and rules that can never answer (check-config, docs/
-- troubleshooting.md). Needs rule.c (compiled filters and namer).
local function never_answers(kind, p, rule, line, warns)
    local nm, res = rule.name, rule.resources
    local namer = rule.c.namer
    -- #24: `as` takes the whole match ($0) of an unanchored `matches`, so
    -- the API name is only the matched part of the series name.
    if namer and nm.matches ~= "" and not (nm.matches:sub(1, 1) == "^"
            and nm.matches:sub(-1) == "$") then
        local as = namer.as
        if as:find("$0", 1, true) or as:find("${0}", 1, true) then
            warns[#warns + 1] = { line = nm._line_matches or nm._line or line,
                path = p .. ".name.matches",
                msg = string.format("name.matches %q is not anchored and the name is the "
                    .. "whole match ($0): the API name is only the matched part of the series "
                    .. "name; anchor it (^...$) or capture the part to keep", nm.matches) }
        end
    end
    -- A custom rule that maps no label to a resource registers nothing.
    if kind == "rules" and res.template == "" and #res.overrides == 0 then
        warns[#warns + 1] = { line = res._line or line, path = p .. ".resources",
            msg = "rule maps no label to any resource (no template, no overrides): it "
                .. "can never answer" }
    end
    -- A seriesQuery for one literal metric name (`name{...}`) that the
    -- rule's own filters or name.matches reject.
    local lit = (rule.seriesQuery or ""):match("^%s*([%a_:][%w_:]*)%s*{")
    if lit then
        for j, f in ipairs(rule.c.filters or {}) do
            if f.rx:test(lit) ~= f.is then
                local what = f == (namer and namer.filter) and (p .. ".name.matches")
                    or string.format("%s.seriesFilters[%d]", p, j - 1)
                warns[#warns + 1] = { line = rule._line_seriesQuery or line,
                    path = p .. ".seriesQuery",
                    msg = string.format("every series of %q is rejected by %s (%s %q): the "
                        .. "rule can never answer", lit, what, f.is and "is" or "isNot",
                        f.text) }
                break
            end
        end
    end
end

local function suspicious_as(as)
    for ref in as:gmatch("%$(%w[%w_]*)") do
        if ref:match("^%d+[%a_]") then return ref end
    end
    return nil
end

-- The §1.3 checks that do not need the RESTMapper, on one rule list.
-- kind: "rules" or "externalRules".  Compiled pieces are stored on the
-- rule (rule.c = { query = tmpl, filters = {...}, matches = rx, as = s,
-- label_template = tmpl|nil }) for the engine to use.
local function validate_rules(kind, list, errs, warns)
    local naming = require "adapter.naming"
    local resources = require "adapter.resources"
    for i, rule in ipairs(list) do
        local p = string.format("%s[%d]", kind, i - 1)
        local line = rule._line
        local sq = rule.seriesQuery
        rule.c = {}
        -- 1. resource converter (template part)
        local res = rule.resources
        local conv, cerr, cfield = resources.compile_template(res.template)
        if not conv then
            errs[#errs + 1] = { line = res._line_template or line,
                path = p .. ".resources." .. (cfield or "template"), msg = cerr }
        else
            rule.c.label = conv
        end
        -- 3. metricsQuery
        local q, qerr = template.compile(rule.metricsQuery, "metrics-query")
        if not q then
            errs[#errs + 1] = { line = rule._line_metricsQuery or line, path = p .. ".metricsQuery",
                msg = string.format("unable to construct metrics query associated with series "
                    .. "query %q: unable to parse metrics query template %q: %s",
                    sq, rule.metricsQuery, qerr) }
        else
            rule.c.query = q
        end
        -- 4. seriesFilters
        rule.c.filters = {}
        for j, f in ipairs(rule.seriesFilters) do
            local fp = string.format("%s.seriesFilters[%d]", p, j - 1)
            local flt, ferr = naming.compile_filter(f.is, f.isNot)
            if not flt then
                errs[#errs + 1] = { line = f._line or line, path = fp,
                    msg = string.format("unable to generate series name filter associated "
                        .. "with series query %q: %s", sq, ferr) }
            else
                rule.c.filters[#rule.c.filters + 1] = flt
            end
        end
        -- 5./6. name.matches and the default for `as`
        local nm = rule.name
        local namer, nerr, which = naming.compile_name(nm.matches, nm.as)
        if not namer then
            local msg
            if which == "matches" then
                msg = string.format("unable to generate series name filter from name rules "
                    .. "associated with series query %q: %s", sq, nerr)
            else
                msg = string.format("must specify an 'as' value for name matcher %q "
                    .. "associated with series query %q", nm.matches, sq)
            end
            errs[#errs + 1] = { line = nm._line or line, path = p .. ".name." .. which, msg = msg }
        else
            rule.c.namer = namer
            if namer.filter then rule.c.filters[#rule.c.filters + 1] = namer.filter end
        end
        -- warnings (decisions.md)
        never_answers(kind, p, rule, line, warns)
        local bad = suspicious_as(nm.as or "")
        if bad then
            warns[#warns + 1] = { line = nm._line_as or line, path = p .. ".name.as",
                msg = string.format("$%s refers to a capture group named %q, which expands "
                    .. "to \"\" (Go Regexp.Expand); write ${%s}%s if the number was meant",
                    bad, bad, bad:match("^%d+"), bad:match("^%d+(.*)$")) }
        end
        if kind == "rules" and res.namespaced ~= nil then
            warns[#warns + 1] = { line = res._line_namespaced or line,
                path = p .. ".resources.namespaced",
                msg = "resources.namespaced is only used by externalRules; it is ignored here" }
        end
        if kind == "externalRules" and res.namespaced ~= false and res.template == "" then
            local has_ns = false
            for _, o in ipairs(res.overrides) do
                local r = (o.value.resource or ""):lower()
                if r == "namespace" or r == "namespaces" or r == "ns" then has_ns = true end
            end
            if not has_ns then
                warns[#warns + 1] = { line = res._line or line, path = p .. ".resources",
                    msg = "external rule is namespaced but maps no label to namespaces: every "
                        .. "request will fail; add an override such as `namespace: {resource: "
                        .. "namespace}` or set `namespaced: false`" }
            end
        end
        if kind == "rules" and q and not rule.metricsQuery:find("GroupBy", 1, true)
            and not rule.metricsQuery:find("LabelValuesByName", 1, true) then
            warns[#warns + 1] = { line = rule._line_metricsQuery or line, path = p .. ".metricsQuery",
                msg = "metricsQuery does not use <<.GroupBy>>: results cannot be matched to "
                    .. "objects unless the query keeps the resource label" }
        end
    end
end

local function validate_resource_rules(rr, errs, warns)
    local resources = require "adapter.resources"
    local any = false
    for _, which in ipairs({ "cpu", "memory" }) do
        local r = rr[which]
        local p = "resourceRules." .. which
        local wrap = string.format("unable to construct querier for %s metrics: ",
            which == "cpu" and "CPU" or "memory")
        r.c = {}
        if r.containerQuery ~= "" or r.nodeQuery ~= "" or r.containerLabel ~= "" then any = true end
        local conv, cerr = resources.compile_template(r.resources.template)
        if not conv then
            errs[#errs + 1] = { line = r.resources._line_template or r._line,
                path = p .. ".resources.template",
                msg = wrap .. "unable to construct label-resource converter: " .. cerr }
        else
            r.c.label = conv
        end
        for _, q in ipairs({ { "containerQuery", "container" }, { "nodeQuery", "node" } }) do
            local t, terr = template.compile(r[q[1]], "metrics-query")
            if not t then
                errs[#errs + 1] = { line = r["_line_" .. q[1]] or r._line, path = p .. "." .. q[1],
                    msg = string.format("%sunable to construct %s metrics query: unable to parse "
                        .. "metrics query template %q: %s", wrap, q[2], r[q[1]], terr) }
            else
                r.c[q[1]] = t
            end
            if r[q[1]] == "" then
                warns[#warns + 1] = { line = r._line, path = p .. "." .. q[1],
                    msg = q[1] .. " is empty: every " .. which .. " query will fail" }
            end
        end
        if r.containerLabel == "" then
            warns[#warns + 1] = { line = r._line, path = p .. ".containerLabel",
                msg = "containerLabel is empty: pod queries group by \"pod,\" and every "
                    .. "container is reported with an empty name" }
        end
    end
    if not any then
        warns[#warns + 1] = { line = rr._line, path = "resourceRules",
            msg = "resourceRules has no queries: metrics.k8s.io is installed but always empty" }
    end
end

function M.validate(cfg)
    local errs, warns = {}, {}
    validate_rules("rules", cfg.rules, errs, warns)
    validate_rules("externalRules", cfg.externalRules, errs, warns)
    if cfg.resourceRules then validate_resource_rules(cfg.resourceRules, errs, warns) end
    return errs, warns
end

return M
