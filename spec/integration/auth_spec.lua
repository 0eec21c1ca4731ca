-- spec/integration/auth_spec.lua: delegated authentication and
-- authorization of the real binary (spec-server.md §1, §3.4, §6), and the
-- request limits (§1 steps 4 and 7).
-- The fake Kubernetes API plays TokenReview, SubjectAccessReview
-- (spec/fixtures/fake_kube_auth.lua) and serves the
-- kube-system/extension-apiserver-authentication ConfigMap; the client
-- certificates are generated here with the openssl command. For the
-- in-cluster case nginx (spec/tls_helpers.lua) puts TLS in front of the fake.
-- Uses: spec/helpers.lua, spec/tls_helpers.lua, curl, openssl, nginx.

local helpers = require "helpers"
local tls = require "tls_helpers"
local cjson = require "cjson"

local CM = "extension-apiserver-authentication"
local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
      kubernetes_pod_name: {resource: "pod"}
  name:
    matches: "^(.*)_total"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
]]
local METRIC_PATH = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests"
    .. "?labelSelector=app%3Dsample-app"
local DISCOVERY = "/apis/custom.metrics.k8s.io/v1beta1"
local UNAUTHORIZED = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
    .. '"message":"Unauthorized","reason":"Unauthorized","code":401}\n'

local function sh(cmd)
    local ok = os.execute(cmd .. " >/dev/null 2>&1")
    assert(ok == 0 or ok == true, "command failed: " .. cmd)
end

-- A CA (key + self-signed cert) under dir.
local function make_ca(dir, name)
    local key, crt = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".crt"
    sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 "
        .. "-subj %s -addext basicConstraints=critical,CA:TRUE "
        .. "-addext keyUsage=critical,keyCertSign,digitalSignature",
        helpers.shq(key), helpers.shq(crt), helpers.shq("/CN=" .. name)))
    return { key = key, crt = crt, pem = helpers.read_file(crt) }
end

-- A client certificate signed by ca; subj like "/O=devs/CN=alice".
local function make_client(dir, name, subj, ca, eku)
    local key, csr, crt = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".csr",
        dir .. "/" .. name .. ".crt"
    local ext = helpers.write_file(dir .. "/" .. name .. ".ext",
        "extendedKeyUsage=" .. (eku or "clientAuth") .. "\n")
    sh(string.format("openssl req -newkey rsa:2048 -nodes -keyout %s -out %s -subj %s",
        helpers.shq(key), helpers.shq(csr), helpers.shq(subj)))
    sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s "
        .. "-days 2 -extfile %s", helpers.shq(csr), helpers.shq(ca.crt), helpers.shq(ca.key),
        helpers.shq(crt), helpers.shq(ext)))
    return { key = key, crt = crt }
end

-- HTTPS request with curl; opts: headers (list of "Name: value" lines),
-- cert (a client from make_client), token, max_time, bg (run in the
-- background, return nothing). -> status, body, headers (lower-case).
local seq = 0
local function call(adapter, path, opts)
    opts = opts or {}
    seq = seq + 1
    local dir = adapter.dir
    local hfile, bfile = dir .. "/ah" .. seq, dir .. "/ab" .. seq
    local cmd = { "curl -sk -A promlua-spec/1.0 --max-time", tostring(opts.max_time or helpers.scale(15)),
        "-o", helpers.shq(bfile), "-D", helpers.shq(hfile), "-w '%{http_code}'" }
    for _, h in ipairs(opts.headers or {}) do cmd[#cmd + 1] = "-H " .. helpers.shq(h) end
    if opts.token then cmd[#cmd + 1] = "-H " .. helpers.shq("Authorization: Bearer " .. opts.token) end
    if opts.cert then
        cmd[#cmd + 1] = "--cert " .. helpers.shq(opts.cert.crt)
        cmd[#cmd + 1] = "--key " .. helpers.shq(opts.cert.key)
    end
    cmd[#cmd + 1] = helpers.shq("https://127.0.0.1:" .. adapter.port .. path)
    if opts.bg then
        os.execute(table.concat(cmd, " ") .. " >/dev/null 2>&1 &")
        return
    end
    local f = io.popen(table.concat(cmd, " "))
    local code = f:read("*a")
    f:close()
    local hs = {}
    for line in (helpers.read_file(hfile) or ""):gmatch("[^\r\n]+") do
        local k, v = line:match("^([^:]+):%s*(.*)$")
        if k then hs[k:lower()] = v end
    end
    local body = helpers.read_file(bfile) or ""
    os.remove(hfile); os.remove(bfile)
    return tonumber(code) or 0, body, hs
end

local function sars(kube)
    local out = {}
    for _, r in ipairs(kube:requests("/apis/authorization.k8s.io/v1/subjectaccessreviews")) do
        out[#out + 1] = r
    end
    return out
end

local function tokenreviews(kube)
    return kube:requests("/apis/authentication.k8s.io/v1/tokenreviews")
end

local function put_configmap(kube, data)
    kube:control("POST", "/_fake/objects", { resource = "configmaps", items = {
        { name = CM, namespace = "kube-system", data = data } } })
end

describe("delegated authentication and authorization", function()
    local prom, kube, adapter, cached, certs
    local dir
    local auth_args     -- the delegated-auth kubeconfig flags for this fake
    -- auth_args followed by extra (later flags win)
    local function with(extra)
        local t = {}
        for _, a in ipairs(auth_args) do t[#t + 1] = a end
        for _, a in ipairs(extra) do t[#t + 1] = a end
        return t
    end

    setup(function()
        dir = helpers.tmpdir("authcerts")
        certs = {}
        certs.proxy_ca = make_ca(dir, "front-proxy-ca")
        certs.other_ca = make_ca(dir, "other-ca")
        certs.client_ca = make_ca(dir, "client-ca")
        certs.proxy = make_client(dir, "proxy", "/CN=front-proxy-client", certs.proxy_ca)
        certs.proxy_other_ca = make_client(dir, "proxy2", "/CN=front-proxy-client", certs.other_ca)
        certs.proxy_wrong_name = make_client(dir, "proxy3", "/CN=someone-else", certs.proxy_ca)
        certs.proxy_server_eku = make_client(dir, "proxy4", "/CN=front-proxy-client", certs.proxy_ca,
            "serverAuth")
        certs.alice = make_client(dir, "alice", "/O=devs/O=ops/CN=alice", certs.client_ca)

        prom = helpers.start_prometheus {
            state_file = helpers.root() .. "/spec/fixtures/prometheus/custom_metrics.json" }
        kube = helpers.start_kube { state_file = helpers.root() .. "/spec/fixtures/kube/objects.json" }
        put_configmap(kube, {
            ["client-ca-file"] = certs.client_ca.pem,
            ["requestheader-client-ca-file"] = certs.proxy_ca.pem,
            ["requestheader-allowed-names"] = '["front-proxy-client"]',
            ["requestheader-username-headers"] = '["X-Remote-User"]',
            ["requestheader-group-headers"] = '["X-Remote-Group"]',
            ["requestheader-extra-headers-prefix"] = '["X-Remote-Extra-"]',
        })
        local kc = helpers.kubeconfig(kube)
        auth_args = { "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc }
        -- no caches: every request reaches the fake
        adapter = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = with { "--authentication-token-webhook-cache-ttl=0s",
                "--authorization-webhook-cache-authorized-ttl=0s",
                "--authorization-webhook-cache-unauthorized-ttl=0s",
                "--max-requests-inflight=1" } }
        -- default caches (10 s)
        cached = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = with {} }
    end)

    teardown(function()
        if adapter then adapter:stop() end
        if cached then cached:stop() end
        helpers.cleanup()
    end)

    before_each(function()
        kube:control("DELETE", "/_fake/fail")
        kube:control("DELETE", "/_fake/auth")
        kube:control("POST", "/_fake/auth", { unknown_tokens = "reject", tokens = {
            good = { username = "system:serviceaccount:default:ci", uid = "u-1",
                groups = { "system:serviceaccounts", "system:serviceaccounts:default" },
                extra = { ["authentication.kubernetes.io/pod-name"] = { "ci-0" } } },
            revoked = { error = "token has been revoked" },
        } })
        kube:clear_requests()
    end)

    describe("authentication", function()
        it("treats a request without credentials as system:anonymous and asks a SAR", function()
            local st = call(adapter, DISCOVERY)
            assert.are.equal(200, st)
            local r = sars(kube)
            assert.are.equal(1, #r)
            assert.are.equal('{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1",'
                .. '"metadata":{"creationTimestamp":null},"spec":{"nonResourceAttributes":'
                .. '{"path":"/apis/custom.metrics.k8s.io/v1beta1","verb":"get"},'
                .. '"user":"system:anonymous","groups":["system:unauthenticated"]},'
                .. '"status":{"allowed":false}}\n', r[1].body)
            assert.are.equal(0, #tokenreviews(kube))
        end)

        it("sends the token in a TokenReview and the exact SAR body for a custom-metrics path", function()
            local st = call(adapter, METRIC_PATH, { token = "good" })
            assert.is_true(st == 200 or st == 404, "status " .. st)
            local tr = tokenreviews(kube)
            assert.are.equal(1, #tr)
            assert.are.equal('{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",'
                .. '"metadata":{"creationTimestamp":null},"spec":{"token":"good"},'
                .. '"status":{"user":{}}}\n', tr[1].body)
            local r = sars(kube)
            assert.are.equal(1, #r)
            assert.are.equal('{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1",'
                .. '"metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":'
                .. '{"namespace":"default","verb":"get","group":"custom.metrics.k8s.io",'
                .. '"version":"v1beta2","resource":"pods","subresource":"http_requests","name":"*"},'
                .. '"user":"system:serviceaccount:default:ci","groups":["system:serviceaccounts",'
                .. '"system:serviceaccounts:default","system:authenticated"],'
                .. '"extra":{"authentication.kubernetes.io/pod-name":["ci-0"]},"uid":"u-1"},'
                .. '"status":{"allowed":false}}\n', r[1].body)
        end)

        it("answers 401 for an unknown token and for a token the review rejects with an error", function()
            for _, tok in ipairs({ "nope", "revoked" }) do
                local st, body = call(adapter, DISCOVERY, { token = tok })
                assert.are.equal(401, st)
                assert.are.equal(UNAUTHORIZED, body)
            end
            assert.are.equal(0, #sars(kube))
        end)

        it("ignores an Authorization header that is not a bearer token (anonymous)", function()
            local st = call(adapter, DISCOVERY, { headers = { "Authorization: Basic Zm9vOmJhcg==" } })
            assert.are.equal(200, st)
            assert.are.equal(0, #tokenreviews(kube))
            assert.are.equal("system:anonymous", cjson.decode(sars(kube)[1].body).spec.user)
        end)

        it("answers 401 when the TokenReview cannot be made", function()
            kube:control("POST", "/_fake/fail", { pattern = "tokenreviews", status = 403 })
            local st, body = call(adapter, DISCOVERY, { token = "good" })
            assert.are.equal(401, st)
            assert.are.equal(UNAUTHORIZED, body)
        end)

        it("retries a TokenReview that failed with a 5xx", function()
            kube:control("POST", "/_fake/fail", { pattern = "tokenreviews", status = 500, count = 1 })
            local st = call(adapter, DISCOVERY, { token = "good" })
            assert.are.equal(200, st)
            assert.are.equal(2, #tokenreviews(kube))
        end)

        it("authenticates a front-proxy request signed by the request-header CA", function()
            local st = call(adapter, DISCOVERY, { cert = certs.proxy, headers = {
                "X-Remote-User: alice", "X-Remote-Group: g1", "X-Remote-Group: g2",
                "X-Remote-Extra-Scopes: a", "X-Remote-Extra-Scopes: b",
                "X-Remote-Extra-Acme.com%2fProject: p1" } })
            assert.are.equal(200, st)
            local spec = cjson.decode(sars(kube)[1].body).spec
            assert.are.equal("alice", spec.user)
            assert.are.same({ "g1", "g2", "system:authenticated" }, spec.groups)
            assert.are.same({ scopes = { "a", "b" }, ["acme.com/project"] = { "p1" } }, spec.extra)
            assert.is_nil(spec.uid)
            -- the headers never make a token review
            assert.are.equal(0, #tokenreviews(kube))
        end)

        it("rejects a front-proxy certificate signed by another CA (401, headers not trusted)", function()
            local st, body = call(adapter, DISCOVERY, { cert = certs.proxy_other_ca,
                headers = { "X-Remote-User: alice", "X-Remote-Group: system:masters" } })
            assert.are.equal(401, st)
            assert.are.equal(UNAUTHORIZED, body)
            assert.are.equal(0, #sars(kube))
        end)

        it("rejects a front-proxy certificate whose CN is not an allowed name", function()
            local st = call(adapter, DISCOVERY, { cert = certs.proxy_wrong_name,
                headers = { "X-Remote-User: alice" } })
            assert.are.equal(401, st)
        end)

        it("rejects a front-proxy certificate without client-auth usage", function()
            local st = call(adapter, DISCOVERY, { cert = certs.proxy_server_eku,
                headers = { "X-Remote-User: alice" } })
            assert.are.equal(401, st)
        end)

        it("does not trust X-Remote-* headers without a client certificate", function()
            local st = call(adapter, DISCOVERY, { headers = { "X-Remote-User: admin",
                "X-Remote-Group: system:masters" } })
            assert.are.equal(200, st)
            local spec = cjson.decode(sars(kube)[1].body).spec
            assert.are.equal("system:anonymous", spec.user)
        end)

        it("authenticates an x509 client certificate signed by the client CA (CN user, O groups)", function()
            local st = call(adapter, DISCOVERY, { cert = certs.alice })
            assert.are.equal(200, st)
            local spec = cjson.decode(sars(kube)[1].body).spec
            assert.are.equal("alice", spec.user)
            assert.are.same({ "devs", "ops", "system:authenticated" }, spec.groups)
        end)

        it("answers 400 for a bad ?timeout= before authentication", function()
            local st, body = call(adapter, DISCOVERY .. "?timeout=abc", { token = "nope" })
            assert.are.equal(400, st)
            assert.are.equal("invalid timeout specified in the request URL - time: invalid duration \"abc\"",
                cjson.decode(body).message)
            assert.are.equal(0, #tokenreviews(kube))
        end)
    end)

    describe("authorization", function()
        it("lets system:masters through without a SAR", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
            local st = call(adapter, DISCOVERY, { cert = certs.proxy, headers = {
                "X-Remote-User: system:kube-aggregator", "X-Remote-Group: system:masters" } })
            assert.are.equal(200, st)
            assert.are.equal(0, #sars(kube))
        end)

        it("serves the always-allow paths without credentials or SAR", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
            for _, p in ipairs({ "/healthz", "/livez", "/readyz" }) do
                local st, body = call(adapter, p)
                assert.are.equal(200, st, p)
                assert.are.equal("ok", body)
            end
            assert.are.equal(0, #sars(kube))
        end)

        it("answers Go's 403 for a denied resource request, with the SAR reason", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "allow", rules = {
                { user = "system:serviceaccount:default:ci", resource = "pods", denied = true,
                    reason = "no RBAC policy matched" } } } })
            local st, body = call(adapter, METRIC_PATH, { token = "good" })
            assert.are.equal(403, st)
            assert.are.equal('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                .. '"message":"pods.custom.metrics.k8s.io \\"*\\" is forbidden: User '
                .. '\\"system:serviceaccount:default:ci\\" cannot get resource \\"pods/http_requests\\" '
                .. 'in API group \\"custom.metrics.k8s.io\\" in the namespace \\"default\\": no RBAC policy '
                .. 'matched","reason":"Forbidden","details":{"name":"*","group":"custom.metrics.k8s.io",'
                .. '"kind":"pods"},"code":403}\n', body)
        end)

        it("answers 403 for a non-resource path when the SAR has no opinion", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "none" } })
            local st, body = call(adapter, "/apis")
            assert.are.equal(403, st)
            assert.are.equal('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                .. '"message":"forbidden: User \\"system:anonymous\\" cannot get path \\"/apis\\"",'
                .. '"reason":"Forbidden","details":{},"code":403}\n', body)
        end)

        it("uses list for a collection and cluster scope wording without a namespace", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
            local st, body = call(adapter, "/apis/custom.metrics.k8s.io/v1beta1/nodes")
            assert.are.equal(403, st)
            assert.are.equal('nodes.custom.metrics.k8s.io is forbidden: User "system:anonymous" cannot '
                .. 'list resource "nodes" in API group "custom.metrics.k8s.io" at the cluster scope',
                cjson.decode(body).message)
            local ra = cjson.decode(sars(kube)[1].body).spec.resourceAttributes
            assert.are.same({ verb = "list", group = "custom.metrics.k8s.io", version = "v1beta1",
                resource = "nodes" }, ra)
        end)

        it("answers 500 when the SubjectAccessReview cannot be made", function()
            kube:control("POST", "/_fake/fail", { pattern = "subjectaccessreviews", status = 403 })
            local st, body = call(adapter, DISCOVERY)
            assert.are.equal(500, st)
            assert.matches('^Internal Server Error: "/apis/custom%.metrics%.k8s%.io/v1beta1": ', body)
        end)
    end)

    describe("caches", function()
        it("makes one TokenReview and one SAR for N requests within the TTL", function()
            kube:control("POST", "/_fake/auth", { tokens = { ["cache-me"] = {
                username = "cache-user", groups = { "g" } } } })
            for _ = 1, 5 do
                assert.are.equal(200, (call(cached, DISCOVERY, { token = "cache-me" })))
            end
            assert.are.equal(1, #tokenreviews(kube))
            assert.are.equal(1, #sars(kube))
        end)

        it("caches denials too, and the uncached adapter asks every time", function()
            kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
            for _ = 1, 3 do assert.are.equal(403, (call(cached, "/apis/"))) end
            assert.are.equal(1, #sars(kube))
            kube:clear_requests()
            for _ = 1, 3 do assert.are.equal(403, (call(adapter, "/apis/"))) end
            assert.are.equal(3, #sars(kube))
        end)

        it("does not cache a failed TokenReview", function()
            kube:control("POST", "/_fake/auth", { tokens = { ["flaky"] = { username = "f" } } })
            kube:control("POST", "/_fake/fail", { pattern = "tokenreviews", status = 403, count = 1 })
            assert.are.equal(401, (call(cached, DISCOVERY, { token = "flaky" })))
            assert.are.equal(200, (call(cached, DISCOVERY, { token = "flaky" })))
        end)
    end)

    describe("limits", function()
        it("answers 429 above --max-requests-inflight", function()
            kube:control("POST", "/_fake/fail", { pattern = "subjectaccessreviews", delay = 2, count = 1 })
            call(adapter, DISCOVERY, { bg = true })
            helpers.wait_until(function() return #sars(kube) > 0 end, 5, 0.05)
            local st, body, hs = call(adapter, "/apis")
            assert.are.equal(429, st)
            assert.are.equal("Too many requests, please try again later.\n", body)
            assert.are.equal("1", hs["retry-after"])
            -- system:masters is exempt
            kube:control("POST", "/_fake/fail", { pattern = "subjectaccessreviews", delay = 2, count = 1 })
            helpers.sleep(0.1)
            call(adapter, DISCOVERY, { bg = true })
            helpers.sleep(0.5)
            st = call(adapter, DISCOVERY, { cert = certs.proxy, headers = {
                "X-Remote-User: admin", "X-Remote-Group: system:masters" } })
            assert.are.equal(200, st)
            helpers.sleep(2)
        end)

        it("answers 504 Timeout when the request outlives its deadline", function()
            kube:control("POST", "/_fake/fail", { pattern = "subjectaccessreviews", delay = 3, count = 1 })
            local t0 = helpers.now()
            local st, body = call(adapter, DISCOVERY .. "?timeout=1s")
            assert.are.equal(504, st, body)
            assert.are.equal('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                .. '"message":"Timeout: request did not complete within the allotted timeout",'
                .. '"reason":"Timeout","details":{},"code":504}\n', body)
            assert.is_true(helpers.now() - t0 < 2.5)
            helpers.sleep(2.2)  -- let the fake finish the delayed review
        end)

        it("answers 504 when the handler's Prometheus call outlives the deadline", function()
            prom:control("POST", "/_fake/query", { pattern = ".", delay = 3,
                result = { resultType = "vector", result = {} } })
            local t0 = helpers.now()
            local st, body = call(adapter, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/"
                .. "pods/%2A/http_requests_per_second?timeout=1s")
            prom:control("POST", "/_fake/reset")
            assert.are.equal(504, st, body)
            assert.are.equal("Timeout: request did not complete within the allotted timeout",
                cjson.decode(body).message)
            assert.is_true(helpers.now() - t0 < 2.5)
        end)

        -- curl refuses such requests itself, so they go raw through openssl.
        local function raw(text)
            local f = helpers.write_file(adapter.dir .. "/rawreq", text)
            local p = io.popen("timeout " .. helpers.scale(10) .. " openssl s_client -quiet -connect 127.0.0.1:"
                .. adapter.port .. " <" .. helpers.shq(f) .. " 2>/dev/null")
            local line = p:read("*l")
            p:close()
            return (line or ""):gsub("\r$", "")
        end

        it("refuses request headers and URLs above the size limits (128 KiB; Go: 1 MiB)", function()
            -- 200 KiB: above our limit, below Go's (docs/compat.md)
            local big = string.rep("a", 200 * 1024)
            local tail = "Host: x\r\nConnection: close\r\n\r\n"
            assert.are.equal("HTTP/1.1 200 OK", (raw("GET /healthz HTTP/1.1\r\n" .. tail)))
            assert.are.equal("HTTP/1.1 200 OK", (raw("GET /healthz HTTP/1.1\r\nX-Mid: "
                .. string.rep("a", 32 * 1024) .. "\r\n" .. tail)))
            assert.are.equal("HTTP/1.1 431 Request Header Fields Too Large",
                (raw("GET /healthz HTTP/1.1\r\nX-Big: " .. big .. "\r\n" .. tail)))
            assert.are.equal("HTTP/1.1 414 URI Too Long",
                (raw("GET /healthz?" .. big .. " HTTP/1.1\r\n" .. tail)))
            assert.are.equal(0, #sars(kube))
        end)
    end)

    -- Each test starts its own adapter with the flag under test; the checks
    -- are chosen so that the default value of the flag would fail them.
    describe("explicit flags", function()
        local extra
        local function start(args)
            extra = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
                args = with(args) }
            kube:clear_requests()       -- start-up's ConfigMap LIST and /readyz probes
            return extra
        end
        after_each(function()
            if extra then extra:stop() end
            extra = nil
        end)

        it("--request-timeout bounds a request without ?timeout and caps ?timeout=30s (504)", function()
            local a = start { "--request-timeout=1s" }
            -- the review answers after 4 s: within the 60 s default and
            -- within ?timeout=30s, so only the 1 s flag can make these 504s
            for _, q in ipairs({ "", "?timeout=30s" }) do
                kube:control("POST", "/_fake/fail", { pattern = "subjectaccessreviews", delay = 4,
                    count = 1 })
                local t0 = helpers.now()
                local st, body = call(a, DISCOVERY .. q)
                local took = helpers.now() - t0
                assert.are.equal(504, st, q .. ": " .. body)
                assert.are.equal('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    .. '"message":"Timeout: request did not complete within the allotted timeout",'
                    .. '"reason":"Timeout","details":{},"code":504}\n', body)
                -- not a performance bound: it shows the answer did not wait
                -- for the delayed review
                assert.is_true(took < 3.5, q .. " took " .. took .. " s")
            end
            assert.are.equal(2, #sars(kube))
            -- a shorter ?timeout still applies, and without a delay it is met
            assert.are.equal(200, (call(a, DISCOVERY .. "?timeout=900ms")))
        end)

        it("expires cached reviews after the --*-cache-ttl flags (1s)", function()
            local a = start { "--authentication-token-webhook-cache-ttl=1s",
                "--authorization-webhook-cache-authorized-ttl=1s" }
            assert.are.equal(200, (call(a, DISCOVERY, { token = "good" })))
            assert.are.equal(200, (call(a, DISCOVERY, { token = "good" })))
            assert.are.equal(1, #tokenreviews(kube))
            assert.are.equal(1, #sars(kube))
            helpers.sleep(1.3)          -- past the 1 s flags, well within the 10 s defaults
            assert.are.equal(200, (call(a, DISCOVERY, { token = "good" })))
            assert.are.equal(2, #tokenreviews(kube))
            assert.are.equal(2, #sars(kube))
        end)

        it("--authorization-always-allow-paths replaces the default list", function()
            local a = start { "--authorization-always-allow-paths=/metrics,/open/*" }
            kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
            local st, body = call(a, "/metrics")
            assert.are.equal(200, st)
            assert.matches("# TYPE ", body, 1, true)
            -- /open/* is a prefix: allowed without a review, then not found
            assert.are.equal(404, (call(a, "/open/anything")))
            assert.are.equal(0, #sars(kube))
            -- /healthz is no longer in the list; /openx does not match /open/*
            local st2, body2 = call(a, "/healthz")
            assert.are.equal(403, st2)
            assert.are.equal('forbidden: User "system:anonymous" cannot get path "/healthz"',
                cjson.decode(body2).message)
            assert.are.equal(403, (call(a, "/openx")))
            local paths = {}
            for _, r in ipairs(sars(kube)) do
                paths[#paths + 1] = cjson.decode(r.body).spec.nonResourceAttributes.path
            end
            assert.are.same({ "/healthz", "/openx" }, paths)
        end)
    end)

    describe("the extension-apiserver-authentication ConfigMap", function()
        it("is kept current: a change of allowed names applies without a restart", function()
            put_configmap(kube, {
                ["client-ca-file"] = certs.client_ca.pem,
                ["requestheader-client-ca-file"] = certs.proxy_ca.pem,
                ["requestheader-allowed-names"] = '["someone-else"]',
                ["requestheader-username-headers"] = '["X-Remote-User"]',
                ["requestheader-group-headers"] = '["X-Remote-Group"]',
                ["requestheader-extra-headers-prefix"] = '["X-Remote-Extra-"]',
            })
            local ok = helpers.wait_until(function()
                return call(adapter, DISCOVERY, { cert = certs.proxy_wrong_name,
                    headers = { "X-Remote-User: bob" } }) == 200
            end, 10, 0.2)
            assert.truthy(ok)
            assert.are.equal(401, (call(adapter, DISCOVERY, { cert = certs.proxy,
                headers = { "X-Remote-User: bob" } })))
            put_configmap(kube, {
                ["client-ca-file"] = certs.client_ca.pem,
                ["requestheader-client-ca-file"] = certs.proxy_ca.pem,
                ["requestheader-allowed-names"] = '["front-proxy-client"]',
                ["requestheader-username-headers"] = '["X-Remote-User"]',
                ["requestheader-group-headers"] = '["X-Remote-Group"]',
                ["requestheader-extra-headers-prefix"] = '["X-Remote-Extra-"]',
            })
            assert.truthy(helpers.wait_until(function()
                return call(adapter, DISCOVERY, { cert = certs.proxy,
                    headers = { "X-Remote-User: bob" } }) == 200
            end, 10, 0.2))
        end)
    end)
end)

describe("delegated auth start-up", function()
    local prom, kube, kc

    setup(function()
        prom = helpers.start_prometheus {
            state_file = helpers.root() .. "/spec/fixtures/prometheus/custom_metrics.json" }
        kube = helpers.start_kube { state_file = helpers.root() .. "/spec/fixtures/kube/objects.json" }
        kc = helpers.kubeconfig(kube)
    end)

    teardown(function()
        tls.cleanup()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    local function run(extra)
        local args = { "--secure-port=" .. helpers.free_port(),
            "--cert-dir=" .. helpers.tmpdir("startcerts"),
            "--prometheus-url=" .. prom:url(), "--lister-kubeconfig=" .. kc,
            "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        return helpers.run_adapter { config = CONFIG, args = args }
    end

    it("fails when the ConfigMap is missing (Go's message)", function()
        local rc, err = run {}
        assert.are_not.equal(0, rc)
        assert.matches('unable to load configmap based request%-header%-client%-ca%-file: '
            .. 'configmaps "extension%-apiserver%-authentication" not found', err)
    end)

    it("fails when the request-header CA key is empty", function()
        put_configmap(kube, { ["client-ca-file"] = "" })
        local rc, err = run {}
        assert.are_not.equal(0, rc)
        assert.matches('missing content for CA bundle "client-ca::kube-system::'
            .. 'extension-apiserver-authentication::requestheader-client-ca-file"', err, 1, true)
        kube:control("POST", "/_fake/delete", { resource = "configmaps",
            items = { { name = CM, namespace = "kube-system" } } })
    end)

    it("starts with --authentication-tolerate-lookup-failure and serves anonymous requests", function()
        local a = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = { "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc,
                "--authentication-tolerate-lookup-failure=true" } }
        local st = call(a, DISCOVERY)
        a:stop()
        assert.are.equal(200, st)
    end)

    it("fails without a delegated kubeconfig outside a cluster", function()
        local rc, err = run { "--authentication-kubeconfig=", "--authentication-skip-lookup" }
        assert.are_not.equal(0, rc)
        assert.matches("failed to get delegated authentication kubeconfig: ", err, 1, true)
    end)

    it("rejects a * that is not trailing in --authorization-always-allow-paths", function()
        local rc, err = run { "--authentication-skip-lookup",
            "--authorization-always-allow-paths=/healthz,/a*b" }
        assert.are_not.equal(0, rc)
        assert.matches('only trailing * allowed in "/a*b"', err, 1, true)
    end)

    it("uses explicit --requestheader-* flags instead of the ConfigMap", function()
        local d = helpers.tmpdir("rhflags")
        local ca = make_ca(d, "rh-ca")
        local cl = make_client(d, "agg", "/CN=aggregator", ca)
        local a = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = { "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc,
                "--requestheader-client-ca-file=" .. ca.crt, "--requestheader-allowed-names=aggregator",
                "--requestheader-username-headers=X-User", "--requestheader-group-headers=X-Groups" } }
        kube:control("POST", "/_fake/auth", { sar = { default = "deny" } })
        local st = call(a, DISCOVERY, { cert = cl, headers = { "X-User: root",
            "X-Groups: system:masters" } })
        local st2 = call(a, DISCOVERY, { cert = cl, headers = { "X-Remote-User: root",
            "X-Remote-Group: system:masters" } })
        kube:control("DELETE", "/_fake/auth")
        local _, stderr = a:stop()
        assert.are.equal(200, st)
        assert.are.equal(403, st2)   -- the standard names are not configured: anonymous
        assert.matches("--requestheader-username-headers is set without specifying the standard "
            .. "X-Remote-User header - API aggregation will not work", stderr, 1, true)
        assert.matches("--requestheader-group-headers is set without specifying the standard "
            .. "X-Remote-Group header - API aggregation will not work", stderr, 1, true)
        assert.is_nil(stderr:find("--requestheader-extra-headers-prefix is set", 1, true))
    end)

    -- The ConfigMap is absent from here on (the tests above delete it).
    local function configmap_requests()
        local out = {}
        for _, r in ipairs(kube:requests()) do
            if r.path:find("/configmaps", 1, true) then out[#out + 1] = r end
        end
        return out
    end

    it("uses --client-ca-file with --authentication-skip-lookup (CN user, O groups)", function()
        local d = helpers.tmpdir("clientca")
        local ca = make_ca(d, "flag-client-ca")
        local other = make_ca(d, "unrelated-ca")
        local bob = make_client(d, "bob", "/O=team-a/O=team-b/CN=bob", ca)
        local eve = make_client(d, "eve", "/O=system:masters/CN=eve", other)
        local a = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = { "--client-ca-file=" .. ca.crt, "--authentication-skip-lookup" } }
        kube:clear_requests()
        local st = call(a, DISCOVERY, { cert = bob })
        local r = sars(kube)
        local st2, body2 = call(a, DISCOVERY, { cert = eve })
        local n = #sars(kube)
        a:stop()
        assert.are.equal(200, st)
        assert.are.equal(1, #r)
        local spec = cjson.decode(r[1].body).spec
        assert.are.equal("bob", spec.user)
        assert.are.same({ "team-a", "team-b", "system:authenticated" }, spec.groups)
        -- a certificate from another CA is an authentication error, not anonymous
        assert.are.equal(401, st2)
        assert.are.equal(UNAUTHORIZED, body2)
        assert.are.equal(1, n)
        assert.are.equal(0, #configmap_requests())
    end)

    it("makes no ConfigMap request with --authentication-skip-lookup, even when lookup "
        .. "failures are not tolerated", function()
        -- the ConfigMap is really missing: without skip-lookup this start fails
        -- ("fails when the ConfigMap is missing" above)
        local code = helpers.http("GET", kube:url("/api/v1/namespaces/kube-system/configmaps/" .. CM))
        assert.are.equal(404, code)
        kube:clear_requests()
        -- helpers.start_adapter passes =true; the later flag wins
        local a = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube,
            args = { "--authentication-skip-lookup",
                "--authentication-tolerate-lookup-failure=false" } }
        local st = call(a, DISCOVERY)
        a:stop()
        assert.are.equal(200, st)
        assert.are.equal(0, #configmap_requests())
    end)

    it("fails without a delegated authorization kubeconfig outside a cluster", function()
        local rc, err = run { "--authorization-kubeconfig=", "--authentication-skip-lookup" }
        assert.are_not.equal(0, rc)
        assert.matches("failed to get delegated authorization kubeconfig: ", err, 1, true)
        assert.is_nil(err:find("delegated authentication kubeconfig", 1, true))
    end)

    it("uses the in-cluster service account for both delegated clients", function()
        -- nginx terminates TLS in front of the fake (a kube-apiserver
        -- serves HTTPS only) and marks what it forwarded (X-Client-Verify)
        local d = helpers.tmpdir("incluster")
        local pki = tls.pki(d)
        local front = tls.start_nginx { upstream = kube, pki = pki }
        local sa = helpers.tmpdir("sa")
        helpers.write_file(sa .. "/token", "sa-token-1\n")
        helpers.write_file(sa .. "/ca.crt", helpers.read_file(pki.ca))
        helpers.write_file(sa .. "/namespace", "monitoring")
        kube:clear_requests()
        local ok, a = pcall(helpers.start_adapter, { config = CONFIG, prometheus = prom, kube = kube,
            args = { "--authentication-kubeconfig=", "--authorization-kubeconfig=" },
            env = { KUBERNETES_SERVICE_HOST = "127.0.0.1",
                KUBERNETES_SERVICE_PORT = tostring(front.port),
                PROMLUA_SERVICEACCOUNT_DIR = sa } })
        if not ok then front:stop() error(a, 0) end
        local st = call(a, DISCOVERY, { token = "user-token" })
        a:stop()
        front:stop()
        assert.are.equal(200, st)
        -- the tolerated ConfigMap lookup, the TokenReview and the review
        -- all came through the TLS front with the service-account token
        local cms = configmap_requests()
        assert.are.equal(1, #cms)
        local tr, r = tokenreviews(kube), sars(kube)
        assert.are.equal(1, #tr)
        assert.are.equal(1, #r)
        for _, x in ipairs({ cms[1], tr[1], r[1] }) do
            assert.are.equal("Bearer sa-token-1", x.headers["authorization"], x.path)
            assert.are.equal("NONE", x.headers["x-client-verify"], x.path)
        end
        assert.are.equal("user-token", cjson.decode(tr[1].body).spec.token)
        assert.are.equal("fake:user-token", cjson.decode(r[1].body).spec.user)
    end)
end)
