-- spec/integration/tls_spec.lua: TLS serving of the real binary, checked
-- with `openssl s_client` (spec-server.md §7): protocol versions
-- (--tls-min-version), cipher suites by Go name (--tls-cipher-suites), no
-- h2 over ALPN, client certificates requested with the configured CA
-- names, serving-certificate rotation without a restart, --cert-dir reuse
-- and start-up errors.
-- Uses: spec/helpers.lua, openssl.

local helpers = require "helpers"

local CONFIG = "rules: []\n"

-- One handshake: -> protocol ("TLSv1.2"), cipher, full output; protocol
-- is nil when the handshake failed.
local function handshake(port, args)
    local p = io.popen("echo | timeout " .. helpers.scale(10) .. " openssl s_client -connect 127.0.0.1:"
        .. port .. " " .. (args or "") .. " 2>&1")
    local out = p:read("*a")
    p:close()
    local proto, cipher = out:match("\nNew, ([^,]+), Cipher is (%S+)")
    if proto == "(NONE)" then proto, cipher = nil, nil end
    -- "New, TLSv1.0" names the cipher's version; the session line is exact
    proto = proto and (out:match("\n%s*Protocol%s*:%s*(%S+)") or proto)
    return proto, cipher, out
end

local function sh(cmd)
    local ok = os.execute(cmd .. " >/dev/null 2>&1")
    assert(ok == 0 or ok == true, "command failed: " .. cmd)
end

-- A self-signed serving pair with subject CN=cn at crt/key.
local function make_pair(crt, key, cn)
    local d = helpers.tmpdir("pair")
    sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj %s "
        .. "-addext subjectAltName=IP:127.0.0.1", helpers.shq(d .. "/k"), helpers.shq(d .. "/c"),
        helpers.shq("/CN=" .. cn)))
    -- replace both files by rename, as kubelet's atomic writer does
    sh(string.format("mv %s %s && mv %s %s", helpers.shq(d .. "/k"), helpers.shq(key),
        helpers.shq(d .. "/c"), helpers.shq(crt)))
end

describe("TLS serving", function()
    local prom, kube, kc
    local started = {}

    local function start(args, opts)
        opts = opts or {}
        local all = { "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc,
            "--authentication-skip-lookup" }
        for _, a in ipairs(args or {}) do all[#all + 1] = a end
        local a = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube, args = all }
        started[#started + 1] = a
        return a
    end

    local function run(args)
        local all = { "--secure-port=" .. helpers.free_port(), "--cert-dir=" .. helpers.tmpdir("c"),
            "--prometheus-url=" .. prom:url(), "--lister-kubeconfig=" .. kc,
            "--authentication-kubeconfig=" .. kc, "--authorization-kubeconfig=" .. kc,
            "--authentication-skip-lookup" }
        for _, a in ipairs(args) do all[#all + 1] = a end
        return helpers.run_adapter { config = CONFIG, args = all }
    end

    setup(function()
        prom = helpers.start_prometheus {
            state_file = helpers.root() .. "/spec/fixtures/prometheus/custom_metrics.json" }
        kube = helpers.start_kube {}
        kc = helpers.kubeconfig(kube)
    end)

    teardown(function()
        for _, a in ipairs(started) do a:stop() end
        helpers.cleanup()
    end)

    it("offers TLS 1.2 and 1.3 by default and refuses TLS 1.1", function()
        local a = start()
        assert.are.equal("TLSv1.2", (handshake(a.port, "-tls1_2")))
        assert.are.equal("TLSv1.3", (handshake(a.port, "-tls1_3")))
        -- the client side allows 1.1 (security level 0); the server refuses
        assert.is_nil((handshake(a.port, "-tls1_1 -cipher DEFAULT@SECLEVEL=0")))
    end)

    it("honours --tls-min-version both ways", function()
        local a13 = start { "--tls-min-version=VersionTLS13" }
        assert.is_nil((handshake(a13.port, "-tls1_2")))
        assert.are.equal("TLSv1.3", (handshake(a13.port, "-tls1_3")))
        local a11 = start { "--tls-min-version=VersionTLS11" }
        assert.are.equal("TLSv1.1", (handshake(a11.port, "-tls1_1 -cipher DEFAULT@SECLEVEL=0")))
    end)

    it("restricts TLS 1.2 to the --tls-cipher-suites given by Go name; TLS 1.3 is unaffected", function()
        local a = start { "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
            .. "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" }
        local proto, cipher = handshake(a.port, "-tls1_2")
        assert.are.equal("TLSv1.2", proto)
        assert.are.equal("ECDHE-RSA-AES128-GCM-SHA256", cipher)
        assert.is_nil((handshake(a.port, "-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384")))
        assert.is_nil((handshake(a.port, "-tls1_2 -cipher AES128-GCM-SHA256")))
        assert.are.equal("TLSv1.3", (handshake(a.port, "-tls1_3")))
    end)

    it("accepts the manifests' 15 suites (ECDSA ones included) and negotiates an allowed one", function()
        local a = start { "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,"
            .. "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
            .. "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
            .. "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,"
            .. "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,"
            .. "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,"
            .. "TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_256_GCM_SHA384,"
            .. "TLS_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_256_CBC_SHA" }
        assert.are.equal("AES128-SHA", select(2, handshake(a.port, "-tls1_2 -cipher AES128-SHA")))
        assert.is_nil((handshake(a.port, "-tls1_2 -cipher AES128-SHA256")))
    end)

    it("fails at start-up on an unknown version or cipher suite, with Go's messages", function()
        local rc, err = run { "--tls-min-version=VersionTLS99" }
        assert.are_not.equal(0, rc)
        assert.matches('unknown tls version "VersionTLS99"', err, 1, true)
        rc, err = run { "--tls-cipher-suites=TLS_NOPE" }
        assert.are_not.equal(0, rc)
        assert.matches("Cipher suite TLS_NOPE not supported or doesn't exist", err, 1, true)
    end)

    it("never selects h2 over ALPN", function()
        local a = start()
        local _, _, out = handshake(a.port, "-alpn h2,http/1.1")
        assert.is_nil(out:find("ALPN protocol: h2", 1, true))
        assert.is_truthy(out:find("New, TLSv1", 1, true))
    end)

    it("requests client certificates naming the configured CAs", function()
        local d = helpers.tmpdir("ca")
        sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj %s",
            helpers.shq(d .. "/ca.key"), helpers.shq(d .. "/ca.crt"), helpers.shq("/CN=spec-front-proxy-ca")))
        local a = start { "--requestheader-client-ca-file=" .. d .. "/ca.crt" }
        local _, _, out = handshake(a.port, "-tls1_2")
        assert.matches("Acceptable client certificate CA names\n[^\n]*CN%s*=%s*spec%-front%-proxy%-ca", out)
        -- without any CA no certificate is requested
        local b = start()
        _, _, out = handshake(b.port, "-tls1_2")
        assert.matches("No client certificate CA names sent", out, 1, true)
    end)

    it("serves a rotated --tls-cert-file pair without a restart", function()
        local d = helpers.tmpdir("rot")
        local crt, key = d .. "/tls.crt", d .. "/tls.key"
        make_pair(crt, key, "rotation-one")
        local a = start { "--tls-cert-file=" .. crt, "--tls-private-key-file=" .. key }
        local _, _, out = handshake(a.port)
        assert.matches("subject=CN%s*=%s*rotation%-one", out)
        make_pair(crt, key, "rotation-two")
        local ok = helpers.wait_until(function()
            local _, _, o = handshake(a.port)
            return o:match("subject=CN%s*=%s*rotation%-two") ~= nil
        end, helpers.scale(10), 0.2)
        assert.truthy(ok)
        -- a broken pair is ignored: the current certificate stays
        helpers.write_file(crt, "not a certificate\n")
        helpers.sleep(1.5)
        _, _, out = handshake(a.port)
        assert.matches("subject=CN%s*=%s*rotation%-two", out)
        assert.are.equal(200, (a:get("/healthz")))
    end)

    it("generates a self-signed pair in --cert-dir once and reuses it", function()
        local d = helpers.tmpdir("certdir")
        local a = start { "--cert-dir=" .. d }
        local first = helpers.read_file(d .. "/apiserver.crt")
        assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", first)
        local _, _, out = handshake(a.port)
        assert.matches("subject=CN%s*=%s*localhost@%d+", out)
        a:stop()
        local b = start { "--cert-dir=" .. d }
        assert.are.equal(first, helpers.read_file(d .. "/apiserver.crt"))
        assert.are.equal(200, (b:get("/healthz")))
    end)
end)
