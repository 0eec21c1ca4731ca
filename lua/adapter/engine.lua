-- adapter.engine: the only module C calls (architecture.md, "Lua engine
-- contract").  One engine per lua_State, i.e. per thread.
--
-- Provides: engine.new(tree, opts) -> eng | nil, errs, warns
--           eng:has(kind), eng:series_queries(kind), eng:rule_queries(kind),
--           eng:set_resources(list),
--           eng:discover(kind, results) -> entries, problems,
--           eng:render_custom(req) -> query, selector_json | nil, msg, status
--           eng:render_external(req) -> query | nil, msg, status
--           eng:render_resource(req) -> query | nil, msg, status
--           eng:resource_labels(which) -> { pod=, namespace=, node=,
--               container=, window_ms= } | nil, msg
-- Rule indices (rule=i) are 1-based; messages name rules 0-based, as
-- paths in the YAML ("rules[2]").
-- Steps: each pipeline step is one function chosen ONCE in new():
--   match_series(rule, series), metric_name(rule, series_name),
--   resources_for_series(rule, series), render_query(rule, data).
-- User hooks (--lua-script, adapter.hooks) replace them per rule: a rule
-- with hooks carries rule.steps (its own step table, built once in new());
-- the engine calls (rule.steps or self.steps).<name>.
-- Hooks entry points (docs/hooks.md):
--           engine.new(tree, { file=, scripts = { {path=, text=}, ... },
--               hook_timeout_ms = 1000, io = { query = fn } })
--             (script errors come back as { file=, line=, msg= })
--           eng:has_compute(kind, i) -> bool
--           eng:compute_custom(req) -> samples, selector_json
--                                        | nil, msg, status, untyped
--           eng:compute_external(req) -> samples | nil, msg, status, untyped
--             samples = { { labels = {k=v} | nil, value = n, timestamp = s|nil } }
--             (labels nil: served as a scalar is, metricLabels null);
--             status 504: answer with the Timeout Status; untyped: a 500
--             Status without a reason
--           eng:hook_failures() -> { ["hook <step> (<script>: <fn>)"] = n }
-- Uses: adapter.config, adapter.naming, adapter.resources, adapter.matchers,
--       adapter.hooks.
-- Never: raises to C for a bad config or request; errors are returned.

local config = require "adapter.config"
local naming = require "adapter.naming"
local resources = require "adapter.resources"
local matchers = require "adapter.matchers"
local hooks = require "adapter.hooks"

local M = {}
local Engine = {}
Engine.__index = Engine

-- Built-in defaults of the replaceable steps.
local DEFAULT_STEPS = {
    match_series = naming.match_series,
    metric_name = naming.metric_name,
    resources_for_series = function(rule, series)
        return rule.cv:resources_for_series(series.labels or {})
    end,
    render_query = matchers.render_query,
}
M.DEFAULT_STEPS = DEFAULT_STEPS

local KIND_LIST = { custom = "rules", external = "externalRules" }

-- -------------------------------------------------------------- hooks

local function log(level, msg)
    local ok, core = pcall(require, "adapter.core")
    if ok and core.log then core.log(level, msg) end
end

-- Template data of a hook's request view (what `default` of render_query
-- and compute work from), as render_custom/render_external build it.
local function render_data(rule, rq)
    if rq.api == "external" then
        return matchers.external_args({ series = rq.series, namespace = rq.namespace,
            selector = rq.label_selector_text or "" }, rule.cv, rule.resources.namespaced)
    end
    return matchers.custom_args({ series = rq.series, resource = rq.resource,
        group = rq.group, namespace = rq.namespace, names = rq.names,
        metric_selector = rq.metric_label_selector_text or "" }, rule.cv)
end

local BUILTIN = {
    match_series = DEFAULT_STEPS.match_series,
    metric_name = DEFAULT_STEPS.metric_name,
    resources_for_series = DEFAULT_STEPS.resources_for_series,
    render_query = function(rule, data) return DEFAULT_STEPS.render_query(rule, data) end,
    render_data = render_data,
}

-- Loads the scripts, checks every rule's `hooks:` names and gives rules
-- with a hook their own step table.  Appends to errs.
local function setup_hooks(self, opts, errs)
    local set
    if opts.scripts and #opts.scripts > 0 then
        local lerrs
        set, lerrs = hooks.load(opts.scripts, { timeout_ms = opts.hook_timeout_ms, log = log,
            on_failure = opts.io and opts.io.hook_failure })
        for _, e in ipairs(lerrs or {}) do errs[#errs + 1] = e end
        if not set then return end
    end
    self.hooks = set
    for _, kind in ipairs({ "rules", "externalRules" }) do
        for i, rule in ipairs(self.cfg[kind]) do
            local p = string.format("%s[%d].hooks", kind, i - 1)
            for _, step in ipairs(hooks.RESERVED) do
                local name = rule.hooks and rule.hooks[step]
                if name and name ~= "" then
                    local line = rule.hooks["_line_" .. step] or rule._line
                    if hooks.IS_RESERVED[name] then
                        errs[#errs + 1] = { line = line, path = p .. "." .. step,
                            msg = string.format("%q is a reserved hook name (it already "
                                .. "applies to every rule); export the function under "
                                .. "another name", name) }
                    elseif not (set and set:lookup(name)) then
                        errs[#errs + 1] = { line = line, path = p .. "." .. step,
                            msg = string.format("no --lua-script exports a function named "
                                .. "%q", name) }
                    end
                end
            end
            if set then
                local ckind = kind == "rules" and "custom" or "external"
                local view = hooks.rule_view(rule, ckind, i)
                local st = set:steps_for(rule, view, BUILTIN,
                    string.format("%s[%d]", kind, i - 1))
                if next(st) then
                    rule.view = view
                    rule.steps = setmetatable(st, { __index = self.steps })
                end
            end
        end
    end
end

function M.new(tree, opts)
    opts = opts or {}
    local cfg, errs = config.decode(tree)
    local warns = {}
    if #errs == 0 then
        local verrs
        verrs, warns = config.validate(cfg)
        errs = verrs
    end
    local self = setmetatable({ cfg = cfg, file = opts.file, steps = {}, io = opts.io },
        Engine)
    for name, fn in pairs(DEFAULT_STEPS) do
        assert(type(fn) == "function", name)
        self.steps[name] = fn
    end
    if #errs == 0 then setup_hooks(self, opts, errs) end
    if #errs > 0 then return nil, errs, warns end
    -- A mapper with no resources until set_resources: templates still
    -- work for label_for of known GRs only after it arrives.
    self:set_resources({})
    return self, {}, warns
end

function Engine:has(kind)
    if kind == "resource" then return self.cfg.resourceRules ~= nil end
    local list = self.cfg[KIND_LIST[kind] or ""]
    return list ~= nil and #list > 0
end

-- Number of rules of a kind ("custom" | "external"), for per-rule metrics.
function Engine:rule_count(kind)
    return #(self.cfg[KIND_LIST[kind] or ""] or {})
end

-- Each rule's seriesQuery in rule order, duplicates kept (per-rule relist
-- metrics map the distinct queries' timings back to rules with it).
function Engine:rule_queries(kind)
    local out = {}
    for i, r in ipairs(self.cfg[KIND_LIST[kind]] or {}) do out[i] = r.seriesQuery end
    return out
end

function Engine:series_queries(kind)
    local out, seen = {}, {}
    for _, r in ipairs(self.cfg[KIND_LIST[kind]] or {}) do
        if not seen[r.seriesQuery] then
            seen[r.seriesQuery] = true
            out[#out + 1] = r.seriesQuery
        end
    end
    return out
end

-- Rebuilds the RESTMapper and every rule's converter.  Returns true, or
-- nil and the first override that does not normalise (fatal at start-up,
-- as in PA), with its path.  Conflicting overrides are logged (#21).
function Engine:set_resources(list)
    local mapper = resources.new_mapper(list)
    local built = {}
    local function build(kind, i, rule, res, path)
        local cv, w = resources.new_converter(rule.c.label, res.overrides, mapper)
        if not cv then
            return nil, string.format("%s.resources.overrides: %s", path, w)
        end
        for _, msg in ipairs(w) do
            self:log("warning", string.format("%s.resources.overrides: %s", path, msg))
        end
        built[#built + 1] = { rule, cv }
        return true
    end
    local first_err
    for _, kind in ipairs({ "rules", "externalRules" }) do
        for i, rule in ipairs(self.cfg[kind]) do
            local ok, err = build(kind, i, rule, rule.resources, string.format("%s[%d]", kind, i - 1))
            if not ok and #list > 0 then first_err = first_err or err end
        end
    end
    local rr = self.cfg.resourceRules
    if rr then
        for _, which in ipairs({ "cpu", "memory" }) do
            local r = rr[which]
            local ok, err = build("resourceRules", 0, r, r.resources, "resourceRules." .. which)
            if not ok and #list > 0 then first_err = first_err or err end
        end
    end
    if first_err then return nil, first_err end
    self.mapper = mapper
    for _, b in ipairs(built) do b[1].cv = b[2] end
    return true
end

function Engine:log(level, msg)
    local ok, core = pcall(require, "adapter.core")
    if ok and core.log then core.log(level, msg) end
end

local function key_less(a, b)
    if a.resource ~= b.resource then return a.resource < b.resource end
    if a.group ~= b.group then return a.group < b.group end
    if a.namespaced ~= b.namespaced then return not a.namespaced end
    return a.metric < b.metric
end

-- results[seriesQuery] = { shapes = {...} } | { error = "..." }
function Engine:discover(kind, results)
    local list = self.cfg[KIND_LIST[kind]] or {}
    local prefix = KIND_LIST[kind] or kind
    local problems = {}
    local reg, owner = {}, {}
    for i, rule in ipairs(list) do
        local steps = rule.steps or self.steps
        local rname = string.format("%s[%d]", prefix, i - 1)
        local res = results[rule.seriesQuery]
        if not rule.cv then
            problems[#problems + 1] = { rule = i, level = "error",
                msg = rname .. ": resources not discovered yet" }
        elseif res == nil or res.error then
            problems[#problems + 1] = { rule = i, level = "error",
                msg = string.format("%s: unable to fetch metrics for query %q: %s", rname,
                    rule.seriesQuery, res and res.error or "no result") }
        else
            local empty_warned = false
            for _, shape in ipairs(res.shapes or {}) do
                local ok, keep = pcall(steps.match_series, rule, shape)
                if not ok then
                    problems[#problems + 1] = { rule = i, level = "error",
                        msg = rname .. ": match_series: " .. tostring(keep) }
                    break
                end
                if keep then
                    local name, nerr = steps.metric_name(rule, shape.name)
                    if not name then
                        self:log(9, rname .. ": " .. tostring(nerr))
                    elseif name == "" then
                        if not empty_warned then
                            empty_warned = true
                            problems[#problems + 1] = { rule = i, level = "warning",
                                msg = string.format("%s: series %q gives an empty metric name; "
                                    .. "skipped", rname, shape.name) }
                        end
                    elseif kind == "external" then
                        local prev = reg[name]
                        if prev and prev.rule ~= i then
                            problems[#problems + 1] = { rule = i, level = "warning",
                                msg = string.format("%s: external metric %q also defined by "
                                    .. "%s[%d]; the later rule wins", rname, name, prefix,
                                    prev.rule - 1) }
                        end
                        reg[name] = { metric = name, series = shape.name, rule = i }
                    else
                        -- hook_ns: a resources_for_series hook may force
                        -- the scope (nil: the RESTMapper's)
                        local grs, hook_ns = steps.resources_for_series(rule, shape)
                        for _, gr in ipairs(grs or {}) do
                            local info = self.mapper:info(gr)
                            local label = rule.cv:label_for(gr)
                            if info and label then
                                local scoped = info.namespaced and true or false
                                if hook_ns ~= nil then scoped = hook_ns end
                                local e = { metric = name, resource = gr.resource,
                                    group = gr.group, namespaced = scoped,
                                    series = shape.name, rule = i, resource_label = label,
                                    kind = info.kind, version = info.version }
                                if e.namespaced then
                                    e.namespace_label = rule.cv:label_for(
                                        { group = "", resource = "namespaces" })
                                end
                                local key = table.concat({ e.resource, e.group,
                                    tostring(e.namespaced), name }, "\0")
                                local prev = reg[key]
                                if prev and prev.rule ~= i and not owner[key .. i] then
                                    problems[#problems + 1] = { rule = i, level = "warning",
                                        msg = string.format("%s: metric %q for %s also defined "
                                            .. "by %s[%d]; the later rule wins", rname, name,
                                            resources.gr_string(gr), prefix, prev.rule - 1) }
                                end
                                owner[key .. i] = true
                                reg[key] = e
                            end
                        end
                    end
                end
            end
        end
    end
    local entries = {}
    for _, e in pairs(reg) do entries[#entries + 1] = e end
    if kind == "external" then
        table.sort(entries, function(a, b) return a.metric < b.metric end)
    else
        table.sort(entries, key_less)
    end
    return entries, problems
end

local function rule_of(self, kind, i)
    local list = self.cfg[KIND_LIST[kind]]
    return list and list[i]
end

function Engine:render_custom(req)
    local rule = rule_of(self, "custom", req.rule)
    if not rule then return nil, "no such rule " .. tostring(req.rule), 500 end
    local rname = string.format("rules[%d]", req.rule - 1)
    if not rule.cv then return nil, rname .. ": resources not discovered yet", 500 end
    local data, err, status = matchers.custom_args(req, rule.cv)
    if not data then
        if status == 500 then err = rname .. ": " .. err end
        return nil, err, status
    end
    local reqs = err
    local steps = rule.steps or self.steps
    local q, qerr = steps.render_query(rule, data,
        rule.steps and M.request_view("custom", req, reqs, rule, data) or nil)
    if not q then return nil, rname .. ": " .. tostring(qerr), 500 end
    return q, matchers.selector_json(reqs)
end

function Engine:render_external(req)
    local rule = rule_of(self, "external", req.rule)
    if not rule then return nil, "no such rule " .. tostring(req.rule), 500 end
    local rname = string.format("externalRules[%d]", req.rule - 1)
    if not rule.cv then return nil, rname .. ": resources not discovered yet", 500 end
    local data, err, status = matchers.external_args(req, rule.cv, rule.resources.namespaced)
    if not data then
        if status == 500 then err = rname .. ": " .. err end
        return nil, err, status
    end
    local steps = rule.steps or self.steps
    local q, qerr = steps.render_query(rule, data,
        rule.steps and M.request_view("external", req, nil, rule, data) or nil)
    if not q then return nil, rname .. ": " .. tostring(qerr), 500 end
    return q
end

-- ------------------------------------------------------ hook entry points

-- The request as hooks see it (a fresh table per call).  reqs: the parsed
-- metric selector when the caller has it already; rule: the compiled rule
-- (for the label names).
function M.request_view(api, req, reqs, rule, data)
    local v = { api = api, metric = req.metric, series = req.series,
        namespace = req.namespace or "" }
    -- the template data the built-in render uses (<<.LabelMatchers>>,
    -- <<.GroupBy>>), for hooks that build their own query
    local f = data and data.__f
    if f then v.label_matchers, v.group_by = f.LabelMatchers, f.GroupBy end
    local cv = rule and rule.cv
    v.namespace_label = req.namespace_label
        or (cv and cv:label_for({ group = "", resource = "namespaces" })) or nil
    if api == "custom" then
        v.resource, v.group = req.resource, req.group or ""
        v.resource_label = req.resource_label
            or (cv and cv:label_for({ group = v.group, resource = v.resource })) or nil
        v.names = {}
        for i, n in ipairs(req.names or {}) do v.names[i] = n end
        v.metric_label_selector_text = req.metric_selector or ""
        v.metric_label_selector = reqs or matchers.parse(v.metric_label_selector_text) or {}
        v.label_selector_text = req.label_selector or ""
        v.label_selector = matchers.parse(v.label_selector_text) or {}
    else
        v.label_selector_text = req.selector or ""
        v.label_selector = matchers.parse(v.label_selector_text) or {}
        v.namespaced = not (rule and rule.resources.namespaced == false)
    end
    return v
end

function Engine:has_compute(kind, i)
    local rule = rule_of(self, kind, i)
    return rule ~= nil and rule.steps ~= nil and rule.steps.compute ~= nil
end

function Engine:hook_failures()
    return self.hooks and self.hooks:failures() or {}
end

-- How the built-in path answers a failed query, by the kind io.query
-- gives ("fetch": Prometheus failed or did not answer; "type": a result
-- type the API cannot serve; "budget": the request's time is spent) and
-- the API.  untyped: a 500 whose Status has no reason (Go's plain errors).
local function builtin_failure(kind, api)
    if kind == "budget" then return { status = 504, msg = "the request's time budget is spent" } end
    if kind == "type" and api == "external" then
        return { status = 500, msg = "encountered an unexpected query result type", untyped = true }
    end
    return { status = 500, msg = "unable to fetch metrics" }
end

-- The `prom` argument of one compute call (a fresh table, so a hook that
-- changes it changes nothing for the next call): prom.query(promql
-- [, "vector"]) -> samples | nil, err, through the C function table
-- (engine_set_io).  "vector" fails on any other result type, as custom
-- metrics do.  A failure the built-in path would answer too is noted in
-- the call's ctx.failures (see run_compute).  Time spent waiting for
-- Prometheus does not count against --lua-hook-timeout.
function Engine:prom_api(ctx)
    local io_ = self.io
    local sandbox = require "adapter.sandbox"
    local now = require("adapter.core").now
    return { query = function(promql, want)
        if type(promql) ~= "string" or promql == "" then
            error("prom.query: the query must be a non-empty string", 2)
        end
        if want ~= nil and want ~= "vector" then
            error("prom.query: the second argument must be \"vector\" or nil", 2)
        end
        if not (io_ and io_.query) then
            return nil, "prom.query is not available in this engine"
        end
        local t0 = now()
        local samples, err, kind = io_.query(promql, want)
        sandbox.extend(now() - t0)
        if samples == nil then
            if kind and type(err) == "string" then
                ctx.failures[err] = builtin_failure(kind, ctx.api)
            end
            return nil, err
        end
        return samples
    end }
end

-- Runs the rule's compute step.  Returns the samples (plain tables, copied
-- inside the hook's time guard by adapter.hooks) or nil, message, status,
-- untyped.  A failure of prom.query or `default` that the hook handed on
-- unchanged is answered as the built-in path answers it.
local function run_compute(self, rule, rname, request, api)
    local ctx = { api = api, failures = {} }
    local samples, err, passed = rule.steps.compute(rule, request, self:prom_api(ctx), ctx)
    if not samples then
        if passed then return nil, passed.msg, passed.status, passed.untyped or false end
        return nil, rname .. ": " .. tostring(err), 500
    end
    return samples
end

function Engine:compute_custom(req)
    local rule = rule_of(self, "custom", req.rule)
    if not rule then return nil, "no such rule " .. tostring(req.rule), 500 end
    local rname = string.format("rules[%d]", req.rule - 1)
    if not rule.cv then return nil, rname .. ": resources not discovered yet", 500 end
    if not (rule.steps and rule.steps.compute) then return nil, rname .. ": no compute hook", 500 end
    local data, err, status = matchers.custom_args(req, rule.cv)
    if not data then
        if status == 500 then err = rname .. ": " .. err end
        return nil, err, status
    end
    local reqs = err
    local samples, msg, st, untyped = run_compute(self, rule, rname,
        M.request_view("custom", req, reqs, rule, data), "custom")
    if not samples then return nil, msg, st, untyped end
    return samples, matchers.selector_json(reqs)
end

function Engine:compute_external(req)
    local rule = rule_of(self, "external", req.rule)
    if not rule then return nil, "no such rule " .. tostring(req.rule), 500 end
    local rname = string.format("externalRules[%d]", req.rule - 1)
    if not rule.cv then return nil, rname .. ": resources not discovered yet", 500 end
    if not (rule.steps and rule.steps.compute) then return nil, rname .. ": no compute hook", 500 end
    local data, err, status = matchers.external_args(req, rule.cv, rule.resources.namespaced)
    if not data then
        if status == 500 then err = rname .. ": " .. err end
        return nil, err, status
    end
    return run_compute(self, rule, rname, M.request_view("external", req, nil, rule, data),
        "external")
end


-- metrics.k8s.io (spec-rules.md §7.2).  req = { resource = "cpu"|"memory",
-- node = bool, namespace = "<ns>" (pods), names = { ... } }: renders the
-- rule's containerQuery (pods of one namespace) or nodeQuery.  An empty
-- rendering is an error here (PA would send it and fail at Prometheus).
function Engine:render_resource(req)
    local rr = self.cfg.resourceRules
    if not rr then return nil, "resourceRules not configured", 500 end
    local rule = rr[req.resource]
    if type(rule) ~= "table" then
        return nil, "no resource rule " .. tostring(req.resource), 500
    end
    local rname = "resourceRules." .. req.resource
    if not rule.cv then return nil, rname .. ": resources not discovered yet", 500 end
    local which = req.node and "nodeQuery" or "containerQuery"
    local data, err, status = matchers.resource_args(rule.cv, req.node, req.namespace,
        req.names or {}, rule.containerLabel)
    if not data then return nil, "unable to construct query: " .. err, status end
    local tmpl = rule.c and rule.c[which]
    if not tmpl then return nil, rname .. "." .. which .. ": no template", 500 end
    local q, qerr = tmpl:execute(data)
    if not q then
        return nil, "unable to construct query: " .. rname .. "." .. which .. ": "
            .. tostring(qerr), 500
    end
    if q == "" then
        return nil, "unable to construct query: " .. rname .. "." .. which
            .. " rendered an empty query", 500
    end
    return q
end

-- Labels of one resource rule ("cpu" | "memory") and the window, for the
-- C side to read query results (labels nil when unmapped).
function Engine:resource_labels(which)
    local rr = self.cfg.resourceRules
    if not rr then return nil, "resourceRules not configured" end
    local rule = rr[which]
    if type(rule) ~= "table" then return nil, "no resource rule " .. tostring(which) end
    local out = matchers.resource_labels(rule.cv, rule.containerLabel)
    out.window_ms = rr.window_ms or 0
    return out
end

return M
