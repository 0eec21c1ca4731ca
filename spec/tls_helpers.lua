-- spec/tls_helpers.lua: TLS fixtures for the Prometheus client specs.
--
-- Provides: tls_helpers.pki(dir) (a test CA, a server certificate for
-- 127.0.0.1/localhost and two client certificates, made with the openssl
-- command), and tls_helpers.start_nginx{ upstream = fake, pki = ... }: nginx
-- as a TLS terminator in front of a fake (spec/helpers.lua) with
-- `ssl_verify_client optional`, passing the client-verify result and subject
-- to the fake as X-Client-Verify / X-Client-Subject headers (Authorization
-- passes through unchanged), so a spec asserts them in /_fake/requests.
-- TLS session resumption is off, so every new connection shows the client
-- certificate it presented.
-- Uses: spec/helpers.lua, openssl, /usr/sbin/nginx (Debian nginx-light).
-- Must never: leave nginx running (every object has :stop(), and a reaper
-- kills what is left when the Lua state closes).

local helpers = require "helpers"

local M = {}
local live = {}

local function run(cmd)
    local ok = os.execute(cmd .. " >/dev/null 2>&1")
    assert(ok == true or ok == 0, "command failed: " .. cmd)
end

-- Generates the PKI under dir. Returns a table of paths: ca, ca_key,
-- server, server_key, client, client_key (CN promlua-client), client2,
-- client2_key (CN promlua-client-2), other_ca (an unrelated CA).
function M.pki(dir)
    local q = helpers.shq
    local p = {}
    local function path(n) return dir .. "/" .. n end
    local function ca(name, cn)
        run(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
            .. "-keyout %s -out %s -days 2 -subj %s", q(path(name .. ".key")), q(path(name .. ".pem")),
            q("/CN=" .. cn)))
        return path(name .. ".pem"), path(name .. ".key")
    end
    local function leaf(name, cn, ext)
        local extfile = helpers.write_file(path(name .. ".ext"), ext)
        run(string.format("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
            .. "-keyout %s -out %s -subj %s", q(path(name .. ".key")), q(path(name .. ".csr")),
            q("/CN=" .. cn)))
        run(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s",
            q(path(name .. ".csr")), q(p.ca), q(p.ca_key), q(path(name .. ".pem")), q(extfile)))
        return path(name .. ".pem"), path(name .. ".key")
    end
    p.ca, p.ca_key = ca("ca", "promlua test CA")
    p.other_ca = ca("other-ca", "unrelated CA")
    p.server, p.server_key = leaf("server", "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:prometheus.test\nextendedKeyUsage=serverAuth\n")
    p.client, p.client_key = leaf("client", "promlua-client", "extendedKeyUsage=clientAuth\n")
    p.client2, p.client2_key = leaf("client2", "promlua-client-2", "extendedKeyUsage=clientAuth\n")
    return p
end

local Nginx = {}
Nginx.__index = Nginx

function Nginx:url(path)
    return "https://127.0.0.1:" .. self.port .. (path or "")
end

function Nginx:stop()
    if self.stopped then return end
    self.stopped = true
    local pid = helpers.read_file(self.dir .. "/nginx.pid")
    pid = pid and pid:match("%d+")
    if pid then
        os.execute("kill -TERM " .. pid .. " 2>/dev/null")
        helpers.wait_until(function()
            return os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= 0
                and os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true
        end, 5)
    end
end

-- tls_helpers.start_nginx{ upstream = fake, pki = pki } -> nginx (:url(),
-- .port, :stop()).
function M.start_nginx(opts)
    local dir = helpers.tmpdir("nginx")
    local port = helpers.free_port()
    os.execute("mkdir -p " .. helpers.shq(dir .. "/tmp"))
    local user = ""
    local id = io.popen("id -u"):read("*l")
    if id == "0" then user = "user root;\n" end
    local conf = user .. string.format([[
worker_processes 1;
daemon on;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp;
    fastcgi_temp_path %s/tmp;
    uwsgi_temp_path %s/tmp;
    scgi_temp_path %s/tmp;
    client_body_buffer_size 1m;
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_client_certificate %s;
        ssl_verify_client optional;
        ssl_session_cache off;
        ssl_session_tickets off;
        keepalive_timeout 0;
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_set_header X-Client-Verify $ssl_client_verify;
            proxy_set_header X-Client-Subject $ssl_client_s_dn;
            proxy_set_header X-Tls-Protocol $ssl_protocol;
        }
    }
}
]], dir, dir, dir, dir, dir, dir, dir, port, opts.pki.server, opts.pki.server_key, opts.pki.ca,
        opts.upstream.port)
    local cf = helpers.write_file(dir .. "/nginx.conf", conf)
    local ok = os.execute(string.format("/usr/sbin/nginx -p %s -c %s >%s 2>&1",
        helpers.shq(dir), helpers.shq(cf), helpers.shq(dir .. "/start.log")))
    if not (ok == true or ok == 0) then
        error("nginx did not start: " .. (helpers.read_file(dir .. "/start.log") or "")
            .. (helpers.read_file(dir .. "/error.log") or ""))
    end
    local n = setmetatable({ dir = dir, port = port }, Nginx)
    live[#live + 1] = n
    if not M._reaper then
        local proxy = newproxy(true)
        getmetatable(proxy).__gc = function()
            for _, x in ipairs(live) do pcall(x.stop, x) end
        end
        M._reaper = proxy
    end
    assert(helpers.wait_until(function()
        return helpers.read_file(dir .. "/nginx.pid")
    end, 5), "nginx wrote no pid file")
    return n
end

-- Stops every nginx started here (for teardown).
function M.cleanup()
    for _, x in ipairs(live) do pcall(x.stop, x) end
    live = {}
end

-- A kubeconfig (for --prometheus-auth-config) in dir: cluster and user
-- fields given as YAML lines (already indented for their block).
function M.kubeconfig(dir, cluster_lines, user_lines, name)
    local text = table.concat({
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: prom",
        "  cluster:",
        "    server: https://not-used.example:9090",
        cluster_lines or "",
        "users:",
        "- name: prom",
        "  user:",
        user_lines or "    {}",
        "contexts:",
        "- name: prom",
        "  context:",
        "    cluster: prom",
        "    user: prom",
        "current-context: prom",
        "",
    }, "\n")
    return helpers.write_file(dir .. "/" .. (name or "prom-kubeconfig"), text)
end

return M
