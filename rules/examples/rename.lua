-- rename.lua: rename and filter metrics with logic a regex cannot express.
--
--  * rename (metric_name): counters become rates with their unit spelled
--    the Kubernetes way (http_request_duration_seconds_total ->
--    http_request_duration_per_second, ..._bytes_total ->
--    ..._bytes_per_second, other *_total -> *_per_second); a denylist
--    drops names outright; names longer than 63 characters are dropped
--    (they could not be an HPA metric name anyway).
--  * pods_only (match_series): keep a series only when it carries both a
--    pod and a namespace label: a label set, not a name, decides.
--
-- Use with  hooks: {metric_name: rename, match_series: pods_only}.

local DENY = { process_cpu_seconds_total = true, go_gc_duration_seconds = true }

local function rename(rule, name, default)
    if DENY[name] then return nil end
    -- the rule's own name.matches/as first, then our rewriting
    local base = default(rule, name)
    if not base then return nil end
    local stem = base:match("^(.*)_seconds_total$")
    if stem then base = stem .. "_per_second"
    else
        stem = base:match("^(.*)_total$")
        if stem then base = stem .. "_per_second" end
    end
    if #base > 63 then return nil end
    return base
end

local function pods_only(rule, series, default)
    local has = {}
    for _, l in ipairs(series.labels) do has[l] = true end
    if not (has.pod and has.namespace) then return false end
    return default(rule, series)
end

return { rename = rename, pods_only = pods_only }
