-- scripts/demo/stack.lua: the demo stack's workload and the files every
-- process of the stack is started from.
--
-- Provides (as a module, `require "demo.stack"` with scripts/?.lua on the
-- path, used by scripts/demo.sh and spec/integration/e2e_prometheus_spec.lua):
--   stack.workload            the demo pods, nodes and queues, and the rate or
--                             value of every series the exporter serves
--   stack.metrics_text(now)   the exporter's /metrics text at time `now`
--   stack.write(dir, ports)   writes into dir: config.yaml (rules/default.yaml
--                             + scripts/demo/external.yaml), prometheus.yml,
--                             objects.json and discovery.json (fake Kubernetes
--                             API state), nginx.conf (the front),
--                             kube.kubeconfig (the fake, for the adapter) and
--                             front.kubeconfig (the front, for kubectl)
-- and as a program: `luajit scripts/demo/stack.lua DIR exporter=P prometheus=P
-- kube=P adapter=P front=P` runs stack.write (from the repository root).
-- Uses: lua-cjson, the repository's rules/default.yaml and
-- spec/fixtures/kube/discovery.json (read relative to the current directory).
-- Must never: bind anything but 127.0.0.1 (every address written here is
-- loopback), or start a process (the callers do, and stop them).

local cjson = require "cjson"

local stack = {}

-- The demo namespace's workload. Counters grow at a constant rate from the
-- exporter's start, gauges are constant: Prometheus' answers are then
-- predictable and the spec can compare the adapter's with them exactly.
stack.workload = {
    namespace = "demo",
    node = "demo-node",
    pods = {
        -- requests/s, CPU cores, memory bytes
        { name = "web-0", app = "web", rps = 2, cpu = 0.05, mem = 50 * 1048576 },
        { name = "web-1", app = "web", rps = 3.5, cpu = 0.125, mem = 60 * 1048576 },
        { name = "web-2", app = "web", rps = 5, cpu = 0.25, mem = 70 * 1048576 },
        { name = "worker-0", app = "worker", rps = 0.5, cpu = 0.5, mem = 128 * 1048576 },
    },
    queues = {
        { name = "orders", ready = 42 },
        { name = "emails", ready = 7 },
    },
    node_cpu = 1.5,                 -- cores
    node_mem = 2 * 1073741824,      -- bytes
}

local function fmt(v)
    if v == math.floor(v) and math.abs(v) < 1e15 then
        return string.format("%d", v)
    end
    return string.format("%.6f", v)
end

-- The Prometheus text exposition at wall-clock time `now` for an exporter
-- started at `t0`.
function stack.metrics_text(now, t0)
    local w = stack.workload
    local dt = math.max(0, now - t0)
    local out = {}
    local function add(s) out[#out + 1] = s end
    add("# HELP http_requests_total HTTP requests served.")
    add("# TYPE http_requests_total counter")
    for _, p in ipairs(w.pods) do
        add(string.format('http_requests_total{namespace="%s",pod="%s",app="%s"} %s',
            w.namespace, p.name, p.app, fmt(p.rps * dt)))
    end
    add("# HELP queue_messages_ready Messages waiting in a queue.")
    add("# TYPE queue_messages_ready gauge")
    for _, q in ipairs(w.queues) do
        add(string.format('queue_messages_ready{namespace="%s",queue="%s"} %s',
            w.namespace, q.name, fmt(q.ready)))
    end
    -- what cAdvisor and the kubelet's resource endpoint would export
    add("# TYPE container_cpu_usage_seconds_total counter")
    for _, p in ipairs(w.pods) do
        add(string.format('container_cpu_usage_seconds_total{namespace="%s",pod="%s",container="%s",node="%s"} %s',
            w.namespace, p.name, p.app, w.node, fmt(p.cpu * dt)))
    end
    add("# TYPE container_memory_working_set_bytes gauge")
    for _, p in ipairs(w.pods) do
        add(string.format('container_memory_working_set_bytes{namespace="%s",pod="%s",container="%s",node="%s"} %s',
            w.namespace, p.name, p.app, w.node, fmt(p.mem)))
    end
    add("# TYPE node_cpu_usage_seconds_total counter")
    add(string.format('node_cpu_usage_seconds_total{node="%s"} %s', w.node, fmt(w.node_cpu * dt)))
    add("# TYPE node_memory_working_set_bytes gauge")
    add(string.format('node_memory_working_set_bytes{node="%s"} %s', w.node, fmt(w.node_mem)))
    return table.concat(out, "\n") .. "\n"
end

local function read(path)
    local f = assert(io.open(path, "rb"), "cannot read " .. path)
    local s = f:read("*a")
    f:close()
    return s
end

local function write(path, text)
    local f = assert(io.open(path, "wb"), "cannot write " .. path)
    f:write(text)
    f:close()
    return path
end

-- The fake Kubernetes API's objects: the demo namespace, its pods (Running,
-- so the metrics.k8s.io pod cache sees them) and service, and the node.
function stack.objects()
    local w = stack.workload
    local pods = {}
    for _, p in ipairs(w.pods) do
        pods[#pods + 1] = { name = p.name, namespace = w.namespace,
            labels = { app = p.app }, phase = "Running" }
    end
    return { objects = {
        { resource = "namespaces", items = {
            { name = w.namespace, labels = { ["kubernetes.io/metadata.name"] = w.namespace } },
            { name = "default", labels = { ["kubernetes.io/metadata.name"] = "default" } },
            { name = "kube-system", labels = { ["kubernetes.io/metadata.name"] = "kube-system" } },
        } },
        { resource = "pods", items = pods },
        { resource = "services", items = {
            { name = "web", namespace = w.namespace, labels = { app = "web" } },
        } },
        { resource = "nodes", items = {
            { name = w.node, labels = { ["kubernetes.io/hostname"] = w.node,
                ["kubernetes.io/os"] = "linux" },
              -- kubectl top node divides usage by allocatable for its % columns
              status = { capacity = { cpu = "4", memory = "8Gi", pods = "110" },
                  allocatable = { cpu = "4", memory = "8Gi", pods = "110" } } },
        } },
    } }
end

-- The metrics groups the aggregator would add to /apis. kubectl top checks
-- that metrics.k8s.io is listed before it asks for metrics; the front sends
-- every /apis/<group>/... of these groups to the adapter.
stack.metrics_groups = {
    { name = "custom.metrics.k8s.io", versions = { "v1beta2", "v1beta1" } },
    { name = "external.metrics.k8s.io", versions = { "v1beta1" } },
    { name = "metrics.k8s.io", versions = { "v1beta1" } },
}

-- spec/fixtures/kube/discovery.json plus the metrics groups. Their
-- group-version documents in the fake are empty lists: only the front's
-- clients (kubectl) see these groups' real discovery, from the adapter.
function stack.discovery()
    local d = cjson.decode(read("spec/fixtures/kube/discovery.json"))
    for _, g in ipairs(stack.metrics_groups) do
        local versions = {}
        for i, v in ipairs(g.versions) do
            versions[i] = { groupVersion = g.name .. "/" .. v, version = v }
            d.resources[g.name .. "/" .. v] = { kind = "APIResourceList", apiVersion = "v1",
                groupVersion = g.name .. "/" .. v, resources = setmetatable({}, cjson.array_mt) }
        end
        table.insert(d.groups.groups, { name = g.name, versions = versions,
            preferredVersion = versions[1] })
    end
    return d
end

-- The adapter's config: the default rules and resource rules, plus the
-- demo's external rule for the queue gauge.
function stack.config()
    return read("rules/default.yaml") .. "\n" .. read("scripts/demo/external.yaml")
end

function stack.prometheus_yml(dir, ports)
    return table.concat({
        "# written by scripts/demo/stack.lua",
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        -- every query Prometheus runs, with its evaluation time: the e2e spec
        -- re-runs the adapter's queries at the same instant
        "  query_log_file: " .. dir .. "/query.log",
        "scrape_configs:",
        "- job_name: demo-workload",
        "  honor_labels: true",
        "  static_configs:",
        "  - targets: ['127.0.0.1:" .. ports.exporter .. "']",
        "",
    }, "\n")
end

-- nginx as the aggregator: /apis/<metrics group>... to the adapter over
-- HTTPS (its self-signed certificate is not verified, as with the
-- manifests' insecureSkipTLSVerify), everything else to the fake API.
function stack.nginx_conf(dir, ports)
    local groups = {}
    for _, g in ipairs(stack.metrics_groups) do
        groups[#groups + 1] = (g.name:gsub("%.", "\\."))
    end
    return table.concat({
        "# written by scripts/demo/stack.lua: the demo's stand-in aggregator",
        "worker_processes 1;",
        "daemon off;",
        "pid " .. dir .. "/nginx.pid;",
        "error_log " .. dir .. "/nginx-error.log warn;",
        "events { worker_connections 256; }",
        "http {",
        "    access_log " .. dir .. "/nginx-access.log;",
        "    client_body_temp_path " .. dir .. "/nginx-tmp;",
        "    proxy_temp_path " .. dir .. "/nginx-tmp;",
        "    fastcgi_temp_path " .. dir .. "/nginx-tmp;",
        "    uwsgi_temp_path " .. dir .. "/nginx-tmp;",
        "    scgi_temp_path " .. dir .. "/nginx-tmp;",
        "    proxy_http_version 1.1;",
        "    proxy_buffering off;",
        "    proxy_read_timeout 60s;",
        "    server {",
        "        listen 127.0.0.1:" .. ports.front .. ";",
        "        location ~ ^/apis/(" .. table.concat(groups, "|") .. ")(/|$) {",
        "            proxy_pass https://127.0.0.1:" .. ports.adapter .. ";",
        "            proxy_ssl_verify off;",
        -- the aggregator strips the client's credentials and says who the
        -- user is in X-Remote-* headers
        "            proxy_set_header Authorization \"\";",
        "            proxy_set_header X-Remote-User demo-user;",
        "            proxy_set_header X-Remote-Group system:authenticated;",
        "        }",
        "        location / {",
        "            proxy_pass http://127.0.0.1:" .. ports.kube .. ";",
        "        }",
        "    }",
        "}",
        "",
    }, "\n")
end

function stack.kubeconfig(server, namespace)
    return table.concat({
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: demo",
        "  cluster:",
        "    server: " .. server,
        "users:",
        "- name: demo",
        "  user:",
        "    token: demo-token",
        "contexts:",
        "- name: demo",
        "  context:",
        "    cluster: demo",
        "    user: demo",
        "    namespace: " .. namespace,
        "current-context: demo",
        "",
    }, "\n")
end

-- ports = { exporter, prometheus, kube, adapter, front } (numbers).
function stack.write(dir, ports)
    write(dir .. "/config.yaml", stack.config())
    write(dir .. "/prometheus.yml", stack.prometheus_yml(dir, ports))
    write(dir .. "/objects.json", cjson.encode(stack.objects()))
    write(dir .. "/discovery.json", cjson.encode(stack.discovery()))
    write(dir .. "/nginx.conf", stack.nginx_conf(dir, ports))
    os.execute("mkdir -p '" .. dir .. "/nginx-tmp'")
    write(dir .. "/kube.kubeconfig",
        stack.kubeconfig("http://127.0.0.1:" .. ports.kube, stack.workload.namespace))
    write(dir .. "/front.kubeconfig",
        stack.kubeconfig("http://127.0.0.1:" .. ports.front, stack.workload.namespace))
end

-- Program mode: luajit scripts/demo/stack.lua DIR name=port...
if arg and arg[0] and arg[0]:match("stack%.lua$") and not package.loaded["demo.stack"] then
    local dir = assert(arg[1], "usage: stack.lua DIR exporter=P prometheus=P kube=P adapter=P front=P")
    local ports = {}
    for i = 2, #arg do
        local k, v = arg[i]:match("^(%w+)=(%d+)$")
        assert(k, "bad argument " .. arg[i])
        ports[k] = tonumber(v)
    end
    for _, k in ipairs({ "exporter", "prometheus", "kube", "adapter", "front" }) do
        assert(ports[k], "missing " .. k .. "=PORT")
    end
    stack.write(dir, ports)
end

return stack
