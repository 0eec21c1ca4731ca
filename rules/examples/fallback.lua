-- fallback.lua: serve the last good value when Prometheus answers nothing
-- or fails, for HOLD_SECONDS; after that, DEFAULT_VALUE.  Answers
-- prometheus-adapter's "the HPA scaled the wrong way on a 404": an empty
-- answer or a failed query no longer reaches the autoscaler as "no metric".
--
-- Use it on a rule (custom or external) with
--     hooks: {compute: fallback}
-- and start the adapter with --lua-script=rules/examples/fallback.lua.
-- Each worker thread keeps its own cache (hooks share nothing between
-- threads), so after a restart, or on a thread that never saw a good
-- answer, the default applies at once.

local HOLD_SECONDS = 300   -- how long the last good value is served
local DEFAULT_VALUE = 0    -- what is served after that (or with no history)

local last = {}            -- cache key -> { samples = {...}, at = seconds }

-- One entry per distinct question: rule, metric, namespace, objects, selectors.
local function key_of(rule, request)
    return table.concat({ rule.path, request.metric, request.namespace,
        table.concat(request.names or {}, ","), request.label_selector_text or "",
        request.metric_label_selector_text or "" }, "\0")
end

-- The configured default: custom metrics need one sample per object (the
-- resource label names it); external metrics get one label-less sample.
local function default_samples(request)
    if request.api == "custom" then
        local out = {}
        for i, name in ipairs(request.names) do
            out[i] = { labels = { [request.resource_label] = name }, value = DEFAULT_VALUE }
        end
        return out
    end
    return { { labels = {}, value = DEFAULT_VALUE } }
end

local function fallback(rule, request, prom, default)
    local key = key_of(rule, request)
    local samples, err = default(rule, request)
    local now = adapter.now()
    if samples and #samples > 0 then
        last[key] = { samples = samples, at = now }
        return samples
    end
    local why = err or "no samples"
    local prev = last[key]
    if prev and now - prev.at <= HOLD_SECONDS then
        adapter.log("warning", "fallback:", rule.path, request.metric, why,
            string.format("- serving the value from %.0fs ago", now - prev.at))
        return prev.samples
    end
    adapter.log("warning", "fallback:", rule.path, request.metric, why, "- serving the default")
    return default_samples(request)
end

return { fallback = fallback }
