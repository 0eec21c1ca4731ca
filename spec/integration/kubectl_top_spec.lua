-- spec/integration/kubectl_top_spec.lua: the real kubectl against the
-- adapter. kubectl talks to spec/fixtures/kube_front.lua, which plays the
-- aggregator: metrics.k8s.io is proxied to the adapter, everything else
-- (discovery, nodes for `top node`) comes from the fake Kubernetes API.
-- Asserts the tables `kubectl top pod -n`, `top pod <name> --containers`
-- and `top node` print (kubectl's own arithmetic: CPU in millicores,
-- memory in Mi, percentages of the nodes' allocatable).
-- Uses: spec/helpers.lua, the two fakes, kubectl (skipped if absent).

local helpers = require "helpers"

local TS = 1715851267.123

local CONFIG = [[
resourceRules:
  cpu:
    containerQuery: 'sum(rate(cpu{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(node_cpu{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: 'sum(mem{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(node_mem{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 1m
]]

local ALLOC = { allocatable = { cpu = "4", memory = "16Gi", pods = "110" },
    capacity = { cpu = "4", memory = "16Gi", pods = "110" } }

local OBJECTS = { objects = {
    { resource = "namespaces", items = { { name = "shop" } } },
    { resource = "pods", items = {
        { name = "web-1", namespace = "shop", labels = { app = "web" }, phase = "Running" },
        { name = "web-2", namespace = "shop", labels = { app = "web" }, phase = "Running" },
        { name = "db-0", namespace = "shop", labels = { app = "db" }, phase = "Running" },
    } },
    { resource = "nodes", items = {
        { name = "worker-1", labels = { role = "a" }, status = ALLOC },
        { name = "worker-2", labels = { role = "b" }, status = ALLOC },
    } },
} }

local function vec(samples)
    local out = {}
    for i, s in ipairs(samples) do out[i] = { metric = s[1], value = { TS, s[2] } } end
    return { result = { resultType = "vector", result = out } }
end

local rows = helpers.rows

local have_kubectl = os.execute("command -v kubectl >/dev/null 2>&1")
have_kubectl = have_kubectl == 0 or have_kubectl == true

local describe_if = have_kubectl and describe or pending

describe_if("kubectl top through the adapter", function()
    local prom, kube, adapter, front, dir, kubeconfig

    local function start_front()
        dir = helpers.tmpdir("front")
        local cmd = string.format("cd %s && exec luajit spec/fixtures/kube_front.lua --port 0 "
            .. "--kube %s --adapter %s >%s 2>%s & echo $! >%s",
            helpers.shq(helpers.root()), helpers.shq(kube:base()),
            helpers.shq("https://127.0.0.1:" .. adapter.port),
            helpers.shq(dir .. "/stdout"), helpers.shq(dir .. "/stderr"), helpers.shq(dir .. "/pid"))
        os.execute("sh -c " .. helpers.shq(cmd) .. " </dev/null >/dev/null 2>&1")
        local pid = helpers.wait_until(function()
            local s = helpers.read_file(dir .. "/pid")
            return s and tonumber(s:match("%d+"))
        end, 5)
        local port = helpers.wait_until(function()
            local s = helpers.read_file(dir .. "/stdout")
            return s and tonumber(s:match("PORT (%d+)"))
        end, 5)
        assert(pid and port, "kube_front did not start: " .. tostring(helpers.read_file(dir .. "/stderr")))
        return { pid = pid, port = port,
            base = function() return "http://127.0.0.1:" .. port end }
    end

    -- Runs kubectl with args -> exit code, stdout, stderr.
    local function kubectl(args)
        local out, err = dir .. "/kubectl.out", dir .. "/kubectl.err"
        local cmd = string.format("KUBECONFIG=%s timeout 60 kubectl --cache-dir=%s %s >%s 2>%s",
            helpers.shq(kubeconfig), helpers.shq(dir .. "/cache"), args,
            helpers.shq(out), helpers.shq(err))
        local r1, _, r3 = os.execute(cmd)
        local rc = type(r1) == "number" and r1 / 256 or r3
        return rc, helpers.read_file(out) or "", helpers.read_file(err) or ""
    end

    local function script(query, answer)
        answer.query = query
        prom:control("POST", "/_fake/query", answer)
    end

    setup(function()
        prom = helpers.start_prometheus {}
        kube = helpers.start_kube { state = OBJECTS }
        -- (start_adapter points delegated authn/authz at the fake too)
        adapter = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube }
        front = start_front()
        kubeconfig = helpers.kubeconfig(front, dir)
        script('sum(rate(cpu{namespace="shop",pod=~"db-0|web-1|web-2"}[1m])) by (pod,container)', vec({
            { { pod = "web-1", container = "app" }, "0.25" },
            { { pod = "web-1", container = "nginx" }, "0.0015" },
            { { pod = "web-2", container = "app" }, "1.5" },
            { { pod = "db-0", container = "postgres" }, "0.02" },
        }))
        script('sum(mem{namespace="shop",pod=~"db-0|web-1|web-2"}) by (pod,container)', vec({
            { { pod = "web-1", container = "app" }, "104857600" },
            { { pod = "web-1", container = "nginx" }, "7208960" },
            { { pod = "web-2", container = "app" }, "52428800" },
            { { pod = "db-0", container = "postgres" }, "1073741824" },
        }))
        script('sum(rate(cpu{namespace="shop",pod="web-1"}[1m])) by (pod,container)', vec({
            { { pod = "web-1", container = "nginx" }, "0.0015" },
            { { pod = "web-1", container = "app" }, "0.25" },
        }))
        script('sum(mem{namespace="shop",pod="web-1"}) by (pod,container)', vec({
            { { pod = "web-1", container = "nginx" }, "7208960" },
            { { pod = "web-1", container = "app" }, "104857600" },
        }))
        script('sum(rate(cpu{namespace="shop",pod="db-0"}[1m])) by (pod,container)', vec({
            { { pod = "db-0", container = "postgres" }, "0.02" } }))
        script('sum(mem{namespace="shop",pod="db-0"}) by (pod,container)', vec({
            { { pod = "db-0", container = "postgres" }, "1073741824" } }))
        script('sum(rate(node_cpu{node=~"worker-1|worker-2"}[1m])) by (node)', vec({
            { { node = "worker-1" }, "1.1" }, { { node = "worker-2" }, "0.153" } }))
        script('sum(node_mem{node=~"worker-1|worker-2"}) by (node)', vec({
            { { node = "worker-1" }, "2147483648" }, { { node = "worker-2" }, "706686976" } }))
    end)

    teardown(function()
        if front then os.execute("kill " .. front.pid .. " 2>/dev/null") end
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)

    it("kubectl top pod -n shop", function()
        local rc, out, err = kubectl("top pod -n shop")
        assert.equal(0, rc, err)
        helpers.assert_same({
            { "NAME", "CPU(cores)", "MEMORY(bytes)" },
            { "db-0", "20m", "1024Mi" },
            { "web-1", "251m", "106Mi" },
            { "web-2", "1500m", "50Mi" },
        }, rows(out))
    end)

    it("kubectl top pod <name> --containers", function()
        local rc, out, err = kubectl("top pod web-1 -n shop --containers")
        assert.equal(0, rc, err)
        helpers.assert_same({
            { "POD", "NAME", "CPU(cores)", "MEMORY(bytes)" },
            { "web-1", "app", "250m", "100Mi" },
            { "web-1", "nginx", "1m", "6Mi" },
        }, rows(out))
    end)

    it("kubectl top pod -l selects by label", function()
        local rc, out, err = kubectl("top pod -n shop -l app=db")
        assert.equal(0, rc, err)
        helpers.assert_same({ { "NAME", "CPU(cores)", "MEMORY(bytes)" }, { "db-0", "20m", "1024Mi" } },
            rows(out))
    end)

    it("kubectl top node", function()
        local rc, out, err = kubectl("top node")
        assert.equal(0, rc, err)
        -- kubectl before 1.2x (Debian's kubernetes-client is 1.20) heads
        -- the percentages "CPU%" and "MEMORY%"; the values are the same
        out = out:gsub("^(%s*NAME%s+CPU%(cores%)%s+)CPU%%(%s+MEMORY%(bytes%)%s+)MEMORY%%", "%1CPU(%%)%2MEMORY(%%)")
        helpers.assert_same({
            { "NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)" },
            { "worker-1", "1100m", "27%", "2048Mi", "12%" },
            { "worker-2", "153m", "3%", "673Mi", "4%" },
        }, rows(out))
    end)

    it("kubectl top pod for a pod that does not exist fails", function()
        local rc, _, err = kubectl("top pod nope -n shop")
        assert.is_not.equal(0, rc)
        assert.truthy(err:find("not found", 1, true), err)
    end)
end)
