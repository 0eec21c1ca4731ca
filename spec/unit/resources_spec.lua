-- RESTMapper priority, label <-> resource both ways, naming expansion.
local resources = require "adapter.resources"
local naming = require "adapter.naming"

local function R(g, v, r, s, k, ns, pref)
    return { group = g, version = v, resource = r, singular = s, kind = k,
        namespaced = ns, preferred = pref ~= false }
end
local LIST = {
    R("", "v1", "pods", "pod", "Pod", true), R("", "v1", "events", "event", "Event", true),
    R("", "v1", "namespaces", "namespace", "Namespace", false),
    R("apps", "v1", "deployments", "deployment", "Deployment", true),
    R("events.k8s.io", "v1", "events", "event", "Event", true),
    R("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true),
    R("extensions", "v1beta1", "ingresses", "ingress", "Ingress", true),
    R("batch", "v1", "jobs", "job", "Job", true),
}

describe("RESTMapper", function()
    local m = resources.new_mapper(LIST)
    local function norm(g, r)
        local gr, err = m:normalize(g, r)
        if not gr then return err end
        return resources.gr_string(gr)
    end
    it("normalises singular, plural and case", function()
        assert.are.equal("pods", norm("", "pod"))
        assert.are.equal("pods", norm("", "Pods"))
        assert.are.equal("deployments.apps", norm("", "deployment"))
        assert.are.equal("events", norm("", "events"))
        assert.are.equal("ingresses.networking.k8s.io", norm("", "ingress"))
        assert.are.equal("jobs.batch", norm("", "job"))
        assert.are.equal("ingresses.networking.k8s.io", norm("networking", "ingress"))
        assert.are.equal("no matches for cheese.io/, Resource=brand", norm("cheese.io", "brand"))
        assert.are.equal("a resource must be present, got: apps/, Resource=", norm("apps", ""))
    end)
end)

describe("template converter", function()
    local m = resources.new_mapper(LIST)
    local function conv(tpl)
        local c = assert(resources.compile_template(tpl))
        return assert(resources.new_converter(c, {}, m))
    end
    it("maps resources to labels", function()
        local cv = conv("kube_<<.Group>>_<<.Resource>>")
        assert.are.equal("kube_apps_deployment", cv:label_for({ group = "apps", resource = "deployments" }))
        assert.are.equal("kube__pod", cv:label_for({ group = "", resource = "pods" }))
        assert.are.equal("kube_networking_k8s_io_ingress",
            cv:label_for({ group = "networking.k8s.io", resource = "ingresses" }))
    end)
    it("round-trips dotted and core groups (decisions 18/19)", function()
        local cv = conv("kube_<<.Group>>_<<.Resource>>")
        local grs = cv:resources_for_series({ "kube_apps_deployment", "kube__pod",
            "kube_networking_k8s_io_ingress", "instance" })
        local got = {}
        for i, gr in ipairs(grs) do got[i] = resources.gr_string(gr) end
        assert.are.same({ "deployments.apps", "pods", "ingresses.networking.k8s.io" }, got)
    end)
    it("escapes literal template text in the reverse regex", function()
        local cv = conv("k.<<.Resource>>")
        assert.are.equal(0, #cv:resources_for_series({ "kxpod" }))
        assert.are.equal(1, #cv:resources_for_series({ "k.pod" }))
    end)
    it("maps job to jobs.batch with <<.Resource>> (kept quirk)", function()
        local grs = conv("<<.Resource>>"):resources_for_series({ "job", "le" })
        assert.are.equal("jobs.batch", resources.gr_string(grs[1]))
        assert.are.equal(1, #grs)
    end)
    it("lets the first override win", function()
        local c = assert(resources.compile_template(""))
        local cv, warns = resources.new_converter(c, {
            { key = "namespace", value = { resource = "namespace" } },
            { key = "kube_namespace", value = { resource = "namespaces" } } }, m)
        assert.are.equal("namespace", cv:label_for({ group = "", resource = "namespaces" }))
        assert.are.equal(1, #warns)
        local _, err = cv:label_for({ group = "", resource = "pods" })
        assert.are.equal("unable to convert resource pods into label: no generic resource label "
            .. "form specified for this metric", err)
    end)
end)

describe("Regexp.Expand", function()
    local function name(matches, as, series)
        local n = assert(naming.compile_name(matches, as))
        return naming.metric_name({ c = { namer = n } }, series)
    end
    it("follows Go semantics", function()
        assert.are.equal("_total", name("_total$", "", "http_requests_total"))
        assert.are.equal("http_requests_per_second", name("^(.*)_total", "${1}_per_second", "http_requests_total"))
        assert.are.equal("", name("^(.*)_total", "$1_x", "a_total"))
        assert.are.equal("a$", name("^(.*)_total", "$1$$", "a_total"))
        assert.are.equal("$-a", name("^(.*)_total", "$-${1}", "a_total"))
        assert.are.equal("b", name("^(?P<x>.*)_total", "${x}", "b_total"))
        assert.are.equal("x${1", name("^(.*)_total", "x${1", "b_total"))
        assert.are.equal("abc", name("", "", "abc"))
    end)
end)
