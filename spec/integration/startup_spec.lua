-- spec/integration/startup_spec.lua: start-up behaviour of the binary that
-- issue 2 asks for and the other specs do not cover:
--  * `--lua-dir DIR` loads the Lua modules from DIR instead of the copy
--    embedded in the binary (at start-up and in every worker thread), and
--    the repository's own lua/ tree works there;
--  * flags owned by later issues are accepted with a warning;
--  * positional arguments are ignored (the Helm chart passes `/adapter`
--    first);
--  * `--metrics-max-age` below the relist interval with custom rules exits
--    255 with PA's message (spec-rules.md §1.3), but not with external
--    rules only (PA has no such check there, §9 #35).
-- Uses: spec/helpers.lua, the fake Prometheus and Kubernetes API.

local helpers = require "helpers"

local CUSTOM = [[
rules:
- seriesQuery: 'node_load1{node!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]]

local EXTERNAL = [[
externalRules:
- seriesQuery: 'queue_depth'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
]]

local SERIES = {
    { match = 'node_load1{node!=""}', data = { { __name__ = "node_load1", node = "worker-1" } } },
    { match = "queue_depth", data = { { __name__ = "queue_depth", topic = "t" } } },
}

-- A copy of the repository's lua/ tree in a temp dir; `edit(rel, from, to)`
-- replaces one exact piece of text in one module (its first occurrence, or
-- its last with `last`) and insists it was there.
local function lua_tree()
    local dir = helpers.tmpdir("luadir")
    assert(os.execute("cp -R " .. helpers.shq(helpers.root() .. "/lua") .. " " .. helpers.shq(dir .. "/lua")) == 0)
    local tree = { dir = dir .. "/lua" }
    function tree.edit(rel, from, to, last)
        local path = tree.dir .. "/" .. rel
        local text = assert(helpers.read_file(path), "no " .. path)
        local a, b = text:find(from, 1, true)
        assert(a, rel .. " no longer contains: " .. from)
        if last then    -- the last occurrence instead of the first
            local n = b
            while true do
                local a2, b2 = text:find(from, n + 1, true)
                if not a2 then break end
                a, b, n = a2, b2, b2
            end
        end
        helpers.write_file(path, text:sub(1, a - 1) .. to .. text:sub(b + 1))
    end
    return tree
end

-- The stderr line holding `text`, or nil.
local function warn_line(err, text)
    for l in err:gmatch("[^\n]+") do
        if l:find(text, 1, true) then return l end
    end
end

local function ext_path(metric)
    return "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/" .. metric
end

describe("--lua-dir", function()
    local prom, kube

    setup(function()
        prom = helpers.start_prometheus { state = { series = SERIES } }
        kube = helpers.start_kube {}
    end)

    teardown(function()
        helpers.cleanup()
    end)

    it("loads engine.lua from the tree: a failing engine.new stops start-up", function()
        local tree = lua_tree()
        tree.edit("adapter/engine.lua", "function M.new(tree, opts)",
            "function M.new(tree, opts) error('LUADIR-MARKER-7f3a: engine.new from the --lua-dir tree')")
        local rc, err = helpers.run_adapter { config = EXTERNAL, args = {
            "--lua-dir=" .. tree.dir, "--prometheus-url=" .. prom:url(),
            "--lister-kubeconfig=" .. helpers.kubeconfig(kube) } }
        assert.equal(255, rc, err)
        assert.truthy(err:find("LUADIR-MARKER-7f3a: engine.new from the --lua-dir tree", 1, true), err)
    end)

    it("uses the embedded copy without the flag, whatever LUA_PATH holds", function()
        local tree = lua_tree()
        tree.edit("adapter/engine.lua", "function M.new(tree, opts)",
            "function M.new(tree, opts) error('LUADIR-MARKER-7f3a')")
        -- the broken tree first on the path a plain require would search:
        -- start-up and the worker engines still use the embedded modules
        local adapter = helpers.start_adapter { config = EXTERNAL, prometheus = prom, kube = kube,
            env = { LUA_PATH = tree.dir .. "/?.lua;;" } }
        local status, _, raw = adapter:get(ext_path("queue_depth"))
        local err = adapter:stderr()
        adapter:stop()
        assert.is_true(status == 200 or status == 404, raw)    -- 404 until the first relist lists it
        assert.is_nil(err:find("LUADIR-MARKER", 1, true), err)
    end)

    it("renders requests in worker threads with the tree's modules", function()
        local tree = lua_tree()
        -- observable in the PromQL the fake receives
        -- (wrapped at the end of the module, where `Engine` is in scope, so
        -- the edit survives changes to the function itself)
        tree.edit("adapter/engine.lua", "\nreturn M",
            "\ndo\n    local render = Engine.render_external\n"
            .. "    Engine.render_external = function(self, req)\n"
            .. "        local q, a, b = render(self, req)\n"
            .. "        if q then q = q .. ' # from-lua-dir' end\n"
            .. "        return q, a, b\n    end\nend\nreturn M", true)
        local adapter = helpers.start_adapter { config = EXTERNAL, prometheus = prom, kube = kube,
            args = { "--lua-dir=" .. tree.dir } }
        helpers.wait_until(function()
            local _, doc = adapter:get_json("/apis/external.metrics.k8s.io/v1beta1")
            return doc and doc.resources and #doc.resources > 0
        end, helpers.scale(5), 0.1)
        prom:clear_requests()
        local status, _, raw = adapter:get(ext_path("queue_depth"))
        adapter:stop()
        assert.equal(200, status, raw)
        local r = prom:requests("/api/v1/query")
        assert.equal(1, #r)
        assert.equal("sum(queue_depth{}) # from-lua-dir", r[1].params.query)
    end)

    it("works with the repository's own lua/ tree", function()
        local adapter = helpers.start_adapter { config = CUSTOM .. EXTERNAL,
            prometheus = prom, kube = kube, args = { "--lua-dir=" .. helpers.root() .. "/lua" } }
        helpers.wait_until(function()
            local _, doc = adapter:get_json("/apis/external.metrics.k8s.io/v1beta1")
            return doc and doc.resources and #doc.resources > 0
        end, helpers.scale(5), 0.1)
        prom:clear_requests()
        local s1, _, raw1 = adapter:get(ext_path("queue_depth"))
        local s2, _, raw2 = adapter:get("/apis/custom.metrics.k8s.io/v1beta1/nodes/worker-1/node_load1")
        local r = prom:requests("/api/v1/query")
        adapter:stop()
        assert.equal(200, s1, raw1)
        -- the fake has no sample for the node: PA's 404 for the object
        assert.equal(404, s2, raw2)
        local qs = {}
        for i, x in ipairs(r) do qs[i] = x.params.query end
        helpers.assert_same({ "sum(queue_depth{})", 'sum(node_load1{node="worker-1"}) by (node)' }, qs)
    end)

    it("fails start-up clearly when the tree has no engine", function()
        local dir = helpers.tmpdir("emptylua")
        local rc, err = helpers.run_adapter { config = EXTERNAL, args = { "--lua-dir=" .. dir } }
        assert.equal(255, rc, err)
        assert.truthy(err:find("adapter.engine", 1, true), err)
    end)
end)

describe("command line", function()
    local prom, kube

    setup(function()
        prom = helpers.start_prometheus { state = { series = SERIES } }
        kube = helpers.start_kube {}
    end)

    teardown(function()
        helpers.cleanup()
    end)

    it("accepts flags owned by later issues with a warning", function()
        local adapter = helpers.start_adapter { config = EXTERNAL, prometheus = prom, kube = kube,
            args = { "--audit-log-maxage=7", "--audit-log-path=/dev/null", "--profiling=false" } }
        local status = adapter:get("/healthz")
        local err = adapter:stderr()
        adapter:stop()
        assert.equal(200, status)
        for _, text in ipairs({ "flag --audit-log-maxage is accepted but not implemented yet",
            "flag --audit-log-path is accepted but not implemented yet",
            "flag --profiling is accepted but has no effect" }) do
            local line = warn_line(err, text)
            assert.truthy(line, text .. " in:\n" .. err)
            assert.truthy(line:match("^W%d%d%d%d "), line)
        end
    end)

    it("does not warn about later flags left at their defaults", function()
        local adapter = helpers.start_adapter { config = EXTERNAL, prometheus = prom, kube = kube,
            args = { "--audit-log-maxage=0" } }
        local err = adapter:stderr()
        adapter:stop()
        assert.is_nil(err:find("audit-log-maxage", 1, true), err)
    end)

    it("ignores positional arguments, /adapter first as the Helm chart passes it", function()
        -- start_adapter runs helpers.adapter_bin(); a wrapper script puts
        -- the positional word before every flag, exactly as in the chart
        local dir = helpers.tmpdir("wrap")
        local wrapper = helpers.write_file(dir .. "/adapter.sh", "#!/bin/sh\nexec "
            .. helpers.shq(helpers.adapter_bin()) .. " /adapter \"$@\" trailing-word\n")
        assert(os.execute("chmod +x " .. helpers.shq(wrapper)) == 0)
        local real = helpers.adapter_bin
        helpers.adapter_bin = function() return wrapper end
        local ok, adapter = pcall(helpers.start_adapter, { config = EXTERNAL, prometheus = prom, kube = kube })
        helpers.adapter_bin = real
        assert(ok, adapter)
        local status, doc = adapter:get_json("/apis")
        adapter:stop()
        assert.equal(200, status)
        assert.equal("external.metrics.k8s.io", doc.groups[1].name)
    end)

    it("exits 255 when --metrics-max-age is below the relist interval with custom rules", function()
        local rc, err = helpers.run_adapter { config = CUSTOM, args = {
            "--metrics-relist-interval=1m", "--metrics-max-age=30s", "--prometheus-url=" .. prom:url(),
            "--lister-kubeconfig=" .. helpers.kubeconfig(kube) } }
        assert.equal(255, rc, err)
        assert.truthy(err:find("unable to construct custom metrics provider: max age must not be "
            .. "less than relist interval", 1, true), err)
    end)

    it("accepts --metrics-max-age equal to the relist interval", function()
        local adapter = helpers.start_adapter { config = CUSTOM, prometheus = prom, kube = kube,
            relist = "2s", args = { "--metrics-max-age=2s" } }
        local status = adapter:get("/healthz")
        adapter:stop()
        assert.equal(200, status)
    end)

    it("does not check --metrics-max-age with external rules only (as PA)", function()
        local adapter = helpers.start_adapter { config = EXTERNAL, prometheus = prom, kube = kube,
            relist = "2s", args = { "--metrics-max-age=1s" } }
        local status = adapter:get("/healthz")
        adapter:stop()
        assert.equal(200, status)
    end)
end)
