-- spec/integration/prometheus_tls_spec.lua: the adapter talking HTTPS to
-- Prometheus (spec-server.md §9.3): --prometheus-ca-file, client
-- certificates (and their rotation), --prometheus-auth-config (CA file or
-- data, client certificate, token, token file, basic auth, insecure) and
-- --prometheus-auth-incluster. nginx terminates TLS in front of the fake
-- Prometheus and tells it what the client presented (X-Client-Verify,
-- X-Client-Subject, Authorization), which the spec reads back from the
-- fake's /_fake/requests.
-- Uses: spec/helpers.lua, spec/tls_helpers.lua (openssl, nginx).

local helpers = require "helpers"
local tls = require "tls_helpers"

local CONFIG = [[
externalRules:
- seriesQuery: 'queue_depth{namespace!="",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
]]
local STATE = {
    series = { {
        match = 'queue_depth{namespace!="",queue!=""}',
        data = { { __name__ = "queue_depth", namespace = "default", queue = "jobs" } },
    } },
    queries = { {
        query = 'sum(queue_depth{namespace="default"}) by (queue)',
        result = { resultType = "vector", result = {
            { metric = { queue = "jobs" }, value = { 1715851267.5, "9" } } } },
    } },
}
local EXT = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"

local function b64(s)
    local f = io.popen("printf %s " .. helpers.shq(s) .. " | base64 -w0")
    local out = f:read("*a")
    f:close()
    return out
end

describe("Prometheus over TLS", function()
    local kube, prom, nginx, pki, dir

    setup(function()
        dir = helpers.tmpdir("pki")
        pki = tls.pki(dir)
        kube = helpers.start_kube { state_file = helpers.fixture("kube/objects.json") }
        prom = helpers.start_prometheus { state = STATE }
        nginx = tls.start_nginx { upstream = prom, pki = pki }
    end)

    teardown(function()
        tls.cleanup()
        helpers.cleanup()
    end)

    before_each(function()
        prom:control("POST", "/_fake/reset")
    end)

    local function start(args, env)
        local a = { "--prometheus-url=" .. nginx:url() }
        for _, x in ipairs(args) do a[#a + 1] = x end
        return helpers.start_adapter { config = CONFIG, kube = kube, args = a, relist = "1h", env = env }
    end

    -- The last /api/v1/query the fake saw, after one external request.
    local function ask(adapter)
        prom:clear_requests()
        local status, doc = adapter:get_json(EXT)
        local q = prom:requests("/api/v1/query")
        return status, doc, q[#q]
    end

    it("trusts --prometheus-ca-file and sends no client certificate without the pair", function()
        local adapter = start { "--prometheus-ca-file=" .. pki.ca }
        local status, doc, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("9", doc.items[1].value)
        assert.equal("NONE", r.headers["x-client-verify"])
        -- the relist went through TLS too
        assert.is_true(#prom:requests("/api/v1/series") >= 0)
        adapter:stop()
    end)

    it("presents the client certificate with --prometheus-client-tls-cert-file/-key-file", function()
        local adapter = start { "--prometheus-ca-file=" .. pki.ca,
            "--prometheus-client-tls-cert-file=" .. pki.client,
            "--prometheus-client-tls-key-file=" .. pki.client_key }
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("SUCCESS", r.headers["x-client-verify"])
        assert.equal("CN=promlua-client", r.headers["x-client-subject"])
        -- TLS 1.2 at least
        assert.truthy(r.headers["x-tls-protocol"] == "TLSv1.2" or r.headers["x-tls-protocol"] == "TLSv1.3")
        adapter:stop()
    end)

    it("re-reads a rotated client certificate for new connections", function()
        local cdir = helpers.tmpdir("rot")
        local cert = helpers.write_file(cdir .. "/tls.crt", helpers.read_file(pki.client))
        local key = helpers.write_file(cdir .. "/tls.key", helpers.read_file(pki.client_key))
        local adapter = start { "--prometheus-ca-file=" .. pki.ca,
            "--prometheus-client-tls-cert-file=" .. cert,
            "--prometheus-client-tls-key-file=" .. key }
        local _, _, r = ask(adapter)
        assert.equal("CN=promlua-client", r.headers["x-client-subject"])
        -- cert-manager style: both files replaced
        helpers.write_file(cert .. ".new", helpers.read_file(pki.client2))
        helpers.write_file(key .. ".new", helpers.read_file(pki.client2_key))
        os.rename(key .. ".new", key)
        os.rename(cert .. ".new", cert)
        local status
        status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("CN=promlua-client-2", r.headers["x-client-subject"])
        adapter:stop()
    end)

    it("rejects a server its CA does not vouch for: nothing reaches Prometheus", function()
        local adapter = start { "--prometheus-ca-file=" .. pki.other_ca }
        -- the relist failed, so the metric is unknown
        local status, _, r = ask(adapter)
        assert.equal(404, status)
        assert.is_nil(r)
        assert.same({}, prom:requests())
        local _, err = adapter:stop()
        assert.truthy(err:find("unable to fetch metrics for query", 1, true), err)
        assert.truthy(err:lower():find("certificate", 1, true), err)
    end)

    it("uses --prometheus-auth-config: CA file (relative to the kubeconfig), client certificate, token", function()
        local kdir = helpers.tmpdir("kc")
        for _, n in ipairs({ "ca.pem", "client.pem", "client.key" }) do
            helpers.write_file(kdir .. "/" .. n, helpers.read_file(dir .. "/" .. n))
        end
        local kc = tls.kubeconfig(kdir, "    certificate-authority: ca.pem",
            "    token: kc-token-1\n    client-certificate: client.pem\n    client-key: client.key")
        local adapter = start { "--prometheus-auth-config=" .. kc }
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("SUCCESS", r.headers["x-client-verify"])
        assert.equal("CN=promlua-client", r.headers["x-client-subject"])
        assert.equal("Bearer kc-token-1", r.headers["authorization"])
        adapter:stop()
    end)

    it("uses --prometheus-auth-config: CA data, client certificate data, basic auth", function()
        local kdir = helpers.tmpdir("kc")
        local kc = tls.kubeconfig(kdir,
            "    certificate-authority-data: " .. b64(helpers.read_file(pki.ca)),
            "    username: prom-user\n    password: 'p@ss:word'\n"
            .. "    client-certificate-data: " .. b64(helpers.read_file(pki.client2)) .. "\n"
            .. "    client-key-data: " .. b64(helpers.read_file(pki.client2_key)))
        local adapter = start { "--prometheus-auth-config=" .. kc }
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("CN=promlua-client-2", r.headers["x-client-subject"])
        assert.equal("Basic " .. b64("prom-user:p@ss:word"), r.headers["authorization"])
        adapter:stop()
    end)

    it("uses --prometheus-auth-config: a token file, re-read when it changes", function()
        local kdir = helpers.tmpdir("kc")
        local tok = helpers.write_file(kdir .. "/token", "file-token-1\n")
        local kc = tls.kubeconfig(kdir, "    certificate-authority: " .. pki.ca,
            "    tokenFile: " .. tok)
        local adapter = start { "--prometheus-auth-config=" .. kc }
        local _, _, r = ask(adapter)
        assert.equal("Bearer file-token-1", r.headers["authorization"])
        helpers.write_file(tok, "file-token-22\n")
        _, _, r = ask(adapter)
        assert.equal("Bearer file-token-22", r.headers["authorization"])
        adapter:stop()
    end)

    it("uses --prometheus-auth-config: insecure-skip-tls-verify", function()
        local kdir = helpers.tmpdir("kc")
        local kc = tls.kubeconfig(kdir, "    insecure-skip-tls-verify: true", "    token: t")
        local adapter = start { "--prometheus-auth-config=" .. kc }
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("Bearer t", r.headers["authorization"])
        adapter:stop()
    end)

    it("ignores --prometheus-auth-config when --prometheus-ca-file is set (PA's order)", function()
        local kdir = helpers.tmpdir("kc")
        local kc = tls.kubeconfig(kdir, "    insecure-skip-tls-verify: true", "    token: not-sent")
        local adapter = start { "--prometheus-ca-file=" .. pki.ca, "--prometheus-auth-config=" .. kc,
            "--prometheus-auth-incluster" }
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.is_nil(r.headers["authorization"])
        adapter:stop()
    end)

    it("uses the service account with --prometheus-auth-incluster", function()
        local sa = helpers.tmpdir("sa")
        helpers.write_file(sa .. "/token", "sa-token-1\n")
        helpers.write_file(sa .. "/ca.crt", helpers.read_file(pki.ca))
        helpers.write_file(sa .. "/namespace", "monitoring")
        local adapter = start({ "--prometheus-auth-incluster" }, {
            KUBERNETES_SERVICE_HOST = "127.0.0.1", KUBERNETES_SERVICE_PORT = "1",
            PROMLUA_SERVICEACCOUNT_DIR = sa })
        local status, _, r = ask(adapter)
        assert.equal(200, status)
        assert.equal("Bearer sa-token-1", r.headers["authorization"])
        helpers.write_file(sa .. "/token", "sa-token-two\n")
        _, _, r = ask(adapter)
        assert.equal("Bearer sa-token-two", r.headers["authorization"])
        adapter:stop()
    end)
end)
