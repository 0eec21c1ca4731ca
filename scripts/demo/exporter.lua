-- scripts/demo/exporter.lua: the demo workload, as a Prometheus target.
--
--   luajit scripts/demo/exporter.lua --port 0
--
-- Provides: GET /metrics (Prometheus text format) with the series of
-- scripts/demo/stack.lua (request counters and queue gauges with
-- namespace/pod labels, and the cAdvisor/kubelet CPU and memory series
-- the resource rules read), counters growing from this process' start.
-- Prints "PORT <n>" as the first line of stdout once listening.
-- Uses: spec/helpers.lua's http_server (lua-socket), scripts/demo/stack.lua.
-- Run from the repository root. Must never: listen beyond 127.0.0.1.

package.path = "scripts/?.lua;spec/?.lua;" .. package.path
local helpers = require "helpers"
local stack = require "demo.stack"

local opts = helpers.parse_args(arg)
local t0 = helpers.now()

local srv = helpers.http_server {
    port = tonumber(opts.port or "0"),
    handler = function(req)
        if req.path == "/metrics" and (req.method == "GET" or req.method == "HEAD") then
            return { status = 200, body = stack.metrics_text(helpers.now(), t0),
                headers = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" } }
        end
        return { status = 404, body = "not found\n", headers = { ["Content-Type"] = "text/plain" } }
    end,
}
io.stdout:write("PORT ", srv.port, "\n")
io.stdout:flush()
srv:run()
