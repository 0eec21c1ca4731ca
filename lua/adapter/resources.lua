-- adapter.resources: RESTMapper semantics and the label <-> group-resource
-- converter of each rule (spec-rules.md §3).
--
-- Provides: resources.new_mapper(list) -> mapper
--             mapper:normalize(group, resource) -> gr | nil, err
--             mapper:singularize(resource) -> singular | nil, err
--             mapper:info(gr) -> { kind=, version=, namespaced= } | nil
--             mapper.groups: known groups in discovery order ("" first)
--           resources.compile_template(tpl) -> conv | nil, err
--             (load time: parse + reverse regex, no RESTMapper needed)
--           resources.new_converter(conv, overrides, mapper) -> cv | nil, err
--             cv:label_for(gr) -> label | nil, err
--             cv:resources_for_series(labels) -> { gr, ... }
--           resources.gr_string(gr) -> "pods" | "deployments.apps"
-- A gr is { group = "apps", resource = "deployments" } (normalised).
-- Fixes over PA (decisions.md): first override wins for GR -> label (#21);
-- literal template text is regex-escaped in the reverse direction (#18);
-- dotted and core groups round-trip by trying each known group (#19).
-- Uses: adapter.template, adapter.core.regex.
-- Never: talks to Kubernetes; the list comes from the C side.

local template = require "adapter.template"

local M = {}

local function gr_string(gr)
    if gr.group == "" then return gr.resource end
    return gr.resource .. "." .. gr.group
end
M.gr_string = gr_string

-- ------------------------------------------------------------- RESTMapper

local Mapper = {}
Mapper.__index = Mapper

-- list: discovery order, see architecture.md.  Builds the priority
-- patterns of restmapper.NewDiscoveryRESTMapper: each group's preferred
-- version, then its other versions; then each group with any version.
function M.new_mapper(list)
    local m = setmetatable({ list = {}, groups = {}, patterns = {} }, Mapper)
    local versions, preferred, seen = {}, {}, {}
    for _, r in ipairs(list or {}) do
        if not r.resource:find("/", 1, true) then
            m.list[#m.list + 1] = r
            local g = r.group or ""
            if not seen[g] then
                seen[g] = true
                m.groups[#m.groups + 1] = g
                versions[g] = {}
            end
            local vs = versions[g]
            if not vs[r.version] then
                vs[r.version] = true
                vs[#vs + 1] = r.version
            end
            if r.preferred then preferred[g] = r.version end
        end
    end
    for _, g in ipairs(m.groups) do
        local p = preferred[g]
        if p then m.patterns[#m.patterns + 1] = { group = g, version = p } end
        for _, v in ipairs(versions[g]) do
            if v ~= p then m.patterns[#m.patterns + 1] = { group = g, version = v } end
        end
    end
    for _, g in ipairs(m.groups) do m.patterns[#m.patterns + 1] = { group = g } end
    return m
end

local function gvr_text(group, resource)
    return string.format("%s/, Resource=%s", group, resource)
end

-- Candidates (list entries) for a partial GR, then the priority choice.
function Mapper:resource_for(group, resource)
    group = group or ""
    local res = (resource or ""):lower()
    if res == "" then
        return nil, "a resource must be present, got: " .. gvr_text(group, "")
    end
    local cands = {}
    for _, r in ipairs(self.list) do
        if (r.resource == res or (r.singular or "") == res)
            and (group == "" or r.group == group
                or r.group:sub(1, #group) == group) then
            cands[#cands + 1] = r
        end
    end
    -- Exact group matches hide prefix matches of the same group only;
    -- other groups can still contribute prefix matches (per-GV mappers).
    if #cands == 0 then return nil, "no matches for " .. gvr_text(group, res) end
    if #cands == 1 then return cands[1] end
    local remaining = cands
    for _, pat in ipairs(self.patterns) do
        local hit = {}
        for _, r in ipairs(remaining) do
            if r.group == pat.group and (pat.version == nil or r.version == pat.version) then
                hit[#hit + 1] = r
            end
        end
        if #hit == 1 then return hit[1] end
        if #hit > 1 then remaining = hit end
    end
    -- Several versions of one group-resource are not ambiguous for a GR.
    local first = remaining[1]
    for _, r in ipairs(remaining) do
        if r.group ~= first.group or r.resource ~= first.resource then
            local names = {}
            for _, c in ipairs(cands) do
                names[#names + 1] = c.group .. "/" .. c.version .. ", Resource=" .. c.resource
            end
            return nil, string.format("%s matches multiple resources [%s]",
                gvr_text(group, res), table.concat(names, " "))
        end
    end
    return first
end

function Mapper:normalize(group, resource)
    local r, err = self:resource_for(group, resource)
    if not r then return nil, err end
    return { group = r.group, resource = r.resource }
end

function Mapper:singularize(resource)
    local res = resource:lower()
    for _, r in ipairs(self.list) do
        if r.resource == res or r.singular == res then
            local s = (r.singular and r.singular ~= "") and r.singular or (r.kind or ""):lower()
            if s ~= "" then return s end
        end
    end
    for _, r in ipairs(self.list) do
        if r.resource == res or r.singular == res then
            return nil, "no singular of resource " .. resource .. " has been defined"
        end
    end
    return nil, "no matches for " .. gvr_text("", res)
end

-- KindFor / scope of a normalised GR (its preferred version).
function Mapper:info(gr)
    local r = self:resource_for(gr.group, gr.resource)
    if not r or r.group ~= gr.group then return nil end
    return { kind = r.kind, version = r.version, namespaced = r.namespaced }
end

-- -------------------------------------------------- template, load time

local G_MARK, R_MARK = "\1G\1", "\1R\1"

-- regexp.QuoteMeta
local function quote_meta(s)
    return (s:gsub("[%\\%.%+%*%?%(%)%|%[%]%{%}%^%$]", "\\%0"))
end

local function args(group, resource)
    return template.struct("schema.GroupResource", { "Group", "Resource" },
        { Group = group, Resource = resource })
end

-- Builds "^...$" from a rendering with markers: literal text quoted,
-- markers replaced by the given patterns.
local function reverse_pattern(out, gpat, rpat)
    local parts = {}
    local i = 1
    while i <= #out do
        local g = out:find(G_MARK, i, true)
        local r = out:find(R_MARK, i, true)
        local nxt = (g and r) and math.min(g, r) or g or r
        if not nxt then
            parts[#parts + 1] = quote_meta(out:sub(i))
            break
        end
        parts[#parts + 1] = quote_meta(out:sub(i, nxt - 1))
        parts[#parts + 1] = (nxt == g) and gpat or rpat
        i = nxt + #G_MARK
    end
    return "^" .. table.concat(parts) .. "$"
end

-- Returns conv = { tmpl=, tpl=, rx=, uses_group= } (tmpl nil when the
-- template is empty) or nil, PA's message.
function M.compile_template(tpl)
    tpl = tpl or ""
    if tpl == "" then return { tpl = "" } end
    local t, err = template.compile(tpl, "resource-label")
    if not t then
        return nil, string.format("unable to parse label template %q: %s", tpl, err)
    end
    local prefix = string.format("unable to generate label format from template %q: "
        .. "unable to convert label template to matcher: ", tpl)
    local out, xerr = t:execute(args(G_MARK, R_MARK))
    if not out then return nil, prefix .. xerr end
    if out == "" then return nil, prefix .. "empty template" end
    if not out:find(R_MARK, 1, true) then
        return nil, prefix .. "must include at least `{{.Resource}}` in the label template"
    end
    local pat = reverse_pattern(out, "(?P<group>.+?)", "(?P<resource>.+?)")
    local rx, rerr = require("adapter.core").regex(pat)
    if not rx then return nil, prefix .. tostring(rerr) end
    return { tmpl = t, tpl = tpl, rx = rx, rendered = out,
        uses_group = out:find(G_MARK, 1, true) ~= nil }
end

-- ------------------------------------------------------------ converter

local Conv = {}
Conv.__index = Conv

local function sanitize(group)
    return (group:gsub("[%.%-]", "_"))
end

-- overrides: ordered { {key=label, value={group=, resource=}, line=}, ... }
-- Returns cv, warnings (list of strings) or nil, PA's error message.
function M.new_converter(conv, overrides, mapper)
    local cv = setmetatable({ conv = conv, mapper = mapper, label_to_gr = {},
        gr_to_label = {}, cache_gr = {} }, Conv)
    local warns = {}
    for _, o in ipairs(overrides or {}) do
        local g, r = o.value.group or "", o.value.resource or ""
        local gr, err = mapper:normalize(g, r)
        if not gr then
            return nil, string.format("unable to normalize group-resource {%s %s}: %s", g, r, err)
        end
        cv.label_to_gr[o.key] = gr
        local key = gr_string(gr)
        local prev = cv.gr_to_label[key]
        if prev then
            warns[#warns + 1] = string.format("overrides %q and %q both map to %s; "
                .. "queries use %q (first in file order)", prev, o.key, key, prev)
        else
            cv.gr_to_label[key] = o.key
        end
    end
    -- Reverse regexes for known groups (#19): only when .Group is used.
    if conv.uses_group then
        cv.group_rx = {}
        local core = require "adapter.core"
        for _, g in ipairs(mapper.groups) do
            local pat = reverse_pattern(conv.rendered, quote_meta(sanitize(g)),
                "(?P<resource>.+?)")
            local rx = core.regex(pat)
            if rx then cv.group_rx[#cv.group_rx + 1] = { group = g, rx = rx } end
        end
    end
    return cv, warns
end

function Conv:label_for(gr)
    local key = gr_string(gr)
    local l = self.gr_to_label[key]
    if l then return l end
    if not self.conv.tmpl then
        return nil, string.format("unable to convert resource %s into label: no generic "
            .. "resource label form specified for this metric", key)
    end
    local singular, err = self.mapper:singularize(gr.resource)
    if not singular then
        return nil, string.format("unable to singularize resource %s: %s", key, err)
    end
    local out, xerr = self.conv.tmpl:execute(args(sanitize(gr.group), singular))
    if not out then return nil, xerr end
    if out == "" then return nil, "empty label produced by label template" end
    self.gr_to_label[key] = out
    self.label_to_gr[out] = self.label_to_gr[out] or gr
    return out
end

local function capture(rx, label)
    local caps = rx:match(label)
    if not caps then return nil end
    local names = rx:names()
    local function get(n)
        local idx = names[n]
        if not idx then return "" end
        return caps[idx] or ""
    end
    return get("group"), get("resource")
end

-- Label -> GR through the template (PA's regex first, then known groups).
function Conv:gr_for_label(label)
    local gr = self.label_to_gr[label]
    if gr then return gr end
    if self.cache_gr[label] ~= nil then return self.cache_gr[label] or nil end
    if not self.conv.rx then return nil end
    local found
    local g, r = capture(self.conv.rx, label)
    if r then found = self.mapper:normalize(g, r) end
    if not found and self.group_rx then
        for _, e in ipairs(self.group_rx) do
            local _, r2 = capture(e.rx, label)
            if r2 then
                local cand = self.mapper:normalize(e.group, r2)
                if cand and cand.group == e.group then found = cand; break end
            end
        end
    end
    self.cache_gr[label] = found or false
    if found then
        -- cache both ways as PA does (§3.4), unless an override owns it
        local key = gr_string(found)
        if not self.gr_to_label[key] then self.gr_to_label[key] = label end
    end
    return found
end

-- Default resources_for_series step: GRs of the series' labels, in label
-- order, each once.
function Conv:resources_for_series(labels)
    local out, seen = {}, {}
    for _, label in ipairs(labels) do
        local gr = self:gr_for_label(label)
        if gr then
            local key = gr_string(gr)
            if not seen[key] then
                seen[key] = true
                out[#out + 1] = gr
            end
        end
    end
    return out
end

return M
