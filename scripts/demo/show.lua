-- scripts/demo/show.lua: prints a metrics API answer (JSON on stdin) for
-- people: `luajit scripts/demo/show.lua list|values|json < answer.json`.
--
-- Provides: "list"   the metric names of an APIResourceList (discovery),
--           "values" one line per item of a MetricValueList /
--                    ExternalMetricValueList / PodMetrics(List),
--           "json"   indented JSON with sorted keys.
-- A body that is not JSON (an error text) is printed as it is, and the
-- exit status is 1.
-- Uses: lua-cjson. Must never: read anything but stdin.

local cjson = require "cjson"

local mode = arg[1] or "json"
local text = io.read("*a")
local ok, doc = pcall(cjson.decode, text)
if not ok or type(doc) ~= "table" then
    io.write(text, "\n")
    os.exit(1)
end

local function pretty(v, indent, out)
    if type(v) == "table" and v ~= cjson.null then
        local n = #v
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        if n > 0 and #keys == n then
            out[#out + 1] = "[\n"
            for i = 1, n do
                out[#out + 1] = indent .. "  "
                pretty(v[i], indent .. "  ", out)
                out[#out + 1] = i < n and ",\n" or "\n"
            end
            out[#out + 1] = indent .. "]"
            return
        end
        if #keys == 0 then out[#out + 1] = "{}"; return end
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        out[#out + 1] = "{\n"
        for i, k in ipairs(keys) do
            out[#out + 1] = indent .. "  " .. cjson.encode(tostring(k)) .. ": "
            pretty(v[k], indent .. "  ", out)
            out[#out + 1] = i < #keys and ",\n" or "\n"
        end
        out[#out + 1] = indent .. "}"
    else
        out[#out + 1] = cjson.encode(v)
    end
end

if doc.kind == "Status" then
    io.write("error ", tostring(doc.code), ": ", tostring(doc.message), "\n")
    os.exit(1)
end

if mode == "list" then
    local names = {}
    for _, r in ipairs(doc.resources or {}) do names[#names + 1] = r.name end
    table.sort(names)
    io.write(string.format("%d metrics:\n", #names))
    for _, n in ipairs(names) do io.write("  ", n, "\n") end
elseif mode == "values" then
    local items = doc.items or { doc }
    for _, it in ipairs(items) do
        if it.describedObject then            -- custom metrics
            io.write(string.format("  %-8s %-12s %-22s %s\n", it.describedObject.kind,
                it.describedObject.name, it.metric and it.metric.name or it.metricName,
                it.value))
        elseif it.containers then             -- metrics.k8s.io pods
            for _, c in ipairs(it.containers) do
                io.write(string.format("  pod %-12s container %-8s cpu %-8s memory %s\n",
                    it.metadata.name, c.name, c.usage.cpu, c.usage.memory))
            end
        elseif it.usage then                  -- metrics.k8s.io nodes
            io.write(string.format("  node %-12s cpu %-8s memory %s\n", it.metadata.name,
                it.usage.cpu, it.usage.memory))
        else                                  -- external metrics
            local labels = {}
            for k, v in pairs(it.metricLabels or {}) do labels[#labels + 1] = k .. "=" .. v end
            table.sort(labels)
            io.write(string.format("  %-22s {%s} %s\n", it.metricName,
                table.concat(labels, ","), it.value))
        end
    end
    if #items == 0 then io.write("  (no items)\n") end
else
    local out = {}
    pretty(doc, "", out)
    io.write(table.concat(out), "\n")
end
