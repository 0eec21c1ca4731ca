-- spec/fakes_spec.lua: proves the test fakes behave as the other specs rely
-- on: fake Prometheus scripting, recording, prefixes, delays and hangs that
-- do not block other connections; fake kube discovery, LIST with selectors
-- and pagination, metadata-only lists, WATCH events and 410 expiry.
-- Uses: spec/helpers.lua, lua-socket, lua-cjson. Needs no adapter binary.

local helpers = require "helpers"
local cjson = require "cjson"
local socket = require "socket"

local function get_json(url, headers)
    local code, body = helpers.http("GET", url, nil, headers)
    local ok, doc = pcall(cjson.decode, body or "")
    return code, ok and doc or nil, body
end

local function post_form(url, form)
    local code, body = helpers.http("POST", url, form,
        { ["Content-Type"] = "application/x-www-form-urlencoded" })
    return code, cjson.decode(body)
end

describe("fake Prometheus", function()
    local prom

    setup(function() prom = helpers.start_prometheus() end)
    teardown(function() prom:stop(); helpers.cleanup() end)
    before_each(function() prom:control("POST", "/_fake/reset") end)

    it("answers an unknown query with an empty vector", function()
        local code, doc, raw = get_json(prom:url("/api/v1/query?query=up"))
        assert.equal(200, code)
        assert.equal("success", doc.status)
        assert.equal("vector", doc.data.resultType)
        assert.truthy(raw:find('"result":[]', 1, true))
    end)

    it("serves scripted series by exact match[] for GET and POST", function()
        local sq = '{__name__=~"^container_.*",namespace!=""}'
        prom:control("POST", "/_fake/series", { match = sq, data = {
            { __name__ = "container_cpu", namespace = "a", pod = "p" },
            { __name__ = "container_mem", namespace = "b", pod = "q" } } })
        local code, doc = get_json(prom:url("/api/v1/series?" ..
            helpers.build_query({ ["match[]"] = sq, start = "1715851267.1" })))
        assert.equal(200, code)
        assert.equal(2, #doc.data)
        assert.equal("container_mem", doc.data[2].__name__)
        local pcode, pdoc = post_form(prom:url("/api/v1/series"),
            helpers.build_query({ ["match[]"] = sq }))
        assert.equal(200, pcode)
        assert.equal(2, #pdoc.data)
        local _, _, raw = get_json(prom:url("/api/v1/series?match%5B%5D=other"))
        assert.equal('{"status":"success","data":[]}', raw)
    end)

    it("unions several match[] and records them as an array", function()
        prom:control("POST", "/_fake/series", { match = "a", data = { { __name__ = "x" } } })
        prom:control("POST", "/_fake/series", { match = "b", data = { { __name__ = "y" } } })
        local _, doc = get_json(prom:url("/api/v1/series?match%5B%5D=a&match%5B%5D=b"))
        assert.equal(2, #doc.data)
        local reqs = prom:requests("/api/v1/series")
        assert.equal(1, #reqs)
        helpers.assert_same({ "a", "b" }, reqs[1].params["match[]"])
        assert.equal("match%5B%5D=a&match%5B%5D=b", reqs[1].query)
    end)

    it("answers scripted queries by exact text, then by pattern, then default", function()
        prom:control("POST", "/_fake/query", { query = 'sum(x{a="1"})', result = {
            resultType = "vector", result = { { metric = { pod = "p1" }, value = { 1, "0.5" } } } } })
        prom:control("POST", "/_fake/query", { pattern = "^count", result = {
            resultType = "scalar", result = { 1, "7" } } })
        prom:control("POST", "/_fake/default", { result = { resultType = "matrix", result = {} } })
        local _, d1 = get_json(prom:url("/api/v1/query?" .. helpers.build_query({ query = 'sum(x{a="1"})' })))
        assert.equal("p1", d1.data.result[1].metric.pod)
        assert.equal("0.5", d1.data.result[1].value[2])
        local _, d2 = post_form(prom:url("/api/v1/query"), "query=count(up)&time=1")
        assert.equal("scalar", d2.data.resultType)
        assert.equal("7", d2.data.result[2])
        local _, d3 = get_json(prom:url("/api/v1/query?query=other"))
        assert.equal("matrix", d3.data.resultType)
    end)

    it("serves raw status/body overrides", function()
        prom:control("POST", "/_fake/query", { query = "bad", status = 500, body = "boom",
            content_type = "text/plain" })
        local code, body, hs = helpers.http("GET", prom:url("/api/v1/query?query=bad"))
        assert.equal(500, code)
        assert.equal("boom", body)
        assert.equal("text/plain", hs["content-type"])
    end)

    it("records method, raw query, decoded params, headers and body", function()
        post_form(prom:url("/api/v1/query?extra=1"), "query=up+%2B+1&time=12.5&timeout=")
        local r = prom:requests("/api/v1/query")[1]
        assert.equal("POST", r.method)
        assert.equal("extra=1", r.query)
        assert.equal("up + 1", r.params.query)
        assert.equal("12.5", r.params.time)
        assert.equal("", r.params.timeout)
        assert.equal("1", r.params.extra)
        assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
        assert.equal("query=up+%2B+1&time=12.5&timeout=", r.body)
        assert.is_number(r.time)
        prom:clear_requests()
        assert.equal(0, #prom:requests())
    end)

    it("delays an answer without blocking other connections", function()
        prom:control("POST", "/_fake/query", { query = "slow", delay = 0.6,
            result = { resultType = "vector", result = {} } })
        local s = socket.connect("127.0.0.1", prom.port)
        local t0 = helpers.now()
        s:send("GET /api/v1/query?query=slow HTTP/1.1\r\nHost: x\r\n\r\n")
        local code = helpers.http("GET", prom:url("/api/v1/query?query=fast"))
        assert.equal(200, code)
        assert.is_true(helpers.now() - t0 < 0.5)
        s:settimeout(3)
        local line = s:receive("*l")
        assert.equal("HTTP/1.1 200 OK", line)
        assert.is_true(helpers.now() - t0 >= 0.55)
        s:close()
    end)

    it("holds a hung request open while serving others", function()
        prom:control("POST", "/_fake/query", { query = "hang", hang = true })
        local s = socket.connect("127.0.0.1", prom.port)
        s:send("GET /api/v1/query?query=hang HTTP/1.1\r\nHost: x\r\n\r\n")
        local t0 = helpers.now()
        for _ = 1, 5 do
            assert.equal(200, (helpers.http("GET", prom:url("/api/v1/query?query=up"))))
        end
        assert.is_true(helpers.now() - t0 < 1)
        s:settimeout(0.3)
        local line, err = s:receive("*l")
        assert.is_nil(line)
        assert.equal("timeout", err)
        s:close()
    end)

    it("keeps a connection alive across requests", function()
        local s = socket.connect("127.0.0.1", prom.port)
        s:settimeout(3)
        for _ = 1, 2 do
            s:send("GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\n")
            assert.equal("HTTP/1.1 200 OK", s:receive("*l"))
            local len
            repeat
                local l = s:receive("*l")
                len = len or tonumber(l:match("^Content%-Length: (%d+)"))
            until l == ""
            assert.truthy(s:receive(len):find("vector"))
        end
        s:close()
    end)

    it("resets to the initial state", function()
        prom:control("POST", "/_fake/query", { query = "up", status = 503, body = "x" })
        prom:control("POST", "/_fake/reset")
        assert.equal(200, (helpers.http("GET", prom:url("/api/v1/query?query=up"))))
    end)
end)

describe("fake Prometheus with a path prefix and a state file", function()
    local prom

    setup(function()
        prom = helpers.start_prometheus { prefix = "/prom", state = {
            series = { { match = "up", data = { { __name__ = "up", job = "a" } } } },
            queries = { { query = "up", result = { resultType = "vector", result = {
                { metric = { job = "a" }, value = { 1, "1" } } } } } },
        } }
    end)
    teardown(function() prom:stop(); helpers.cleanup() end)

    it("serves the API only under the prefix", function()
        local code, doc = get_json(prom:url("/api/v1/query?query=up"))
        assert.equal(200, code)
        assert.equal("a", doc.data.result[1].metric.job)
        assert.truthy(prom:url():find("/prom$"))
        assert.equal(404, (helpers.http("GET", prom:base() .. "/api/v1/query?query=up")))
        local reqs = prom:requests()
        assert.equal("/prom/api/v1/query", reqs[1].path)
        assert.equal("/api/v1/query", reqs[1].api_path)
        assert.equal(1, #prom:requests("/api/v1/query"))
    end)

    it("loads series from the state file", function()
        local _, doc = get_json(prom:url("/api/v1/series?match%5B%5D=up"))
        assert.equal("a", doc.data[1].job)
    end)
end)

describe("fake kube", function()
    local kube
    local PARTIAL = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json"

    local function pods(ns, sel, field, extra)
        local q = {}
        if sel then q.labelSelector = sel end
        if field then q.fieldSelector = field end
        for k, v in pairs(extra or {}) do q[k] = v end
        local path = ns and ("/api/v1/namespaces/" .. ns .. "/pods") or "/api/v1/pods"
        local qs = helpers.build_query(q)
        return get_json(kube:url(path .. (qs ~= "" and ("?" .. qs) or "")))
    end

    local function names(doc)
        local out = {}
        for _, it in ipairs(doc.items) do out[#out + 1] = it.metadata.name end
        return table.concat(out, ",")
    end

    setup(function() kube = helpers.start_kube() end)
    teardown(function() kube:stop(); helpers.cleanup() end)
    before_each(function()
        kube:control("POST", "/_fake/reset")
        kube:control("POST", "/_fake/objects", { resource = "pods", items = {
            { name = "web-1", namespace = "default", labels = { app = "web", tier = "fe" }, phase = "Running" },
            { name = "web-2", namespace = "default", labels = { app = "web" }, phase = "Pending" },
            { name = "db-1", namespace = "default", labels = { app = "db", tier = "be" }, phase = "Running" },
            { name = "sys-1", namespace = "kube-system", labels = { app = "dns" }, phase = "Running" },
        } })
    end)

    it("serves discovery from the fixture", function()
        local _, api = get_json(kube:url("/api"))
        assert.equal("APIVersions", api.kind)
        helpers.assert_same({ "v1" }, api.versions)
        local _, core = get_json(kube:url("/api/v1"))
        local byname = {}
        for _, r in ipairs(core.resources) do byname[r.name] = r end
        assert.equal("pod", byname.pods.singularName)
        assert.is_true(byname.pods.namespaced)
        assert.is_false(byname.nodes.namespaced)
        assert.equal("", byname["pods/log"].singularName)
        local _, apis = get_json(kube:url("/apis"))
        assert.equal("APIGroupList", apis.kind)
        assert.equal("apps", apis.groups[1].name)
        local _, grp = get_json(kube:url("/apis/apps"))
        assert.equal("APIGroup", grp.kind)
        assert.equal("apps/v1", grp.preferredVersion.groupVersion)
        local _, sc = get_json(kube:url("/apis/storage.k8s.io/v1"))
        for _, r in ipairs(sc.resources) do
            if r.name == "storageclasses" then assert.is_false(r.namespaced) end
        end
        assert.equal(404, (get_json(kube:url("/apis/nope.io/v1"))))
    end)

    it("lists by namespace and cluster-wide, sorted by namespace/name", function()
        local code, doc = pods("default")
        assert.equal(200, code)
        assert.equal("PodList", doc.kind)
        assert.equal("db-1,web-1,web-2", names(doc))
        local _, all = pods(nil)
        assert.equal("db-1,web-1,web-2,sys-1", names(all))
        assert.equal("Running", all.items[1].status.phase)
    end)

    it("implements label selector semantics", function()
        local cases = {
            { "app=web", "web-1,web-2" },
            { "app==web", "web-1,web-2" },
            { "app!=web", "db-1" },
            { "app in (db, web)", "db-1,web-1,web-2" },
            { "app notin (web)", "db-1" },
            { "tier", "db-1,web-1" },
            { "!tier", "web-2" },
            { "tier!=fe", "db-1,web-2" },
            { "app=web,tier=fe", "web-1" },
            { "tier notin (be)", "web-1,web-2" },
        }
        for _, c in ipairs(cases) do
            local code, doc = pods("default", c[1])
            assert.equal(200, code, c[1])
            assert.equal(c[2], names(doc), c[1])
        end
    end)

    it("rejects a bad label selector with a 400 Status", function()
        local code, doc = pods("default", "app in")
        assert.equal(400, code)
        assert.equal("Status", doc.kind)
        assert.equal("BadRequest", doc.reason)
        assert.equal("unable to parse requirement: found '' expected: '('", doc.message)
        assert.equal(400, (pods("default", "app=(x")))
    end)

    it("implements field selectors", function()
        local _, d1 = pods(nil, nil, "status.phase=Running")
        assert.equal("db-1,web-1,sys-1", names(d1))
        local _, d2 = pods(nil, nil, "metadata.name=web-2")
        assert.equal("web-2", names(d2))
        local _, d3 = pods(nil, nil, "metadata.namespace!=default,status.phase==Running")
        assert.equal("sys-1", names(d3))
        assert.equal(400, (pods(nil, nil, "spec.nodeName=x")))
    end)

    it("paginates with limit and continue", function()
        local _, p1 = pods(nil, nil, nil, { limit = "3" })
        assert.equal("db-1,web-1,web-2", names(p1))
        assert.equal(1, p1.metadata.remainingItemCount)
        local _, p2 = pods(nil, nil, nil, { limit = "3", ["continue"] = p1.metadata["continue"] })
        assert.equal("sys-1", names(p2))
        assert.is_nil(p2.metadata["continue"])
        assert.equal(400, (pods(nil, nil, nil, { ["continue"] = "garbage" })))
    end)

    it("returns PartialObjectMetadataList when asked", function()
        local _, doc = get_json(kube:url("/api/v1/namespaces/default/pods?labelSelector=app%3Ddb"),
            { Accept = PARTIAL })
        assert.equal("PartialObjectMetadataList", doc.kind)
        assert.equal("meta.k8s.io/v1", doc.apiVersion)
        assert.equal("PartialObjectMetadata", doc.items[1].kind)
        assert.equal("db-1", doc.items[1].metadata.name)
        assert.equal("default", doc.items[1].metadata.namespace)
        assert.equal("db", doc.items[1].metadata.labels.app)
        assert.is_string(doc.metadata.resourceVersion)
    end)

    it("serves cluster-scoped and group resources, 404 for wrong scope", function()
        kube:control("POST", "/_fake/objects", { resource = "nodes", items = {
            { name = "n1", labels = { ["kubernetes.io/os"] = "linux" } }, { name = "n2" } } })
        kube:control("POST", "/_fake/objects", { resource = "deployments", group = "apps",
            version = "v1", items = { { name = "d1", namespace = "prod" } } })
        local _, nodes = get_json(kube:url("/api/v1/nodes?labelSelector=kubernetes.io%2Fos%3Dlinux"))
        assert.equal("NodeList", nodes.kind)
        assert.equal("n1", names(nodes))
        assert.is_nil(nodes.items[1].metadata.namespace)
        assert.equal(404, (get_json(kube:url("/api/v1/namespaces/default/nodes"))))
        local _, deps = get_json(kube:url("/apis/apps/v1/namespaces/prod/deployments"))
        assert.equal("DeploymentList", deps.kind)
        assert.equal("apps/v1", deps.apiVersion)
        assert.equal("d1", names(deps))
        local code, one = get_json(kube:url("/api/v1/namespaces/default/pods/web-1"))
        assert.equal(200, code)
        assert.equal("Pod", one.kind)
        assert.equal(404, (get_json(kube:url("/api/v1/namespaces/default/pods/nope"))))
    end)

    it("records requests with Accept headers and params", function()
        kube:clear_requests()
        get_json(kube:url("/api/v1/pods?labelSelector=app%3Dweb"), { Accept = PARTIAL })
        local r = kube:requests()
        assert.equal(1, #r)
        assert.equal("/api/v1/pods", r[1].path)
        assert.equal("app=web", r[1].params.labelSelector)
        assert.equal(PARTIAL, r[1].headers.accept)
    end)

    it("injects failures per path, for a count", function()
        kube:control("POST", "/_fake/fail", { path = "/api/v1/pods", status = 503, count = 1 })
        assert.equal(503, (pods(nil)))
        assert.equal(200, (pods(nil)))
        kube:control("POST", "/_fake/fail", { pattern = "^/apis/apps", hang = true })
        local s = socket.connect("127.0.0.1", kube.port)
        s:send("GET /apis/apps/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.equal(200, (pods(nil)))
        s:settimeout(0.2)
        assert.is_nil((s:receive("*l")))
        s:close()
        kube:control("DELETE", "/_fake/fail")
        assert.equal(200, (get_json(kube:url("/apis/apps/v1"))))
    end)

    describe("watch", function()
        local function wait_watches(n)
            return helpers.wait_until(function()
                return kube:control("GET", "/_fake/watches").count == n
            end, 3)
        end

        it("starts with ADDED for current objects, then streams changes", function()
            local st = helpers.open_stream(kube:url(
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion=0&labelSelector=app%3Dweb"))
            assert.equal(200, st.status)
            assert.truthy(st.headers["transfer-encoding"]:find("chunked"))
            local e1, e2 = st:next_event(), st:next_event()
            assert.equal("ADDED", e1.type)
            assert.equal("web-1", e1.object.metadata.name)
            assert.equal("Pod", e1.object.kind)
            assert.equal("web-2", e2.object.metadata.name)
            assert.truthy(wait_watches(1))
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "web-3", namespace = "default", labels = { app = "web" } } } })
            local e3 = st:next_event()
            assert.equal("ADDED", e3.type)
            assert.equal("web-3", e3.object.metadata.name)
            -- a label change that leaves the selector is a DELETED for this watch
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "web-2", namespace = "default", labels = { app = "other" } } } })
            local e4 = st:next_event()
            assert.equal("DELETED", e4.type)
            assert.equal("web-2", e4.object.metadata.name)
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "web-1", namespace = "default", labels = { app = "web", v = "2" } } } })
            local e5 = st:next_event()
            assert.equal("MODIFIED", e5.type)
            assert.equal("2", e5.object.metadata.labels.v)
            kube:control("POST", "/_fake/delete", { resource = "pods", items = {
                { name = "web-3", namespace = "default" } } })
            local e6 = st:next_event()
            assert.equal("DELETED", e6.type)
            assert.equal("web-3", e6.object.metadata.name)
            -- another namespace does not reach this watch
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "web-9", namespace = "other", labels = { app = "web" } } } })
            assert.is_nil((st:next_event(0.3)))
            st:close()
            assert.truthy(wait_watches(0))
        end)

        it("replays events after a resourceVersion, metadata-only when asked", function()
            local _, list = pods("default")
            local rv = list.metadata.resourceVersion
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "new-1", namespace = "default" } } })
            local st = helpers.open_stream(kube:url("/api/v1/pods?watch=1&resourceVersion=" .. rv),
                { Accept = PARTIAL })
            local e = st:next_event()
            assert.equal("ADDED", e.type)
            assert.equal("new-1", e.object.metadata.name)
            assert.equal("PartialObjectMetadata", e.object.kind)
            assert.is_nil((st:next_event(0.2)))
            st:close()
        end)

        it("sends BOOKMARK events only to watches that allow them", function()
            local a = helpers.open_stream(kube:url("/api/v1/nodes?watch=true&allowWatchBookmarks=true"))
            local b = helpers.open_stream(kube:url("/api/v1/nodes?watch=true"))
            assert.truthy(wait_watches(2))
            assert.equal(1, kube:control("POST", "/_fake/bookmark").sent)
            local e = a:next_event()
            assert.equal("BOOKMARK", e.type)
            assert.equal("Node", e.object.kind)
            assert.is_string(e.object.metadata.resourceVersion)
            assert.is_nil((b:next_event(0.2)))
            a:close(); b:close()
        end)

        it("carries data of full objects (ConfigMaps)", function()
            kube:control("POST", "/_fake/objects", { resource = "configmaps", items = {
                { name = "extension-apiserver-authentication", namespace = "kube-system",
                  data = { ["requestheader-allowed-names"] = '["front-proxy-client"]' } } } })
            local _, doc = get_json(kube:url("/api/v1/namespaces/kube-system/configmaps?fieldSelector="
                .. "metadata.name%3Dextension-apiserver-authentication"))
            assert.equal(1, #doc.items)
            assert.equal('["front-proxy-client"]', doc.items[1].data["requestheader-allowed-names"])
        end)

        it("ends after timeoutSeconds", function()
            local st = helpers.open_stream(kube:url("/api/v1/pods?watch=true&timeoutSeconds=1&resourceVersion=0"))
            for _ = 1, 4 do assert.equal("ADDED", st:next_event().type) end
            local e, why = st:next_event(3)
            assert.is_nil(e)
            assert.equal("closed", why)
        end)

        it("expires open watches with ERROR 410 and refuses old resourceVersions", function()
            local _, list = pods(nil)
            local rv = list.metadata.resourceVersion
            local st = helpers.open_stream(kube:url("/api/v1/pods?watch=true&resourceVersion=" .. rv))
            assert.truthy(wait_watches(1))
            assert.equal(1, kube:control("POST", "/_fake/expire", {}).ended)
            local e = st:next_event()
            assert.equal("ERROR", e.type)
            assert.equal(410, e.object.code)
            assert.equal("Expired", e.object.reason)
            local _, why = st:next_event(2)
            assert.equal("closed", why)
            -- a new watch from the old version gets ERROR 410 on a 200 stream
            local st2 = helpers.open_stream(kube:url("/api/v1/pods?watch=true&resourceVersion=" .. rv))
            assert.equal(200, st2.status)
            assert.equal("ERROR", st2:next_event().type)
            -- in "status" mode the watch start itself is an HTTP 410
            kube:control("POST", "/_fake/expire", { mode = "status" })
            local st3 = helpers.open_stream(kube:url("/api/v1/pods?watch=true&resourceVersion=" .. rv))
            assert.equal(410, st3.status)
            assert.equal("Expired", cjson.decode(st3.body).reason)
            -- a fresh list + watch from its resourceVersion works again
            local _, l2 = pods(nil)
            local st4 = helpers.open_stream(kube:url("/api/v1/pods?watch=true&resourceVersion="
                .. l2.metadata.resourceVersion))
            assert.equal(200, st4.status)
            assert.is_nil((st4:next_event(0.2)))
            st4:close()
        end)
    end)
end)

describe("helpers", function()
    it("stringify sorts keys and same() reports differences", function()
        assert.equal(helpers.stringify({ b = 1, a = { 2, 3 } }), helpers.stringify({ a = { 2, 3 }, b = 1 }))
        local ok, diff = helpers.same({ a = 1 }, { a = 2 })
        assert.is_false(ok)
        assert.truthy(diff:find("expected", 1, true))
        assert.has_error(function() helpers.assert_same({ 1 }, { 2 }) end)
    end)

    it("parses and builds query strings", function()
        helpers.assert_same({ a = { "1", "x y" }, b = "=" }, helpers.parse_query("a=1&b=%3D&a=x+y"))
        assert.equal("a=1&a=2&b=x%20y", helpers.build_query({ b = "x y", a = { "1", "2" } }))
    end)

    it("stops a process with SIGTERM and reports its status", function()
        local prom = helpers.start_prometheus()
        local rc = prom:stop()
        assert.equal(143, rc)
        helpers.cleanup()
    end)
end)
