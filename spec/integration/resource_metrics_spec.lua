-- spec/integration/resource_metrics_spec.lua: metrics.k8s.io/v1beta1 end to
-- end: the real binary against the fake Prometheus and fake Kubernetes API.
-- Asserts discovery, the exact PromQL per namespace batch (spec-rules.md
-- §7.2), the exact NodeMetrics/PodMetrics JSON (spec-server.md §2.7, §4.1,
-- §4.4), the partial-data rules (§7.4: missing containers, NaN/negative to
-- 0, Running pods only, failures omitted, decisions #30-#32), label and
-- field selectors, 404s and 400s, and that a warm cache costs no
-- Kubernetes request.
-- Uses: spec/helpers.lua and the two fakes.
-- creationTimestamp is wall clock: checked for RFC 3339 form, then replaced
-- by "NOW"; `timestamp` is the sample time and is compared exactly.

local helpers = require "helpers"

local BASE = "/apis/metrics.k8s.io/v1beta1"
local TS = 1715851267.123          -- 2024-05-16T09:21:07Z
local STAMP = "2024-05-16T09:21:07Z"

local CONFIG = assert(helpers.read_file(helpers.fixture("resource_rules.yaml")))

local OBJECTS = { objects = {
    { resource = "namespaces", items = {
        { name = "default" }, { name = "kube-system" }, { name = "shop" } } },
    { resource = "pods", items = {
        { name = "web-2", namespace = "shop", labels = { app = "web", tier = "front" }, phase = "Running" },
        { name = "web-1", namespace = "shop", labels = { app = "web", tier = "front" }, phase = "Running" },
        { name = "db-0", namespace = "shop", labels = { app = "db" }, phase = "Running" },
        { name = "batch-x", namespace = "shop", labels = { app = "batch" }, phase = "Succeeded" },
        { name = "pending-0", namespace = "shop", labels = { app = "web" }, phase = "Pending" },
        { name = "coredns-1", namespace = "kube-system", labels = { ["k8s-app"] = "kube-dns" }, phase = "Running" },
        { name = "bare", namespace = "default", phase = "Running" },
    } },
    { resource = "nodes", items = {
        { name = "worker-2", labels = { ["kubernetes.io/os"] = "linux", role = "b" } },
        { name = "worker-1", labels = { ["kubernetes.io/os"] = "linux", role = "a" } },
        { name = "win-1", labels = { ["kubernetes.io/os"] = "windows" } },
    } },
} }

local function cpu_q(ns, pods)
    local m = #pods == 1 and ('pod="' .. pods[1] .. '"') or ('pod=~"' .. table.concat(pods, "|") .. '"')
    return 'sum(rate(container_cpu_usage_seconds_total{namespace="' .. ns .. '",' .. m
        .. ',container!=""}[3m])) by (pod,container)'
end

local function mem_q(ns, pods)
    local m = #pods == 1 and ('pod="' .. pods[1] .. '"') or ('pod=~"' .. table.concat(pods, "|") .. '"')
    return 'sum(container_memory_working_set_bytes{namespace="' .. ns .. '",' .. m
        .. ',container!=""}) by (pod,container)'
end

local function node_cpu_q(nodes)
    local m = #nodes == 1 and ('node="' .. nodes[1] .. '"') or ('node=~"' .. table.concat(nodes, "|") .. '"')
    return 'sum(rate(node_cpu_seconds_total{' .. m .. ',mode!="idle"}[3m])) by (node)'
end

local function node_mem_q(nodes)
    local m = #nodes == 1 and ('node="' .. nodes[1] .. '"') or ('node=~"' .. table.concat(nodes, "|") .. '"')
    return 'sum(node_memory_MemTotal_bytes{' .. m .. '} - node_memory_MemAvailable_bytes{'
        .. m .. '}) by (node)'
end

local function sorted(t)
    table.sort(t)
    return t
end

local function s(labels, value, ts)
    return { metric = labels, value = { ts or TS, value } }
end

local function vector(samples)
    return { result = { resultType = "vector", result = samples } }
end

local function status_doc(code, reason, message, details)
    return { kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
        message = message, reason = reason, code = code, details = details }
end

local function norm_obj(o)
    assert.truthy(o.metadata.creationTimestamp:match(helpers.RFC3339), o.metadata.creationTimestamp)
    o.metadata.creationTimestamp = "NOW"
    return o
end

local function norm(doc)
    if doc and doc.items then
        for _, o in ipairs(doc.items) do norm_obj(o) end
    elseif doc and doc.metadata and doc.metadata.creationTimestamp then
        norm_obj(doc)
    end
    return doc
end

local function pod(ns, name, labels, containers, ts)
    return { metadata = { name = name, namespace = ns, creationTimestamp = "NOW", labels = labels },
        timestamp = ts or STAMP, window = "1m30s", containers = containers }
end

local function c(name, cpu, mem)
    return { name = name, usage = { cpu = cpu, memory = mem } }
end

local function list(kind, items)
    return { kind = kind, apiVersion = "metrics.k8s.io/v1beta1", metadata = {}, items = items }
end

describe("resource metrics API", function()
    local prom, kube, adapter

    local function script(query, answer)
        answer.query = query
        prom:control("POST", "/_fake/query", answer)
    end

    local function ask(path)
        prom:clear_requests()
        local status, doc, raw = adapter:get_json(path)
        local queries = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            queries[#queries + 1] = r.params.query
        end
        table.sort(queries)
        return status, norm(doc), raw, queries
    end

    -- The shop namespace's normal answers.
    local function shop_data()
        script(cpu_q("shop", { "db-0", "web-1", "web-2" }), vector({
            s({ pod = "web-1", container = "nginx" }, "0.0015"),
            s({ pod = "web-1", container = "app" }, "0.25", TS + 5),
            s({ pod = "web-2", container = "app" }, "1.5"),
            s({ pod = "db-0", container = "postgres" }, "2"),
        }))
        script(mem_q("shop", { "db-0", "web-1", "web-2" }), vector({
            s({ pod = "web-1", container = "app" }, "104857600", TS - 2),
            s({ pod = "web-1", container = "nginx" }, "7208960"),
            s({ pod = "web-2", container = "app" }, "1000.5"),
            -- db-0 has no memory sample: omitted
        }))
    end

    setup(function()
        prom = helpers.start_prometheus {}
        kube = helpers.start_kube { state = OBJECTS }
        -- (start_adapter points delegated authn/authz at the fake too)
        adapter = helpers.start_adapter {
            config = CONFIG, prometheus = prom, kube = kube, relist = "1s",
            args = { "--prometheus-timeout=2s" },
        }
    end)

    teardown(function()
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)

    before_each(function()
        prom:control("POST", "/_fake/reset")
    end)

    describe("discovery", function()
        it("lists metrics.k8s.io in /apis and serves its APIGroup", function()
            local status, doc = adapter:get_json("/apis")
            assert.equal(200, status)
            local names = {}
            for _, g in ipairs(doc.groups) do names[#names + 1] = g.name end
            helpers.assert_same({ "metrics.k8s.io" }, names)
            status, doc = adapter:get_json("/apis/metrics.k8s.io")
            assert.equal(200, status)
            helpers.assert_same({ kind = "APIGroup", apiVersion = "v1", name = "metrics.k8s.io",
                versions = { { groupVersion = "metrics.k8s.io/v1beta1", version = "v1beta1" } },
                preferredVersion = { groupVersion = "metrics.k8s.io/v1beta1", version = "v1beta1" } }, doc)
        end)

        it("serves the fixed APIResourceList byte for byte", function()
            local status, _, raw = adapter:get_json(BASE)
            assert.equal(200, status)
            assert.equal('{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1",'
                .. '"resources":[{"name":"nodes","singularName":"","namespaced":false,"kind":"NodeMetrics",'
                .. '"verbs":["get","list"]},{"name":"pods","singularName":"","namespaced":true,'
                .. '"kind":"PodMetrics","verbs":["get","list"]}]}\n', raw)
        end)

        it("answers unknown routes and versions with 404", function()
            assert.equal(404, (adapter:get_json(BASE .. "/deployments")))
            assert.equal(404, (adapter:get_json("/apis/metrics.k8s.io/v1beta2/pods")))
            assert.equal(404, (adapter:get_json(BASE .. "/namespaces/shop/pods/web-1/extra")))
        end)
    end)

    describe("pods", function()
        it("lists the Running pods of a namespace with one query per resource", function()
            shop_data()
            local status, doc, raw, queries = ask(BASE .. "/namespaces/shop/pods")
            assert.equal(200, status, raw)
            helpers.assert_same(sorted { cpu_q("shop", { "db-0", "web-1", "web-2" }),
                mem_q("shop", { "db-0", "web-1", "web-2" }) }, queries)
            helpers.assert_same(list("PodMetricsList", {
                pod("shop", "web-1", { app = "web", tier = "front" },
                    { c("app", "250m", "100Mi"), c("nginx", "1m", "7040Ki") },
                    "2024-05-16T09:21:05Z"),
                pod("shop", "web-2", { app = "web", tier = "front" },
                    { c("app", "1500m", "1000500m") }),
            }), doc)
            -- key order of spec-server §2.7 and no kind/apiVersion in items
            local plain = raw:gsub('"creationTimestamp":"[^"]*"', '"creationTimestamp":"NOW"')
            assert.truthy(plain:find('{"metadata":{"name":"web-1","namespace":"shop","creationTimestamp":'
                .. '"NOW","labels":{"app":"web","tier":"front"}},"timestamp":"2024-05-16T09:21:05Z",'
                .. '"window":"1m30s","containers":[{"name":"app","usage":{"cpu":"250m","memory":"100Mi"}}',
                1, true), plain)
        end)

        it("lists every namespace, sorted, one query pair per namespace", function()
            shop_data()
            script(cpu_q("kube-system", { "coredns-1" }), vector({
                s({ pod = "coredns-1", container = "coredns" }, "0.003") }))
            script(mem_q("kube-system", { "coredns-1" }), vector({
                s({ pod = "coredns-1", container = "coredns" }, "16777216") }))
            script(cpu_q("default", { "bare" }), vector({ s({ pod = "bare", container = "c" }, "1") }))
            script(mem_q("default", { "bare" }), vector({ s({ pod = "bare", container = "c" }, "1024") }))
            local status, doc, raw, queries = ask(BASE .. "/pods")
            assert.equal(200, status, raw)
            assert.equal(6, #queries)
            local names = {}
            for _, it in ipairs(doc.items) do
                names[#names + 1] = it.metadata.namespace .. "/" .. it.metadata.name
            end
            helpers.assert_same({ "default/bare", "kube-system/coredns-1", "shop/web-1", "shop/web-2" }, names)
            -- a pod without labels has no "labels" key (omitempty)
            helpers.assert_same(pod("default", "bare", nil, { c("c", "1", "1Ki") }), doc.items[1])
            assert.is_nil(raw:find('"labels":{}', 1, true))
        end)

        it("gets one pod with kind and apiVersion", function()
            script(cpu_q("shop", { "web-2" }), vector({ s({ pod = "web-2", container = "app" }, "0.5") }))
            script(mem_q("shop", { "web-2" }), vector({ s({ pod = "web-2", container = "app" }, "3758096384") }))
            local status, doc, raw, queries = ask(BASE .. "/namespaces/shop/pods/web-2")
            assert.equal(200, status, raw)
            helpers.assert_same(sorted { cpu_q("shop", { "web-2" }), mem_q("shop", { "web-2" }) }, queries)
            local want = pod("shop", "web-2", { app = "web", tier = "front" }, { c("app", "500m", "3584Mi") })
            want.kind, want.apiVersion = "PodMetrics", "metrics.k8s.io/v1beta1"
            helpers.assert_same(want, doc)
            assert.equal('{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1","metadata":',
                raw:sub(1, 70))
        end)

        it("404s a pod that is unknown or not Running, without querying", function()
            for _, name in ipairs({ "nope", "pending-0", "batch-x" }) do
                local status, doc, _, queries = ask(BASE .. "/namespaces/shop/pods/" .. name)
                assert.equal(404, status)
                helpers.assert_same(status_doc(404, "NotFound", 'pods "' .. name .. '" not found',
                    { name = name, kind = "pods" }), doc)
                assert.equal(0, #queries)
            end
            -- the right name in the wrong namespace
            assert.equal(404, (ask(BASE .. "/namespaces/default/pods/web-1")))
        end)

        it("404s a pod without data as podmetrics", function()
            script(cpu_q("shop", { "db-0" }), vector({ s({ pod = "db-0", container = "postgres" }, "2") }))
            local status, doc = ask(BASE .. "/namespaces/shop/pods/db-0")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound",
                'podmetrics.metrics.k8s.io "shop/db-0" not found',
                { name = "shop/db-0", group = "metrics.k8s.io", kind = "podmetrics" }), doc)
        end)

        it("fills a container's missing resource with 0; the last duplicate wins", function()
            script(cpu_q("shop", { "web-1" }), vector({
                s({ pod = "web-1", container = "app" }, "0.1"),
                s({ pod = "web-1", container = "sidecar" }, "0.2"),
                s({ pod = "web-1", container = "app" }, "0.3"),
            }))
            script(mem_q("shop", { "web-1" }), vector({
                s({ pod = "web-1", container = "app" }, "2048"),
                s({ pod = "web-1", container = "logger" }, "4096"),
            }))
            local status, doc = ask(BASE .. "/namespaces/shop/pods/web-1")
            assert.equal(200, status)
            helpers.assert_same({ c("app", "300m", "2Ki"), c("logger", "0", "4Ki"),
                c("sidecar", "200m", "0") }, doc.containers)
        end)

        it("reports NaN and negative values as 0 and saturates +Inf (decisions #30)", function()
            script(cpu_q("shop", { "web-1" }), vector({
                s({ pod = "web-1", container = "a" }, "NaN"),
                s({ pod = "web-1", container = "b" }, "-1.1"),
                s({ pod = "web-1", container = "c" }, "+Inf"),
            }))
            script(mem_q("shop", { "web-1" }), vector({
                s({ pod = "web-1", container = "a" }, "-5"),
                s({ pod = "web-1", container = "b" }, "NaN"),
                s({ pod = "web-1", container = "c" }, "+Inf"),
            }))
            local status, doc = ask(BASE .. "/namespaces/shop/pods/web-1")
            assert.equal(200, status)
            helpers.assert_same({ c("a", "0", "0"), c("b", "0", "0"),
                c("c", "9223372036854775807m", "9223372036854775807m") }, doc.containers)
        end)

        it("omits a namespace whose query fails, keeps the others (decisions #31)", function()
            shop_data()
            script(mem_q("shop", { "db-0", "web-1", "web-2" }),
                { status = 500, body = '{"status":"error","errorType":"internal","error":"boom"}' })
            script(cpu_q("default", { "bare" }), vector({ s({ pod = "bare", container = "c" }, "1") }))
            script(mem_q("default", { "bare" }), vector({ s({ pod = "bare", container = "c" }, "1024") }))
            local status, doc, raw = ask(BASE .. "/pods")
            assert.equal(200, status, raw)
            assert.equal(1, #doc.items)
            assert.equal("bare", doc.items[1].metadata.name)
            -- a non-vector answer is a failure too
            script(cpu_q("shop", { "web-2" }), { result = { resultType = "scalar", result = { TS, "1" } } })
            script(mem_q("shop", { "web-2" }), vector({ s({ pod = "web-2", container = "app" }, "1") }))
            assert.equal(404, (ask(BASE .. "/namespaces/shop/pods/web-2")))
        end)

        it("answers an empty list with [] and no query for an empty namespace", function()
            local status, _, raw, queries = ask(BASE .. "/namespaces/empty/pods")
            assert.equal(200, status)
            assert.equal('{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[]}\n', raw)
            assert.equal(0, #queries)
        end)

        it("filters by labelSelector before querying", function()
            shop_data()
            script(cpu_q("shop", { "web-1", "web-2" }), vector({
                s({ pod = "web-1", container = "app" }, "1") }))
            script(mem_q("shop", { "web-1", "web-2" }), vector({
                s({ pod = "web-1", container = "app" }, "1") }))
            local status, doc, _, queries = ask(BASE .. "/namespaces/shop/pods?labelSelector="
                .. helpers.urlencode("app=web,tier in (front)"))
            assert.equal(200, status)
            helpers.assert_same(sorted { cpu_q("shop", { "web-1", "web-2" }), mem_q("shop", { "web-1", "web-2" }) },
                queries)
            assert.equal(1, #doc.items)
            status, doc, _, queries = ask(BASE .. "/pods?labelSelector=" .. helpers.urlencode("app=none"))
            assert.equal(200, status)
            assert.equal(0, #doc.items)
            assert.equal(0, #queries)
        end)

        it("filters by fieldSelector on metadata.name and metadata.namespace", function()
            shop_data()
            script(cpu_q("shop", { "web-2" }), vector({ s({ pod = "web-2", container = "app" }, "1") }))
            script(mem_q("shop", { "web-2" }), vector({ s({ pod = "web-2", container = "app" }, "1") }))
            local status, doc, _, queries = ask(BASE .. "/pods?fieldSelector="
                .. helpers.urlencode("metadata.name=web-2"))
            assert.equal(200, status)
            helpers.assert_same(sorted { cpu_q("shop", { "web-2" }), mem_q("shop", { "web-2" }) }, queries)
            assert.equal("web-2", doc.items[1].metadata.name)
            status, doc, _, queries = ask(BASE .. "/pods?fieldSelector="
                .. helpers.urlencode("metadata.namespace==shop,metadata.name!=web-2"))
            assert.equal(200, status)
            helpers.assert_same(sorted { cpu_q("shop", { "db-0", "web-1" }), mem_q("shop", { "db-0", "web-1" }) },
                queries)
        end)

        it("rejects unknown fields and bad selectors with 400", function()
            local status, doc, _, queries = ask(BASE .. "/pods?fieldSelector="
                .. helpers.urlencode("spec.nodeName=worker-1"))
            assert.equal(400, status)
            helpers.assert_same(status_doc(400, "BadRequest",
                '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"'),
                doc)
            assert.equal(0, #queries)
            status, doc = ask(BASE .. "/namespaces/shop/pods?fieldSelector=" .. helpers.urlencode("metadata.name"))
            assert.equal(400, status)
            assert.equal("invalid selector: 'metadata.name'; can't understand 'metadata.name'", doc.message)
            status, doc = ask(BASE .. "/pods?labelSelector=" .. helpers.urlencode("app in (a"))
            assert.equal(400, status)
            assert.equal("BadRequest", doc.reason)
            status, doc = ask(BASE .. "/nodes?fieldSelector=" .. helpers.urlencode("status.phase=Running"))
            assert.equal(400, status)
        end)

        it("refuses watch with 405", function()
            local status, doc = ask(BASE .. "/pods?watch=true")
            assert.equal(405, status)
            helpers.assert_same(status_doc(405, "MethodNotAllowed",
                'watch is not supported on resources of kind "pods.metrics.k8s.io"',
                { group = "metrics.k8s.io", kind = "pods" }), doc)
            status, doc = ask(BASE .. "/nodes?watch=1")
            assert.equal(405, status)
            assert.equal('watch is not supported on resources of kind "nodes.metrics.k8s.io"', doc.message)
        end)
    end)

    describe("nodes", function()
        local function node_data()
            script(node_cpu_q({ "win-1", "worker-1", "worker-2" }), vector({
                s({ node = "worker-2" }, "0.153", TS + 1),
                s({ node = "worker-1" }, "1.1"),
                s({ node = "worker-1" }, "9"),      -- PA uses the first sample
                s({ node = "win-1" }, "1"),
            }))
            script(node_mem_q({ "win-1", "worker-1", "worker-2" }), vector({
                s({ node = "worker-1" }, "2147483648", TS + 3),
                s({ node = "worker-2" }, "706686976", TS + 2),
                -- win-1 has no memory: omitted
            }))
        end

        local function node(name, labels, cpu, mem, ts)
            return { metadata = { name = name, creationTimestamp = "NOW", labels = labels },
                timestamp = ts, window = "1m30s", usage = { cpu = cpu, memory = mem } }
        end

        it("lists nodes sorted by name with one query per resource", function()
            node_data()
            local status, doc, raw, queries = ask(BASE .. "/nodes")
            assert.equal(200, status, raw)
            helpers.assert_same(sorted { node_cpu_q({ "win-1", "worker-1", "worker-2" }),
                node_mem_q({ "win-1", "worker-1", "worker-2" }) }, queries)
            helpers.assert_same(list("NodeMetricsList", {
                node("worker-1", { ["kubernetes.io/os"] = "linux", role = "a" }, "1100m", "2Gi", STAMP),
                node("worker-2", { ["kubernetes.io/os"] = "linux", role = "b" }, "153m", "690124Ki",
                    "2024-05-16T09:21:08Z"),
            }), doc)
            assert.truthy(raw:find('"usage":{"cpu":"1100m","memory":"2Gi"}', 1, true))
        end)

        it("gets one node, filters by label and field selectors", function()
            script(node_cpu_q({ "worker-2" }), vector({ s({ node = "worker-2" }, "0.5") }))
            script(node_mem_q({ "worker-2" }), vector({ s({ node = "worker-2" }, "1024") }))
            local status, doc = ask(BASE .. "/nodes/worker-2")
            assert.equal(200, status)
            local want = node("worker-2", { ["kubernetes.io/os"] = "linux", role = "b" }, "500m", "1Ki", STAMP)
            want.kind, want.apiVersion = "NodeMetrics", "metrics.k8s.io/v1beta1"
            helpers.assert_same(want, doc)
            local _, _, _, queries = ask(BASE .. "/nodes?labelSelector=" .. helpers.urlencode("role=b"))
            helpers.assert_same(sorted { node_cpu_q({ "worker-2" }), node_mem_q({ "worker-2" }) }, queries)
            status, doc, _, queries = ask(BASE .. "/nodes?fieldSelector=" .. helpers.urlencode("metadata.name=worker-2"))
            assert.equal(200, status)
            assert.equal(1, #doc.items)
            helpers.assert_same(sorted { node_cpu_q({ "worker-2" }), node_mem_q({ "worker-2" }) }, queries)
            status, doc, _, queries = ask(BASE .. "/nodes?labelSelector=" .. helpers.urlencode("role=zzz"))
            assert.equal(200, status)
            assert.equal(0, #doc.items)
            assert.equal(0, #queries)
        end)

        it("404s unknown nodes and nodes without data", function()
            local status, doc, _, queries = ask(BASE .. "/nodes/nope")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound", 'node "nope" not found',
                { name = "nope", kind = "node" }), doc)
            assert.equal(0, #queries)
            status, doc = ask(BASE .. "/nodes/win-1")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound", 'nodemetrics.metrics.k8s.io "win-1" not found',
                { name = "win-1", group = "metrics.k8s.io", kind = "nodemetrics" }), doc)
        end)

        it("answers an empty list when a node query fails", function()
            node_data()
            script(node_mem_q({ "win-1", "worker-1", "worker-2" }), { status = 503, body = "down" })
            local status, _, raw = ask(BASE .. "/nodes")
            assert.equal(200, status)
            assert.equal('{"kind":"NodeMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[]}\n', raw)
        end)
    end)

    describe("caches", function()
        it("makes no Kubernetes request per call once warm and follows pod changes", function()
            shop_data()
            ask(BASE .. "/pods")
            ask(BASE .. "/nodes")
            -- pod and node LIST/WATCH calls only: delegated auth (TokenReview,
            -- SubjectAccessReview) has its own caches and is not this API's cost
            local function object_requests()
                local n = 0
                for _, r in ipairs(kube:requests()) do
                    local p = r.path or ""
                    if p:find("/pods", 1, true) or p:find("/nodes", 1, true) then n = n + 1 end
                end
                return n
            end
            local before = object_requests()
            assert.is_true(before >= 2)
            for _ = 1, 5 do
                assert.equal(200, (ask(BASE .. "/pods")))
                assert.equal(200, (ask(BASE .. "/nodes")))
                assert.equal(404, (ask(BASE .. "/namespaces/shop/pods/nope")))
            end
            assert.equal(before, object_requests())
            -- a pod that becomes Running appears through the watch
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "pending-0", namespace = "shop", labels = { app = "web" }, phase = "Running" } } })
            local q = cpu_q("shop", { "db-0", "pending-0", "web-1", "web-2" })
            local seen = helpers.wait_until(function()
                local _, _, _, queries = ask(BASE .. "/namespaces/shop/pods")
                for _, x in ipairs(queries) do if x == q then return true end end
            end, helpers.scale(5), 0.1)
            assert.is_true(seen)
        end)
    end)
end)
