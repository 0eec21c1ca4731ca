-- adapter.matchers: label selectors -> PromQL matchers and the template
-- data of the query templates (spec-rules.md §2.2, §2.4).
--
-- Provides: matchers.parse(raw) -> reqs | nil, err      (sorted, deduped)
--           matchers.convert(reqs) -> { matchers=, values= } | nil, err
--           matchers.selector_json(reqs) -> json text | nil
--           matchers.custom_args(rule, req, cv) -> data | nil, err, status
--           matchers.external_args(rule, req, cv) -> data | nil, err, status
--           matchers.render_query(rule, data) -> query | nil, err (default
--           render_query step)
--           matchers.resource_args(cv, node, namespace, names, container_label)
--             -> data | nil, err, status        (metrics.k8s.io, §7.2)
--           matchers.resource_labels(cv, container_label) -> labels
--             ({ pod=, namespace=, node=, container= }; nil when unmapped)
-- Uses: adapter.core (selector_parse, goquote), adapter.template.
-- Never: regex-escapes values (PA does not, decisions #16 keeps that).

local template = require "adapter.template"

local M = {}

local function core() return require "adapter.core" end

local function q(s) return core().goquote(s) end

-- Parse a raw selector ("" means everything).  Requirements sorted by key
-- (stable), values de-duplicated and sorted as bytes.
function M.parse(raw)
    if raw == nil or raw == "" then return {} end
    local reqs, err = core().selector_parse(raw)
    if not reqs then return nil, err end
    for i, r in ipairs(reqs) do
        r._i = i
        local seen, vals = {}, {}
        for _, v in ipairs(r.values or {}) do
            if not seen[v] then seen[v] = true; vals[#vals + 1] = v end
        end
        table.sort(vals)
        r.values = vals
    end
    table.sort(reqs, function(a, b)
        if a.key ~= b.key then return a.key < b.key end
        return a._i < b._i
    end)
    return reqs
end

local function valid_label(name)
    return name:match("^[%a_][%w_]*$") ~= nil
end

-- §2.4.2.  Errors here are client errors (400, decisions #12/#13/#17).
function M.convert(reqs)
    local ms, vals = {}, {}
    for _, r in ipairs(reqs) do
        local k, op, v = r.key, r.op, r.values
        if k == "" then return nil, "label not specified" end
        if op == ">" or op == "<" or op == "gt" or op == "lt" then
            return nil, string.format("operator %q on label %q not supported by prometheus", op, k)
        end
        if not valid_label(k) then
            return nil, string.format("label selector key %q is not a valid Prometheus "
                .. "label name", k)
        end
        local m
        if op == "exists" then
            if #v > 0 then return nil, "operator does not support values" end
            m = k .. "!=" .. q("")
        elseif op == "!" then
            if #v > 0 then return nil, "operator does not support values" end
            m = k .. "=" .. q("")
        elseif op == "=" or op == "==" or op == "in" then
            if #v == 0 then return nil, "operator requires values" end
            if #v == 1 and op ~= "in" then m = k .. "=" .. q(v[1])
            else m = k .. "=~" .. q(table.concat(v, "|")) end
        elseif op == "!=" or op == "notin" then
            if #v == 0 then return nil, "operator requires values" end
            if #v == 1 and op ~= "notin" then m = k .. "!=" .. q(v[1])
            else m = k .. "!~" .. q(table.concat(v, "|")) end
        else
            return nil, "operator not supported by query builder"
        end
        ms[#ms + 1] = m
        vals[#vals + 1] = { k, table.concat(v, "|") }
    end
    return { matchers = ms, values = vals }
end

-- ------------------------------------------------------------ JSON echo

local function jstr(s)
    return '"' .. s:gsub('[%c"\\<>&\226]', function(c)
        if c == '"' then return '\\"' end
        if c == "\\" then return "\\\\" end
        if c == "\n" then return "\\n" end
        if c == "\r" then return "\\r" end
        if c == "\t" then return "\\t" end
        if c == "\226" then return c end
        return string.format("\\u%04x", c:byte())
    end):gsub("\226\128\168", "\\u2028"):gsub("\226\128\169", "\\u2029") .. '"'
end

-- LabelSelector echo (spec-server §2.5.4): matchLabels (sorted keys), then
-- matchExpressions in key order; "!=" as NotIn; ">"/"<" omitted.
function M.selector_json(reqs)
    local labels, exprs = {}, {}
    local lkeys = {}
    for _, r in ipairs(reqs) do
        local op = r.op
        if op == "=" or op == "==" then
            if labels[r.key] == nil then lkeys[#lkeys + 1] = r.key end
            labels[r.key] = r.values[1] or ""
        elseif op == "in" or op == "notin" or op == "!=" or op == "exists" or op == "!" then
            local name = ({ ["in"] = "In", notin = "NotIn", ["!="] = "NotIn",
                exists = "Exists", ["!"] = "DoesNotExist" })[op]
            local e = '{"key":' .. jstr(r.key) .. ',"operator":"' .. name .. '"'
            if #r.values > 0 then
                local vs = {}
                for i, v in ipairs(r.values) do vs[i] = jstr(v) end
                e = e .. ',"values":[' .. table.concat(vs, ",") .. "]"
            end
            exprs[#exprs + 1] = e .. "}"
        end
    end
    table.sort(lkeys)
    local parts = {}
    if #lkeys > 0 then
        local kv = {}
        for i, k in ipairs(lkeys) do kv[i] = jstr(k) .. ":" .. jstr(labels[k]) end
        parts[#parts + 1] = '"matchLabels":{' .. table.concat(kv, ",") .. "}"
    end
    if #exprs > 0 then
        parts[#parts + 1] = '"matchExpressions":[' .. table.concat(exprs, ",") .. "]"
    end
    if #parts == 0 then return nil end
    return "{" .. table.concat(parts, ",") .. "}"
end

-- ----------------------------------------------------- template data

local FIELDS = { "Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice" }

local function args(series, conv, group_by)
    local values = template.map({})
    for _, kv in ipairs(conv.values) do values[kv[1]] = kv[2] end
    return template.struct("naming.queryTemplateArgs", FIELDS, {
        Series = series,
        LabelMatchers = table.concat(conv.matchers, ","),
        LabelValuesByName = values,
        GroupBy = table.concat(group_by, ","),
        GroupBySlice = template.list(group_by),
    })
end
M.args = args

-- §2.4.3.  req: { series=, resource=, group=, namespace=, names={...},
-- metric_selector= }; cv: the rule's converter.  extra_group_by is for
-- resource metrics (container label).
function M.custom_args(req, cv, extra_group_by)
    local reqs, perr = M.parse(req.metric_selector)
    if not reqs then return nil, "invalid metricLabelSelector: " .. perr, 400 end
    local conv, cerr = M.convert(reqs)
    if not conv then return nil, "invalid metricLabelSelector: " .. cerr, 400 end
    if req.namespace and req.namespace ~= "" then
        local nsl, err = cv:label_for({ group = "", resource = "namespaces" })
        if not nsl then return nil, err, 500 end
        conv.matchers[#conv.matchers + 1] = nsl .. "=" .. q(req.namespace)
        conv.values[#conv.values + 1] = { nsl, req.namespace }
    end
    local gr = { group = req.group or "", resource = req.resource }
    local rl, err = cv:label_for(gr)
    if not rl then return nil, err, 500 end
    local names = req.names or {}
    local joined = table.concat(names, "|")
    if #names == 1 then
        conv.matchers[#conv.matchers + 1] = rl .. "=" .. q(names[1])
    elseif #names >= 2 then
        conv.matchers[#conv.matchers + 1] = rl .. "=~" .. q(joined)
    else
        conv.matchers[#conv.matchers + 1] = rl .. "=" .. q("")
    end
    conv.values[#conv.values + 1] = { rl, joined }
    local group_by = { rl }
    for _, g in ipairs(extra_group_by or {}) do group_by[#group_by + 1] = g end
    return args(req.series, conv, group_by), reqs
end

-- §2.4.4.  namespaced: the rule's resources.namespaced (nil = true).
function M.external_args(req, cv, namespaced)
    local reqs, perr = M.parse(req.selector)
    if not reqs then return nil, "invalid labelSelector: " .. perr, 400 end
    local conv, cerr = M.convert(reqs)
    if not conv then return nil, "invalid labelSelector: " .. cerr, 400 end
    if namespaced ~= false and req.namespace and req.namespace ~= "" then
        local nsl, err = cv:label_for({ group = "", resource = "namespaces" })
        if not nsl then
            return nil, err .. " (this external rule is namespaced: map a label to "
                .. "namespaces with `resources.overrides` or `resources.template`, or set "
                .. "`resources.namespaced: false`)", 500
        end
        conv.matchers[#conv.matchers + 1] = nsl .. "=" .. q(req.namespace)
        conv.values[#conv.values + 1] = { nsl, req.namespace }
    end
    return args(req.series, conv, {})
end

-- §7.2.  Template data of a resource-metrics query: a containerQuery over
-- the pods `names` of `namespace` (matchers <ns>="<ns>",<pod>=~"a|b",
-- group-by <pod>,<containerLabel>: with an empty containerLabel that is
-- "pod," as in PA), or a nodeQuery (node = true: <node>=~"n1|n2", group-by
-- <node>, no namespace matcher).  .Series is "".  Errors (a resource with
-- no label) are 500s: the caller skips that batch.
function M.resource_args(cv, node, namespace, names, container_label)
    local req = { series = "", group = "", names = names, metric_selector = "",
        resource = node and "nodes" or "pods", namespace = node and "" or namespace }
    local data, err, status = M.custom_args(req, cv, node and {} or { container_label or "" })
    if not data then
        return nil, string.format("unable to find label for resource %s: %s", req.resource,
            tostring(err)), status
    end
    return data
end

-- Labels the C side needs to read resource-metrics results: which label
-- names the pod, the namespace and the node, and the container label.
-- Unmapped resources are left nil (their queries fail on render).
function M.resource_labels(cv, container_label)
    local out = { container = container_label or "" }
    for k, res in pairs({ pod = "pods", namespace = "namespaces", node = "nodes" }) do
        local l = cv and cv:label_for({ group = "", resource = res })
        if l then out[k] = l end
    end
    return out
end

-- Default render_query step: run the compiled metricsQuery.
function M.render_query(rule, data)
    local out, err = rule.c.query:execute(data)
    if not out then return nil, err end
    if out == "" then return nil, "empty query produced by metrics query template" end
    return out
end

return M
