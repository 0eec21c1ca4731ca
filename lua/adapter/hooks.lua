-- adapter.hooks: user Lua hooks (--lua-script) over the engine's steps
-- (docs/hooks.md is the contract operators write against).
--
-- Provides: hooks.RESERVED (the step names a script may override for
--             every rule: match_series, metric_name, resources_for_series,
--             render_query, compute)
--           hooks.load(scripts, opts) -> set | nil, errs
--             scripts = { { path = "x.lua", text = <source> | nil }, ... }
--             (text nil: read the file now); loads each in order in the
--             sandbox; errs = { { file=, line=, msg= }, ... }.
--             opts = { timeout_ms = 1000, log = function(level, msg),
--                      on_failure = function(hook_name) } (the C side's
--                      promlua_adapter_hook_failures_total{hook})
--           set:lookup(name) -> entry | nil   (exported function by name)
--           set:steps_for(rule, view, builtin, rname) -> steps
--             the steps of one rule that a hook replaces (per-rule
--             `hooks:` names first, then reserved exports), each a wrapper
--             calling the user hook with (view, x, default); steps the
--             hooks leave alone are absent (the engine's built-in applies);
--           hooks.rule_view(rule, kind, index) -> the rule as hooks see it;
--           set:failures() -> { [label] = count }
-- Uses: adapter.sandbox (env, time guard), adapter.matchers (to rebuild
--       the template data when a hook hands a request to `default`).
-- Never: lets a hook error escape: discovery steps drop the series
--        (logged, counted), render/compute steps return nil, message
--        (compute: plus how the built-in path answers it, when the hook
--        handed on a failure of prom.query or `default` unchanged);
--        runs script code outside the time guard: a hook's results are
--        checked and copied inside it (metamethods on them are script
--        code), and the engine reads only the copies.

local sandbox = require "adapter.sandbox"

local M = {}

M.RESERVED = { "match_series", "metric_name", "resources_for_series", "render_query",
    "compute" }
local IS_RESERVED = {}
for _, n in ipairs(M.RESERVED) do IS_RESERVED[n] = true end
M.IS_RESERVED = IS_RESERVED

local Set = {}
Set.__index = Set

local function read(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local s = f:read("*a")
    f:close()
    return s
end

-- "path:12: message" -> 12, "message"
local function split_pos(msg, path)
    local pfx = path .. ":"
    if msg:sub(1, #pfx) == pfx then
        local line, rest = msg:sub(#pfx + 1):match("^(%d+): (.*)$")
        if line then return tonumber(line), rest end
    end
    return nil, msg
end

function M.load(scripts, opts)
    opts = opts or {}
    local self = setmetatable({ exports = {}, global = {}, timeout_ms = opts.timeout_ms or 1000,
        log = opts.log or function() end, on_failure = opts.on_failure,
        counts = {}, last_log = {}, suppressed = {}, names = {}, scripts = {} }, Set)
    local errs = {}
    for _, s in ipairs(scripts or {}) do
        local text, rerr = s.text, nil
        if text == nil then text, rerr = read(s.path) end
        local exports, err, rline
        if not text then
            err = string.format("cannot read --lua-script %s: %s", s.path, tostring(rerr))
        else
            exports, err, rline = sandbox.load(s.path, text, self.timeout_ms)
        end
        if not exports then
            local line, msg = split_pos(tostring(err), s.path)
            errs[#errs + 1] = { file = s.path, line = line, msg = msg }
        else
            self.scripts[#self.scripts + 1] = s.path
            -- sorted, so that the order of checks and warnings is stable
            -- (raw access only and no tostring on a script's own values: a
            -- metamethod here would run outside any time limit, at start-up
            -- or in the reload thread)
            local names, bad = {}, {}
            for k in next, exports do
                if type(k) == "string" then names[#names + 1] = k else bad[#bad + 1] = type(k) end
            end
            table.sort(names)
            table.sort(bad)
            for _, t in ipairs(bad) do
                errs[#errs + 1] = { file = s.path, line = rline, msg = string.format(
                    "exported key of type %s is not a string", t) }
            end
            for _, name in ipairs(names) do
                local fn = rawget(exports, name)
                if type(fn) ~= "function" then
                    errs[#errs + 1] = { file = s.path, line = rline, msg = string.format(
                        "export %q is a %s, not a function", name, type(fn)) }
                else
                    local prev = self.exports[name]
                    if prev then
                        self.log("warning", string.format("--lua-script %s: %q replaces the "
                            .. "one exported by %s", s.path, name, prev.script))
                    end
                    local e = { fn = fn, name = name, script = s.path }
                    self.exports[name] = e
                    if IS_RESERVED[name] then self.global[name] = e end
                end
            end
        end
    end
    if #errs > 0 then return nil, errs end
    return self
end

function Set:lookup(name)
    return self.exports[name]
end

function Set:failures()
    local out = {}
    for k, v in pairs(self.counts) do out[k] = v end
    return out
end

-- Counts a failure and logs it (at most once per 10 s per hook label in
-- this state, with how many were left out: a broken match_series hook
-- fails on every series of every relist).
function Set:fail(label, msg)
    self.counts[label] = (self.counts[label] or 0) + 1
    if self.on_failure then pcall(self.on_failure, self.names[label] or label) end
    local core_now = require("adapter.core").now
    local t = core_now()
    local last = self.last_log[label]
    if last and t - last < 10 then
        self.suppressed[label] = (self.suppressed[label] or 0) + 1
        return
    end
    local extra = ""
    if (self.suppressed[label] or 0) > 0 then
        extra = string.format(" (%d more failures not logged)", self.suppressed[label])
    end
    self.suppressed[label] = 0
    self.last_log[label] = t
    self.log("error", msg .. extra)
end

-- ------------------------------------------------------------------ views

local function copy_list(t)
    local out = {}
    for i, v in ipairs(t or {}) do out[i] = v end
    return out
end

-- The rule as hooks see it: its YAML fields (a copy: a hook cannot change
-- the compiled rule), plus kind ("custom"|"external"), index (0-based, as
-- in the YAML path) and path ("rules[0]").
function M.rule_view(rule, kind, index)
    local res = rule.resources or {}
    local overrides = {}
    for _, o in ipairs(res.overrides or {}) do
        overrides[o.key] = { group = o.value.group, resource = o.value.resource }
    end
    local filters = {}
    for i, f in ipairs(rule.seriesFilters or {}) do
        filters[i] = { is = f.is, isNot = f.isNot }
    end
    local h = {}
    for _, n in ipairs(M.RESERVED) do
        if rule.hooks and rule.hooks[n] and rule.hooks[n] ~= "" then h[n] = rule.hooks[n] end
    end
    return {
        kind = kind, index = index - 1,
        path = string.format("%s[%d]", kind == "external" and "externalRules" or "rules", index - 1),
        seriesQuery = rule.seriesQuery, seriesFilters = filters,
        resources = { template = res.template, overrides = overrides, namespaced = res.namespaced },
        name = { matches = rule.name and rule.name.matches or "", as = rule.name and rule.name.as or "" },
        metricsQuery = rule.metricsQuery, hooks = h,
    }
end

local function series_view(series)
    return { name = series.name, labels = copy_list(series.labels) }
end

-- --------------------------------------------------------------- checks

-- Each check(a, b) gets a hook's first two results and returns true, a', b'
-- (plain copies the engine may read) or false, why.  They run inside the
-- hook's time guard (Set:invoke): a returned table may carry metamethods
-- (a looping __index on a sample or a resource), and no script code may
-- run once the guard has ended.

local function check_bool(v)
    if type(v) ~= "boolean" then return false, "must return a boolean, got " .. type(v) end
    return true, v
end

local function check_name(v)
    if v ~= nil and type(v) ~= "string" then
        return false, "must return a string or nil, got " .. type(v)
    end
    return true, v
end

local function check_grs(v, ns)
    if type(v) ~= "table" then
        return false, "must return a list of {group=, resource=}, got " .. type(v)
    end
    local out = {}
    for i, gr in ipairs(v) do
        local group, resource
        if type(gr) == "table" then group, resource = gr.group, gr.resource end
        if type(resource) ~= "string" or (group ~= nil and type(group) ~= "string") then
            return false, string.format("item %d is not a {group=<string>, resource=<string>} "
                .. "table", i)
        end
        out[i] = { group = group or "", resource = resource }
    end
    if ns ~= nil and type(ns) ~= "boolean" then
        return false, "second result (namespaced) must be a boolean or nil, got " .. type(ns)
    end
    return true, out, ns
end

local function check_query(v, msg)
    -- (nil, message) is a deliberate failure with that message (as the
    -- built-in step fails), not a wrong type
    if v == nil and type(msg) == "string" then return true, nil, msg end
    if type(v) ~= "string" or v == "" then
        return false, "must return a non-empty PromQL string, got "
            .. (type(v) == "string" and "\"\"" or type(v))
    end
    return true, v
end

-- A sample's labels stay nil when the hook left them out: such a sample
-- is served as a scalar answer is (metricLabels: null).
local function check_samples(v, msg)
    if v == nil and type(msg) == "string" then return false, msg end
    if type(v) ~= "table" then return false, "must return a list of samples, got " .. type(v) end
    local out = {}
    for i, s in ipairs(v) do
        if type(s) ~= "table" then return false, string.format("sample %d is a %s", i, type(s)) end
        local value, labels, ts = s.value, s.labels, s.timestamp
        if type(value) ~= "number" then
            return false, string.format("sample %d: value must be a number, got %s", i,
                type(value))
        end
        local lcopy = nil
        if labels ~= nil then
            if type(labels) ~= "table" then
                return false, string.format("sample %d: labels must be a table", i)
            end
            lcopy = {}
            for k, lv in pairs(labels) do
                if type(k) ~= "string" or type(lv) ~= "string" then
                    return false, string.format("sample %d: labels must map strings to strings", i)
                end
                lcopy[k] = lv
            end
        end
        if ts ~= nil and type(ts) ~= "number" then
            return false, string.format("sample %d: timestamp must be a number (seconds)", i)
        end
        out[i] = { labels = lcopy, value = value, timestamp = ts }
    end
    return true, out
end

-- What the guard runs: the hook, then the check of its results.
local function run_checked(fn, check, ...)
    return check(fn(...))
end

-- Calls entry.fn(...) and check(results) under the time guard.  Returns
-- true, checked results... or false, "hook <step> (<script>: <name>)
-- failed: <why>", label, why (why: the raised error or the check's
-- reason, a string; a hook's own (nil, message) gives that message).
function Set:invoke(step, entry, check, ...)
    local ok, good, a, b = sandbox.guard(self.timeout_ms, run_checked, entry.fn, check, ...)
    local label = string.format("hook %s (%s: %s)", step, entry.script, entry.name)
    self.names[label] = entry.name
    if not ok then
        -- good: the error, a string (sandbox.guard makes it one in time)
        return false, string.format("%s failed: %s", label, good), label, good
    end
    if not good then return false, string.format("%s failed: %s", label, a), label, a end
    return true, a, b
end

-- ------------------------------------------------------------ the steps

-- builtin: the engine's default step functions, called with the compiled
-- rule: match_series(rule, series), metric_name(rule, name),
-- resources_for_series(rule, series), render_query(rule, data),
-- render_data(rule, request) -> data | nil, err (rebuilds template data
-- from a request view), query(promql) -> samples | nil, err.
-- rule: the compiled rule; view: its rule_view.
function Set:steps_for(rule, view, builtin, rname)
    local steps = {}
    local function pick(step)
        local name = rule.hooks and rule.hooks[step]
        if name and name ~= "" then return self.exports[name] end
        return self.global[step]
    end
    local set = self

    -- one local per step: each wrapper closes over its own entry
    local e_ms = pick("match_series")
    if e_ms then
        local e = e_ms
        local function default(_, series) return builtin.match_series(rule, series) end
        steps.match_series = function(_, series)
            local ok, v, label = set:invoke("match_series", e, check_bool, view,
                series_view(series), default)
            if not ok then set:fail(label, rname .. ": " .. v); return false end
            return v
        end
    end

    local e_mn = pick("metric_name")
    if e_mn then
        local e = e_mn
        local function default(_, name) return builtin.metric_name(rule, name) end
        steps.metric_name = function(_, series_name)
            local ok, v, label = set:invoke("metric_name", e, check_name, view, series_name, default)
            if not ok then
                set:fail(label, rname .. ": " .. v)
                return nil, v
            end
            if v == nil then return nil, "dropped by hook metric_name" end
            return v
        end
    end

    local e_rs = pick("resources_for_series")
    if e_rs then
        local e = e_rs
        local function default(_, series) return builtin.resources_for_series(rule, series) end
        steps.resources_for_series = function(_, series)
            local ok, v, ns = set:invoke("resources_for_series", e, check_grs, view,
                series_view(series), default)
            if not ok then set:fail(ns, rname .. ": " .. v); return {} end
            return v, ns
        end
    end

    -- render_query gets the request view; the engine passes it as the
    -- third argument (the built-in ignores it).
    local render_default = function(_, request)
        local data, err = builtin.render_data(rule, request)
        if not data then return nil, err end
        return builtin.render_query(rule, data)
    end
    local e_rq = pick("render_query")
    if e_rq then
        local e = e_rq
        steps.render_query = function(_, _, request)
            -- default rebuilds the template data from the request, so a
            -- hook may change request fields (not the parsed selectors:
            -- the *_text ones count) before handing it on
            local function default(_, rq) return render_default(nil, rq) end
            local ok, v, extra = set:invoke("render_query", e, check_query, view, request, default)
            if not ok then set:fail(extra, rname .. ": " .. v); return nil, v end
            if v == nil then return nil, extra end   -- the hook's own message
            return v
        end
    end

    local e_c = pick("compute")
    if e_c then
        local e = e_c
        -- compute(view, request, prom, ctx) -> samples | nil, msg[, passed]
        -- ctx.failures (the engine's, one per call) maps the message of a
        -- failure of `default` or prom.query to how the built-in path
        -- answers it ({ msg=, status=, untyped= }); a hook that hands such
        -- a message on unchanged (returned or raised with level 0) fails
        -- the request exactly as the built-in path would, and that is not
        -- a failure of the hook (not counted).
        steps.compute = function(_, request, prom, ctx)
            local failures = ctx.failures
            local want = view.kind == "custom" and "vector" or nil
            local function default(_, rq)
                local render = steps.render_query
                    or function(_, d) return builtin.render_query(rule, d) end
                local d, derr, dstatus = builtin.render_data(rule, rq)
                if not d then
                    derr = tostring(derr)
                    dstatus = dstatus or 500
                    failures[derr] = { status = dstatus,
                        msg = dstatus == 500 and rname .. ": " .. derr or derr }
                    return nil, derr
                end
                local q, err = render(rule, d, rq)
                if not q then
                    err = tostring(err)
                    failures[err] = { status = 500, msg = rname .. ": " .. err }
                    return nil, err
                end
                -- custom metrics need a vector, as the built-in path does
                return prom.query(q, want)
            end
            local ok, v, label, why = set:invoke("compute", e, check_samples, view, request,
                prom, default)
            if not ok then
                local passed = failures[why]
                if passed then return nil, why, passed end
                set:fail(label, rname .. ": " .. v)
                return nil, v
            end
            return v
        end
    end
    return steps
end

return M
