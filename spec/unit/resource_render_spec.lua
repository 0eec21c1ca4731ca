-- Resource metrics queries (spec-rules.md §7.2): eng:render_resource and
-- eng:resource_labels, byte for byte with PA for the deploy/manifests rules
-- and config-gen's rules, plus the error cases the C side degrades on.
local Y = require "unit.yamltree"
local engine = require "adapter.engine"

local function R(g, v, r, s, k, ns)
    return { group = g, version = v, resource = r, singular = s, kind = k,
        namespaced = ns, preferred = true }
end

local MAPPER = {
    R("", "v1", "pods", "pod", "Pod", true), R("", "v1", "nodes", "node", "Node", false),
    R("", "v1", "namespaces", "namespace", "Namespace", false),
}

local function load(text)
    local eng, errs, warns = engine.new(Y.parse(text), { file = "t.yaml" })
    assert(eng, errs and errs[1] and (errs[1].path .. ": " .. errs[1].msg))
    assert(eng:set_resources(MAPPER))
    return eng, warns
end

-- deploy/manifests' resourceRules (spec-rules.md §7.2 example).
local MANIFESTS = [[
resourceRules:
  cpu:
    containerQuery: |
      sum by (<<.GroupBy>>) (
        irate (
            container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!="",pod!=""}[4m]
        )
      )
    nodeQuery: |
      sum by (<<.GroupBy>>) (
        irate(
            node_cpu_usage_seconds_total{<<.LabelMatchers>>}[4m]
        )
      )
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: |
      sum by (<<.GroupBy>>) (
        container_memory_working_set_bytes{<<.LabelMatchers>>,container!="",pod!=""}
      )
    nodeQuery: |
      sum by (<<.GroupBy>>) (
        node_memory_working_set_bytes{<<.LabelMatchers>>}
      )
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 5m
]]

-- config-gen's resource rules (instance -> node, template for the rest).
local CONFIG_GEN = [[
resourceRules:
  cpu:
    containerQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
    nodeQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>, id='/'}[5m])) by (<<.GroupBy>>)
    resources:
      overrides:
        instance: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)
    nodeQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id='/'}) by (<<.GroupBy>>)
    resources:
      overrides:
        instance: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 1m
]]

describe("render_resource with the deploy/manifests rules", function()
    local eng = load(MANIFESTS)

    it("renders the pod CPU query of spec-rules §7.2 byte for byte", function()
        local q, err = eng:render_resource({ resource = "cpu", namespace = "monitoring",
            names = { "a", "b" } })
        assert.is_nil(err)
        assert.equal('sum by (pod,container) (\n  irate (\n      container_cpu_usage_seconds_total'
            .. '{namespace="monitoring",pod=~"a|b",container!="",pod!=""}[4m]\n  )\n)\n', q)
    end)

    it("uses = for a single pod and keeps the names' order", function()
        assert.equal('sum by (pod,container) (\n  container_memory_working_set_bytes'
            .. '{namespace="ns1",pod="only",container!="",pod!=""}\n)\n',
            eng:render_resource({ resource = "memory", namespace = "ns1", names = { "only" } }))
        local q = eng:render_resource({ resource = "memory", namespace = "ns1",
            names = { "z", "a", "m" } })
        assert.truthy(q:find('pod=~"z|a|m"', 1, true), q)
    end)

    it("renders the node CPU query without a namespace matcher", function()
        assert.equal('sum by (node) (\n  irate(\n      node_cpu_usage_seconds_total{node=~"n1|n2"}'
            .. '[4m]\n  )\n)\n',
            eng:render_resource({ resource = "cpu", node = true, names = { "n1", "n2" } }))
        assert.equal('sum by (node) (\n  node_memory_working_set_bytes{node="n1"}\n)\n',
            eng:render_resource({ resource = "memory", node = true, names = { "n1" } }))
    end)

    it("reports the labels and the window", function()
        local l = eng:resource_labels("cpu")
        assert.same({ pod = "pod", namespace = "namespace", node = "node",
            container = "container", window_ms = 300000 }, l)
    end)
end)

describe("render_resource with config-gen's rules", function()
    local eng = load(CONFIG_GEN)

    it("maps nodes to instance (spec-rules §7.2)", function()
        assert.equal([[sum(rate(container_cpu_usage_seconds_total{instance=~"n1|n2", id='/'}[5m])) by (instance)]],
            eng:render_resource({ resource = "cpu", node = true, names = { "n1", "n2" } }))
        assert.equal("instance", eng:resource_labels("memory").node)
        assert.equal(60000, eng:resource_labels("memory").window_ms)
    end)

    it("renders the container query with namespace first", function()
        assert.equal('sum(container_memory_working_set_bytes{namespace="default",pod="p"}) by (pod,container)',
            eng:render_resource({ resource = "memory", namespace = "default", names = { "p" } }))
    end)
end)

describe("render_resource errors and quirks", function()
    it("groups by \"pod,\" when containerLabel is empty (PA's quirk, warned at load)", function()
        local eng, warns = load([[
resourceRules:
  cpu:
    containerQuery: 'sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(y{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {template: '<<.Resource>>'}
  memory:
    containerQuery: 'sum(m{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(n{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {template: '<<.Resource>>'}
    containerLabel: c
]])
        assert.equal('sum(x{namespace="d",pod="p"}) by (pod,)',
            eng:render_resource({ resource = "cpu", namespace = "d", names = { "p" } }))
        assert.equal('sum(m{namespace="d",pod="p"}) by (pod,c)',
            eng:render_resource({ resource = "memory", namespace = "d", names = { "p" } }))
        local found = false
        for _, w in ipairs(warns) do
            if w.path == "resourceRules.cpu.containerLabel" then found = true end
        end
        assert.is_true(found)
        assert.equal(0, eng:resource_labels("cpu").window_ms)
    end)

    it("fails (500) on an empty query and on an unmapped resource label", function()
        local eng = load([[
resourceRules:
  cpu:
    nodeQuery: 'sum(y{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
    containerLabel: container
  memory: {}
]])
        local q, msg, status = eng:render_resource({ resource = "cpu", namespace = "d",
            names = { "p" } })
        assert.is_nil(q)
        assert.equal(500, status)
        assert.truthy(msg:find("unable to find label for resource", 1, true), msg)
        q, msg, status = eng:render_resource({ resource = "memory", node = true, names = { "n" } })
        assert.is_nil(q)
        assert.equal(500, status)
        assert.truthy(msg:find("unable to find label for resource nodes", 1, true), msg)
        assert.equal('sum(y{node="n"}) by (node)',
            eng:render_resource({ resource = "cpu", node = true, names = { "n" } }))
        local l = eng:resource_labels("cpu")
        assert.equal("node", l.node)
        assert.is_nil(l.pod)
    end)

    it("fails when the API is not configured", function()
        local eng = load("rules: []\n")
        assert.is_false(eng:has("resource"))
        local q, msg = eng:render_resource({ resource = "cpu", names = { "p" } })
        assert.is_nil(q)
        assert.truthy(msg)
        assert.is_nil(eng:resource_labels("cpu"))
    end)
end)
