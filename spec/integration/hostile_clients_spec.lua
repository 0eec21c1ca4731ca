-- spec/integration/hostile_clients_spec.lua: the real binary against
-- clients that misbehave: slowloris connections (TLS handshakes and HTTP
-- headers dribbled a byte at a time), oversized headers and URLs, 10,000
-- concurrent connections (loopback only, a few seconds), malformed
-- percent-encoding, path traversal attempts, connections that never send
-- a request (closed after the 10 s first-request timeout). For each: descriptors,
-- threads and memory stay bounded (/proc), the answer is the right 4xx,
-- nothing crashes, and ordinary requests keep being served.
-- Uses: spec/helpers.lua, spec/robust_helpers.lua, lua-socket, openssl
-- s_client (raw requests curl refuses to send), curl.

local helpers = require "helpers"
local R = require "robust_helpers"
local socket = require "socket"
local cjson = require "cjson"

local BASE = "/apis/custom.metrics.k8s.io/v1beta2"
-- the walkthrough rule, over spec/fixtures/prometheus/custom_metrics.json
local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
      kubernetes_pod_name: {resource: "pod"}
  name: {matches: "^(.*)_total", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
]]

-- Sends raw request bytes over TLS (openssl s_client) and returns the
-- status code of the answer (nil if none) and the first bytes of it.
local function raw_tls(a, request)
    local dir = helpers.tmpdir("raw")
    helpers.write_file(dir .. "/req", request)
    local f = io.popen(string.format(
        "timeout 20 openssl s_client -quiet -ign_eof -connect 127.0.0.1:%d <%s 2>/dev/null | head -c 2048",
        a.port, helpers.shq(dir .. "/req")))
    local out = f:read("*a")
    f:close()
    return tonumber(out:match("^HTTP/1%.%d (%d+)")), out
end

-- Ordinary traffic still flows: health and a real metrics call.
local function assert_serving(a)
    local st = a:get("/livez", nil, { max_time = 5 })
    assert.are.equal(200, st)
    local st2, doc = a:get_json(BASE .. "/namespaces/default/pods/*/http_requests_per_second",
        nil, { max_time = 5 })
    assert.are.equal(200, st2)
    assert.are.equal("MetricValueList", doc.kind)
end

describe("hostile clients", function()
    local kube, prom, a, fds0, threads0

    lazy_setup(function()
        kube = helpers.start_kube({ state_file = helpers.fixture("kube/objects.json") })
        prom = helpers.start_prometheus({ state_file = helpers.fixture("prometheus/custom_metrics.json") })
        a = helpers.start_adapter({ config = CONFIG,
            kube = kube, prometheus = prom })
        assert.is_truthy(helpers.wait_until(function()
            return a:get(BASE .. "/namespaces/default/pods/*/http_requests_per_second") == 200
        end, helpers.scale(10), 0.2))
        -- every worker thread opens its own Prometheus/Kubernetes clients
        -- on first use: warm them all before taking the baseline
        local bg = {}
        for i = 1, 64 do
            bg[i] = R.background(string.format("curl -sk -o /dev/null --max-time 20 %s",
                helpers.shq("https://127.0.0.1:" .. a.port .. BASE
                    .. "/namespaces/default/pods/*/http_requests_per_second")))
        end
        for _, d in ipairs(bg) do R.wait_background(d, 30) end
        helpers.sleep(0.5)
        fds0, threads0 = R.fds(a.pid), R.threads(a.pid)
    end)

    lazy_teardown(function()
        if a then a:stop() end
        if prom then prom:stop() end
        if kube then kube:stop() end
    end)

    after_each(function()
        -- whatever a test did, the process is alive and has given back
        -- its connections
        assert.is_nil(a:exit_status(), a:stderr())
        local ok = helpers.wait_until(function()
            return R.server_conns(a.port) == 0 and R.fds(a.pid) <= fds0 + 16
        end, helpers.scale(10), 0.2)
        local conns, states = R.server_conns(a.port)
        assert.is_truthy(ok, string.format("client connections %d (states %s), fds %d (start %d)",
            conns, states, R.fds(a.pid), fds0))
    end)

    it("malformed percent-encoding in the path is a 400 Status", function()
        for _, p in ipairs({ "/namespaces/%zz/pods/*/x", "/namespaces/a%00b/pods/*/x",
                             "/namespaces/a%2/pods/*/x", "/namespaces/a%/pods/*/x",
                             "/namespaces/%C0%AF/pods/%ff%fe/x" }) do
            local st, doc, body = a:get_json(BASE .. p)
            if p:find("%C0", 1, true) then
                -- well-formed escapes of bytes that are not UTF-8: a
                -- namespace nobody has, not a crash
                assert.is_true(st == 404 or st == 400, p .. " " .. body)
            else
                assert.are.equal(400, st, p .. " " .. body)
                assert.are.equal("Status", doc.kind)
                assert.are.equal("BadRequest", doc.reason)
                assert.are.equal("invalid URL escape in the request path", doc.message)
            end
            assert.is_true(R.valid_utf8(body), body)
        end
        -- in the query string Go drops the broken pair: no 400
        local st = a:get(BASE .. "/namespaces/default/pods/*/http_requests_per_second?labelSelector=%zz")
        assert.are.equal(200, st)
        assert_serving(a)
    end)

    it("path traversal attempts are 404s that never reach the file system", function()
        for _, p in ipairs({ BASE .. "/../../../../etc/passwd", "/../../etc/passwd",
                             BASE .. "/namespaces/..%2f..%2fetc/pods/*/x",
                             BASE .. "/namespaces/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                             "/apis/custom.metrics.k8s.io/%2e%2e/%2e%2e/etc/passwd",
                             "/openapi/v2/../../../proc/self/environ",
                             "//etc/passwd", "/.%2e/.%2e/etc/shadow" }) do
            local f = io.popen(string.format(
                "curl -sk --path-as-is -o - -w '\\n%%{http_code}' --max-time 10 %s",
                helpers.shq("https://127.0.0.1:" .. a.port .. p)))
            local out = f:read("*a")
            f:close()
            local body, code = out:match("^(.*)\n(%d+)$")
            assert.is_truthy(code, out)
            code = tonumber(code)
            assert.is_true(code == 404 or code == 400, p .. " -> " .. code .. " " .. body)
            assert.is_falsy(body:find("root:", 1, true), body)
            assert.is_falsy(body:find("PATH=", 1, true), body)
        end
        assert_serving(a)
    end)

    -- The server answers 431 and closes while the client is still sending
    -- megabytes: the client's kernel may then get a reset and drop the
    -- answer. So: never anything but 431 or nothing, 431 at least once.
    local function refused(a, request, codes)
        local seen
        for _ = 1, 4 do
            local st, out = raw_tls(a, request)
            assert.is_true(st == nil or codes[st] ~= nil, tostring(st) .. " " .. tostring(out))
            if st then seen = st; break end
        end
        assert.is_truthy(seen, "no answer in 4 tries")
        return seen
    end

    it("an oversized header is refused with 431, memory bounded", function()
        local hwm0 = R.hwm_kb(a.pid)
        refused(a, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: "
            .. string.rep("a", 2 * 1048576) .. "\r\n\r\n", { [431] = true })
        refused(a, "GET /livez HTTP/1.1\r\nHost: x\r\n"
            .. string.rep("X-Many: b\r\n", 150000) .. "\r\n", { [431] = true })
        local grew = R.hwm_kb(a.pid) - hwm0
        assert.is_true(grew < helpers.scale(64) * 1024, "peak RSS grew by " .. grew .. " kB")
        assert_serving(a)
    end)

    it("an oversized URL is refused with 414 or 431, a long one within limits is routed", function()
        local hwm0 = R.hwm_kb(a.pid)
        refused(a, "GET " .. BASE .. "/namespaces/default/pods/"
            .. string.rep("a", 2 * 1048576) .. "/x HTTP/1.1\r\nHost: x\r\n\r\n",
            { [414] = true, [431] = true })
        local grew = R.hwm_kb(a.pid) - hwm0
        assert.is_true(grew < helpers.scale(64) * 1024, "peak RSS grew by " .. grew .. " kB")
        -- 60 kB of name: parsed and answered (no such pod metric value)
        local st, out = raw_tls(a, "GET " .. BASE .. "/namespaces/default/pods/"
            .. string.rep("a", 60000) .. "/http_requests_per_second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert.are.equal(404, st, out)
        -- far too many path segments
        st = a:get(BASE .. string.rep("/a", 5000))
        assert.are.equal(404, st)
        assert_serving(a)
    end)

    it("garbage instead of TLS or HTTP is dropped without harm", function()
        for _, junk in ipairs({ "\0\0\0\0\0\0\0\0", "GET / HTTP/1.1\r\n\r\n",
                                string.rep("\22\3\1\255\255", 4000) }) do
            local c = assert(socket.connect("127.0.0.1", a.port))
            c:settimeout(2)
            c:send(junk)
            c:receive(1)
            c:close()
        end
        assert_serving(a)
    end)

    it("a connection that sends no request is closed after 10 s; a keep-alive one idles longer", function()
        -- keep-alive: a request, 13 s of silence, a second request on the
        -- same TLS connection (both answered)
        local keep = R.background(string.format(
            "(printf 'GET /livez HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 13; "
            .. "printf 'GET /readyz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n') "
            .. "| timeout 30 openssl s_client -quiet -connect 127.0.0.1:%d 2>/dev/null", a.port))
        -- silent: a TCP connection that never starts the TLS handshake
        local c = socket.tcp()
        c:settimeout(5)
        assert(c:connect("127.0.0.1", a.port))
        local t0 = helpers.now()
        c:settimeout(helpers.scale(10) + 15)
        -- "*a" reads until the server closes: at most a TLS alert record
        -- (content type 21) comes first
        local data, err = c:receive("*a")
        local waited = helpers.now() - t0
        c:close()
        assert.is_nil(err)
        assert.is_truthy(data == "" or data:byte(1) == 21, data)
        assert.is_true(waited > 9 and waited < helpers.scale(10) + 10, "closed after " .. waited .. " s")
        local out, rc = R.wait_background(keep, 40)
        assert.are.equal(0, rc, out)
        local answers = 0
        for _ in out:gmatch("HTTP/1%.1 200") do answers = answers + 1 end
        assert.are.equal(2, answers, out)
    end)

    it("slowloris: 300 dribbling connections hold no worker, are held within the first-request timeout, then closed", function()
        -- 50 TLS connections feeding HTTP headers one line a second and
        -- 250 raw TCP connections feeding a TLS ClientHello one byte a
        -- second (a handshake in progress: the 10 s first-request timeout
        -- runs from accept). The openssl processes start first: spawning
        -- 50 takes seconds on a loaded machine, and the raw connections'
        -- 10 s must not be spent meanwhile.
        local conns, opened, slow = {}, {}, {}
        finally(function()
            for _, c in ipairs(conns) do c:close() end
            for _, d in ipairs(slow) do R.wait_background(d, 30) end
        end)
        for i = 1, 50 do
            slow[i] = R.background(string.format(
                "(printf 'GET /livez HTTP/1.1\\r\\nHost: x\\r\\n'; i=0; while [ $i -lt 8 ]; do sleep 1; "
                .. "printf 'X-%%d: y\\r\\n' $i; i=$((i+1)); done) | timeout 20 openssl s_client -quiet "
                .. "-connect 127.0.0.1:%d 2>/dev/null | head -c 100", a.port))
        end
        for i = 1, 250 do
            local c = socket.tcp()
            c:settimeout(2)
            assert(c:connect("127.0.0.1", a.port))
            c:settimeout(0)
            conns[i], opened[i] = c, helpers.now()
        end
        -- still open from the client's side: nothing read, no EOF, no reset
        local function is_open(c)
            local data, err, part = c:receive("*a")
            return data == nil and err == "timeout" and part == ""
        end
        local hello = "\22\3\1\2\0\1\0\1\252\3\3" .. string.rep("\7", 600)
        local t0 = helpers.now()
        local served, worst, judged = 0, 0, nil
        for tick = 1, 6 do
            for _, c in ipairs(conns) do c:send(hello:sub(tick, tick)) end
            local t1 = helpers.now()
            local st = a:get("/livez", nil, { max_time = 5 })
            worst = math.max(worst, helpers.now() - t1)
            if st == 200 then served = served + 1 end
            -- judged only inside the timeout (a second spare for the
            -- server's timer): every raw connection open and held
            local age = helpers.now() - opened[1]
            if age < 9 then
                local held, states = R.server_conns(a.port)
                local open = 0
                for _, c in ipairs(conns) do
                    if is_open(c) then open = open + 1 end
                end
                assert.are.equal(250, open, string.format("raw connections open at %.1f s", age))
                assert.is_true(held >= 250, string.format("connections held at %.1f s: %d (%s)",
                    age, held, states))
                judged = age
            end
            helpers.sleep(math.max(0, tick - (helpers.now() - t0)))
        end
        local fds, threads = R.fds(a.pid), R.threads(a.pid)
        assert.is_truthy(judged, "no check within 9 s of connecting")
        assert.are.equal(6, served)
        assert.is_true(worst < helpers.scale(2), "slowest answer " .. worst .. " s")
        assert.is_true(fds <= fds0 + 320, "fds " .. fds .. " (start " .. fds0 .. ")")
        assert.is_true(threads <= threads0 + 4, "threads " .. threads .. " (start " .. threads0 .. ")")
        assert_serving(a)
        -- then the server closes each raw connection: not before 9 s,
        -- not never
        local closed, left = {}, #conns
        local deadline = opened[#opened] + helpers.scale(10) + 15
        while left > 0 and helpers.now() < deadline do
            for i, c in ipairs(conns) do
                if not closed[i] and not is_open(c) then
                    closed[i] = helpers.now() - opened[i]
                    left = left - 1
                end
            end
            helpers.sleep(0.2)
        end
        assert.are.equal(0, left, "raw connections still open after "
            .. string.format("%.1f s", helpers.now() - opened[1]))
        local first, last = math.huge, 0
        for i = 1, #conns do
            first, last = math.min(first, closed[i]), math.max(last, closed[i])
        end
        assert.is_true(first > 9, string.format("raw connections closed after %.1f to %.1f s",
            first, last))
        assert_serving(a)
    end)

    it("10,000 concurrent connections: bounded descriptors and memory, serving again once they go", function()
        local conns = {}
        local hwm0 = R.hwm_kb(a.pid)
        for i = 1, 10000 do
            local c = socket.tcp()
            c:settimeout(0)
            c:connect("127.0.0.1", a.port)    -- non-blocking: in progress
            conns[i] = c
        end
        helpers.sleep(2)
        local fds = R.fds(a.pid)
        local alive = a:exit_status() == nil
        -- MHD takes at most its connection limit (1000); the rest wait in
        -- the backlog or are closed at once
        assert.is_true(alive, a:stderr())
        assert.is_true(fds <= fds0 + 1030, "fds " .. fds .. " (start " .. fds0 .. ")")
        local grew = R.hwm_kb(a.pid) - hwm0
        assert.is_true(grew < helpers.scale(128) * 1024, "peak RSS grew by " .. grew .. " kB")
        for _, c in ipairs(conns) do c:close() end
        conns = nil
        collectgarbage()
        assert.is_truthy(helpers.wait_until(function()
            return a:get("/livez", nil, { max_time = 2 }) == 200
        end, helpers.scale(15), 0.2), a:stderr())
        assert_serving(a)
    end)
end)
