-- gen_resource.lua: data for bench/resource_top.sh (bench/README.md,
-- "metrics.k8s.io"). Writes, into DIR:
--   kube-state.json  NS namespaces ns-00.. with PER pods pod-000.. each,
--                    Running, labels app=bench and shard=s<i % 10>
--   cpu.json, mem.json  /api/v1/query vectors with 2 containers (app,
--                    sidecar) for every pod name pod-000..: pod names repeat
--                    in every namespace, so one static answer is the right
--                    answer to the query of any namespace batch
--   Usage: luajit bench/gen_resource.lua DIR NS PER
local cjson = require "cjson"
local dir, nns, per = arg[1], tonumber(arg[2] or 50), tonumber(arg[3] or 100)
assert(dir, "usage: gen_resource.lua DIR NS PER")

local function write(name, text)
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
end

local namespaces, pods = {}, {}
for n = 0, nns - 1 do
    local ns = string.format("ns-%02d", n)
    namespaces[#namespaces + 1] = { name = ns }
    for p = 0, per - 1 do
        pods[#pods + 1] = { name = string.format("pod-%03d", p), namespace = ns,
            labels = { app = "bench", shard = "s" .. (p % 10) }, phase = "Running" }
    end
end
write("kube-state.json", cjson.encode({ objects = {
    { resource = "namespaces", items = namespaces }, { resource = "pods", items = pods } } }))

local function vector(name, value)
    local parts = {}
    for p = 0, per - 1 do
        for _, c in ipairs({ "app", "sidecar" }) do
            parts[#parts + 1] = string.format(
                '{"metric":{"container":"%s","pod":"pod-%03d"},"value":[1715851267.123,"%s"]}',
                c, p, value(p, c))
        end
    end
    write(name, '{"status":"success","data":{"resultType":"vector","result":['
        .. table.concat(parts, ",") .. "]}}")
end
vector("cpu.json", function(p, c) return string.format("%.6f", (p + 1) / 1000 + (c == "app" and 0.1 or 0)) end)
vector("mem.json", function(p) return tostring((p + 1) * 4096 * 256) end)
