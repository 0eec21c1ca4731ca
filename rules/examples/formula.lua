-- formula.lua: one external metric computed from two queries, like KEDA's
-- scalingModifiers: queue backlog ÷ busy workers, per namespace.
--
-- Use it on an external rule with
--     hooks: {compute: backlog_per_worker}
-- (rules/examples/formula.yaml).  The HPA then targets "messages per
-- worker" directly instead of a raw backlog.

local BACKLOG = "queue_backlog"    -- gauge: messages waiting
local WORKERS = "queue_workers"    -- gauge: workers consuming

-- PromQL string literal of a Kubernetes name (DNS label characters only).
local function lit(s)
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

local function sum_of(prom, metric, request)
    local sel = ""
    if request.namespace ~= "" and request.namespace_label then
        sel = request.namespace_label .. "=" .. lit(request.namespace)
    end
    local samples, err = prom.query(string.format("sum(%s{%s})", metric, sel))
    if not samples then error(metric .. ": " .. tostring(err), 0) end
    return samples[1] and samples[1].value or 0
end

local function backlog_per_worker(rule, request, prom, default)
    local backlog = sum_of(prom, BACKLOG, request)
    local workers = sum_of(prom, WORKERS, request)
    -- no worker at all: the whole backlog, so that the HPA scales up from 0
    local value = workers > 0 and backlog / workers or backlog
    return { { labels = {}, value = value } }
end

return { backlog_per_worker = backlog_per_worker }
