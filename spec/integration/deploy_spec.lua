-- spec/integration/deploy_spec.lua: the deployment artefacts.
--   - `kubectl kustomize deploy/` (and the resource-metrics overlay): every
--     object parses and carries the app.kubernetes.io labels; the
--     kustomizations use only what kustomize v2.0.3 (kubectl 1.20, Debian
--     bookworm's kubernetes-client) reads; the APIService, Service, Deployment, ServiceAccount,
--     RBAC, ConfigMap and PodDisruptionBudget names and selectors agree;
--     the Deployment is hardened and probes /livez and /readyz over HTTPS;
--     its ConfigMap's config.yaml is rules/default.yaml;
--   - the binary started with the Deployment's args (paths, URL and port
--     pointed at temp files and the fakes) serves, and so does the binary
--     started with exactly the args of the prometheus-community Helm chart
--     5.3.0 (spec-server.md 8.3), positional "/adapter" first;
--   - deploy/Dockerfile's runtime stage installs the package of every
--     shared library the binary links.
-- Uses: spec/helpers.lua, kubectl (kustomize), adapter.core (YAML), openssl,
-- objdump/ldd/dpkg. Must never: leave a process behind.

local helpers = require "helpers"
local core = require "adapter.core"
local cjson = require "cjson"

local shq = helpers.shq

local function sh(cmd)
    local f = io.popen("{ " .. cmd .. "; } 2>&1; echo \"rc=$?\"")
    local out = f:read("*a")
    f:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- The YAML node tree as plain Lua values (scalars stay strings).
local function plain(node)
    if node == nil then return nil end
    if node.tag == "map" then
        local t = {}
        for _, p in ipairs(node.pairs) do t[p.key.value] = plain(p.value) end
        return t
    elseif node.tag == "seq" then
        local t = {}
        for i, it in ipairs(node.items) do t[i] = plain(it) end
        return t
    end
    if node.null then return nil end
    return node.value
end

-- kubectl kustomize DIR -> list of objects. Only stdout is YAML: kubectl
-- 1.2x+ warns on stderr that `bases:` is deprecated (deploy/ keeps it for
-- kustomize v2.0.3, kubectl 1.20), and stderr is shown only on failure.
local function render(dir)
    local errf = helpers.tmpdir("kustomize") .. "/stderr"
    local rc, out = sh("kubectl kustomize " .. shq(dir) .. " 2>" .. shq(errf))
    assert(rc == 0, "kubectl kustomize " .. dir .. " failed:\n" .. out
        .. (helpers.read_file(errf) or ""))
    local objs = {}
    for doc in ("\n" .. out .. "\n---\n"):gmatch("\n(.-)\n%-%-%-") do
        if doc:match("%S") then
            local tree, err = core.yaml_parse(doc, dir)
            assert(tree, "object does not parse: " .. tostring(err) .. "\n" .. doc)
            objs[#objs + 1] = plain(tree)
        end
    end
    return objs
end

local function find(objs, kind, name)
    local out = {}
    for _, o in ipairs(objs) do
        if o.kind == kind and (name == nil or o.metadata.name == name) then out[#out + 1] = o end
    end
    return name and out[1] or out
end

local function subset(small, big)
    for k, v in pairs(small or {}) do
        if big[k] ~= v then return false end
    end
    return next(small or {}) ~= nil
end

-- A background process (argv words) with stdout/stderr in dir; killed by
-- pid in the teardown.
local procs = {}
local function start(words, dir)
    local q = {}
    for i, w in ipairs(words) do q[i] = shq(w) end
    local shline = string.format("%s >%s 2>%s & echo $! >%s.tmp && mv %s.tmp %s; wait",
        table.concat(q, " "), shq(dir .. "/out"), shq(dir .. "/err"),
        shq(dir .. "/pid"), shq(dir .. "/pid"), shq(dir .. "/pid"))
    os.execute("sh -c " .. shq(shline) .. " </dev/null >/dev/null 2>&1 &")
    local pid = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/pid")
        return s and tonumber(s:match("%d+"))
    end, 5)
    assert(pid, "did not start: " .. table.concat(words, " "))
    local p = { pid = pid, dir = dir }
    procs[#procs + 1] = p
    return p
end

local function alive(p)
    return os.execute("kill -0 " .. p.pid .. " 2>/dev/null") == 0
end

local function stop(p)
    os.execute("kill " .. p.pid .. " 2>/dev/null")
    helpers.wait_until(function() return not alive(p) end, helpers.scale(5), 0.05)
    os.execute("kill -9 " .. p.pid .. " 2>/dev/null")
end

-- GET over HTTPS -> status, body (curl; extra curl words in `opts`)
local function get(port, path, opts)
    local rc, out = sh("curl -s --max-time 5 " .. (opts or "-k") .. " -w '\\n%{http_code}' "
        .. shq("https://127.0.0.1:" .. port .. path))
    local body, code = out:match("^(.*)\n(%d+)$")
    return tonumber(code) or 0, body or out, rc
end

-- Waits for /readyz 200 (or the process' end); raises with its stderr.
local function wait_ready(p, port, curl_opts)
    local ok = helpers.wait_until(function()
        if not alive(p) then return "exited" end
        return get(port, "/readyz", curl_opts) == 200 and "ready"
    end, helpers.scale(20), 0.1)
    if ok ~= "ready" then
        error("adapter not ready (" .. tostring(ok) .. "):\n" .. (helpers.read_file(p.dir .. "/err") or ""), 2)
    end
end

describe("deploy/", function()
    local base, overlay

    lazy_setup(function()
        base = render("deploy")
        overlay = render("deploy/overlays/resource-metrics")
    end)

    lazy_teardown(function()
        for _, p in ipairs(procs) do stop(p) end
        procs = {}
        helpers.cleanup()
    end)

    it("renders objects that all parse, with kind, apiVersion and name", function()
        local kinds = {}
        for _, o in ipairs(base) do
            assert.is_string(o.apiVersion)
            assert.is_string(o.kind)
            assert.is_string(o.metadata.name)
            kinds[o.kind] = (kinds[o.kind] or 0) + 1
        end
        helpers.assert_same({
            Namespace = 1, ServiceAccount = 1, ClusterRole = 2, ClusterRoleBinding = 3,
            RoleBinding = 1, ConfigMap = 1, Service = 1, Deployment = 1,
            PodDisruptionBudget = 1, APIService = 3,
        }, kinds)
        assert.are.equal(#base + 2, #overlay)
    end)

    it("labels every object, but keeps the Deployment's selector to name and component", function()
        local want = { ["app.kubernetes.io/name"] = "prometheus-adapter",
            ["app.kubernetes.io/component"] = "metrics-adapter",
            ["app.kubernetes.io/part-of"] = "promlua-adapter" }
        for _, objs in ipairs({ base, overlay }) do
            for _, o in ipairs(objs) do
                for k, v in pairs(want) do
                    assert.are.equal(v, (o.metadata.labels or {})[k],
                        o.kind .. " " .. o.metadata.name .. ": label " .. k)
                end
            end
        end
        -- a selector is immutable in a cluster: labels added by kustomize
        -- (commonLabels) would make `kubectl apply` over an existing
        -- prometheus-adapter Deployment fail
        local dep = find(base, "Deployment")[1]
        helpers.assert_same({ ["app.kubernetes.io/name"] = "prometheus-adapter",
            ["app.kubernetes.io/component"] = "metrics-adapter" }, dep.spec.selector.matchLabels)
        helpers.assert_same(dep.spec.selector.matchLabels, find(base, "Service")[1].spec.selector)
    end)

    it("uses no kustomization field kustomize v2.0.3 (kubectl 1.20) does not read", function()
        local rc, list = sh("find deploy -name kustomization.yaml")
        assert(rc == 0, list)
        local n = 0
        for path in list:gmatch("[^\n]+") do
            local tree = assert(core.yaml_parse(assert(helpers.read_file(path)), path))
            local k = plain(tree)
            -- v2.0.3 has no `labels:` (v4.1+); `commonLabels:` would change the selector
            assert.is_nil(k.labels, path .. ": labels:")
            assert.is_nil(k.commonLabels, path .. ": commonLabels:")
            -- v2.0.3 loads only files from `resources:`, directories from `bases:`
            local dir = path:match("^(.*)/[^/]+$")
            for _, r in ipairs(k.resources or {}) do
                assert(os.execute("test -f " .. shq(dir .. "/" .. r)) == 0,
                    path .. ": resources: " .. r .. " is not a file")
            end
            for _, b in ipairs(k.bases or {}) do
                assert(os.execute("test -d " .. shq(dir .. "/" .. b)) == 0, path .. ": bases: " .. b .. " is not a directory")
            end
            n = n + 1
        end
        assert.are.equal(3, n)
    end)

    it("registers custom v1beta1 and v1beta2 and external v1beta1; metrics.k8s.io only in the overlay", function()
        local function names(objs)
            local n = {}
            for _, a in ipairs(find(objs, "APIService")) do
                assert.are.equal(a.spec.version .. "." .. a.spec.group, a.metadata.name)
                n[#n + 1] = a.metadata.name
            end
            table.sort(n)
            return n
        end
        helpers.assert_same({ "v1beta1.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io",
            "v1beta2.custom.metrics.k8s.io" }, names(base))
        helpers.assert_same({ "v1beta1.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io",
            "v1beta1.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io" }, names(overlay))
        local reader = find(overlay, "ClusterRole", "system:aggregated-metrics-reader")
        assert.are.equal("true", reader.metadata.labels["rbac.authorization.k8s.io/aggregate-to-view"])
    end)

    it("has APIService, Service, Deployment, RBAC and ConfigMap names that agree", function()
        for _, objs in ipairs({ base, overlay }) do
            local dep = find(objs, "Deployment")[1]
            local ns = dep.metadata.namespace
            assert.are.equal("monitoring", ns)
            local tmpl = dep.spec.template
            local c = tmpl.spec.containers[1]
            local https_port
            for _, p in ipairs(c.ports) do if p.name == "https" then https_port = p.containerPort end end
            assert.are.equal("6443", https_port)
            assert.is_true(subset(dep.spec.selector.matchLabels, tmpl.metadata.labels))
            for _, a in ipairs(find(objs, "APIService")) do
                local svc = find(objs, "Service", a.spec.service.name)
                assert.is_table(svc, "no Service " .. a.spec.service.name)
                assert.are.equal(svc.metadata.namespace, a.spec.service.namespace)
                assert.are.equal("443", a.spec.service.port)
                local port
                for _, p in ipairs(svc.spec.ports) do if p.port == "443" then port = p end end
                assert.are.equal("https", port.targetPort)
                assert.is_true(subset(svc.spec.selector, tmpl.metadata.labels))
            end
            assert.is_true(subset(find(objs, "PodDisruptionBudget")[1].spec.selector.matchLabels,
                tmpl.metadata.labels))
            local sa = find(objs, "ServiceAccount", tmpl.spec.serviceAccountName)
            assert.is_table(sa)
            assert.are.equal(ns, sa.metadata.namespace)
            -- every binding's role exists (or is built in); every subject is
            -- the adapter's ServiceAccount, but the HPA controller's
            local builtin = { ["system:auth-delegator"] = "ClusterRole",
                ["extension-apiserver-authentication-reader"] = "Role" }
            local bound = {}
            for _, kind in ipairs({ "ClusterRoleBinding", "RoleBinding" }) do
                for _, b in ipairs(find(objs, kind)) do
                    local r = b.roleRef
                    assert(builtin[r.name] == r.kind or find(objs, r.kind, r.name),
                        b.metadata.name .. ": no " .. r.kind .. " " .. r.name)
                    for _, s in ipairs(b.subjects) do
                        assert.are.equal("ServiceAccount", s.kind)
                        if s.name ~= "horizontal-pod-autoscaler" then
                            assert.are.equal(sa.metadata.name, s.name)
                            assert.are.equal(ns, s.namespace)
                        else
                            assert.are.equal("kube-system", s.namespace)
                        end
                    end
                    bound[r.name] = b
                end
            end
            assert.are.equal("kube-system", bound["extension-apiserver-authentication-reader"].metadata.namespace)
            assert.is_table(bound["system:auth-delegator"])
            -- the adapter may list what its queries and caches list
            local reader = find(objs, "ClusterRole", "prometheus-adapter")
            local res = { unpack(reader.rules[1].resources) }
            table.sort(res)
            helpers.assert_same({ "namespaces", "nodes", "pods", "services" }, res)
            helpers.assert_same({ "get", "list", "watch" }, reader.rules[1].verbs)
            assert.is_table(bound["prometheus-adapter"])
            -- the HPA controller may read custom and external metrics
            local hpa = find(objs, "ClusterRole", bound["custom-metrics-server-resources"].roleRef.name)
            helpers.assert_same({ "custom.metrics.k8s.io", "external.metrics.k8s.io" }, hpa.rules[1].apiGroups)
            -- the config volume is the generated ConfigMap, with config.yaml
            local cmname
            for _, v in ipairs(tmpl.spec.volumes) do if v.configMap then cmname = v.configMap.name end end
            local cm = find(objs, "ConfigMap", cmname)
            assert.is_table(cm, "no ConfigMap " .. tostring(cmname))
            assert.are.equal(ns, cm.metadata.namespace)
            assert.is_string(cm.data["config.yaml"])
        end
    end)

    it("runs non-root on a read-only root filesystem, probing /livez and /readyz over HTTPS", function()
        local dep = find(base, "Deployment")[1]
        local pod = dep.spec.template.spec
        local c = pod.containers[1]
        assert.are.equal("true", pod.securityContext.runAsNonRoot)
        assert.are.equal("10001", pod.securityContext.runAsUser)
        assert.are.equal("true", c.securityContext.readOnlyRootFilesystem)
        assert.are.equal("false", c.securityContext.allowPrivilegeEscalation)
        helpers.assert_same({ "ALL" }, c.securityContext.capabilities.drop)
        for probe, path in pairs({ livenessProbe = "/livez", readinessProbe = "/readyz" }) do
            assert.are.equal(path, c[probe].httpGet.path)
            assert.are.equal("HTTPS", c[probe].httpGet.scheme)
            assert.are.equal("https", c[probe].httpGet.port)
        end
        assert.is_string(c.resources.requests.cpu)
        assert.is_string(c.resources.requests.memory)
        assert.is_string(c.resources.limits.memory)
        -- the directories the adapter writes (cert-dir) and reads (config)
        -- are mounted volumes
        local mounts = {}
        for _, m in ipairs(c.volumeMounts) do mounts[m.mountPath] = m end
        for _, a in ipairs(c.args) do
            local dirflag = a:match("^%-%-cert%-dir=(.*)$")
            if dirflag then assert.is_table(mounts[dirflag], "cert-dir " .. dirflag .. " is not a volume") end
            local cfg = a:match("^%-%-config=(.*)$")
            if cfg then assert.is_table(mounts[cfg:match("^(.*)/[^/]+$")], "config dir is not a volume") end
        end
        assert.is_table(mounts["/tmp"])
    end)

    it("ships rules/default.yaml as the ConfigMap's config.yaml", function()
        local cm = find(base, "ConfigMap")[1]
        local text = cm.data["config.yaml"]
        local default = assert(helpers.read_file("rules/default.yaml"))
        local first = default:match("^[^\n]*\n")
        local at = text:find(first, 1, true)
        assert(at, "config.yaml does not contain rules/default.yaml")
        assert.are.equal(default, text:sub(at))
    end)

    it("starts the binary with the Deployment's args against the fakes", function()
        local dep = find(base, "Deployment")[1]
        local cm = find(base, "ConfigMap")[1]
        local dir = helpers.tmpdir("deploy")
        local kube = helpers.start_kube { state_file = helpers.fixture("kube/objects.json") }
        local prom = helpers.start_prometheus {}
        local port = helpers.free_port()
        -- the in-cluster paths, Prometheus URL and port, pointed here
        local words, seen = { helpers.adapter_bin() }, {}
        for _, a in ipairs(dep.spec.template.spec.containers[1].args) do
            local flag, val = a:match("^(%-%-[%w%-]+)=(.*)$")
            assert(flag, "not a --flag=value arg: " .. a)
            seen[flag] = val
            if flag == "--config" then
                val = helpers.write_file(dir .. "/config.yaml", cm.data["config.yaml"])
            elseif flag == "--cert-dir" then
                val = dir .. "/certs"
            elseif flag == "--prometheus-url" then
                val = prom:url("/")
            elseif flag == "--secure-port" then
                val = tostring(port)
            end
            words[#words + 1] = flag .. "=" .. val
        end
        for _, f in ipairs({ "--config", "--cert-dir", "--prometheus-url", "--secure-port",
            "--metrics-relist-interval", "--tls-cipher-suites" }) do
            assert.is_string(seen[f], f .. " missing from the Deployment")
        end
        -- the three clients are in-cluster in a pod; here they are the fake,
        -- which allows every TokenReview and SubjectAccessReview (it has no
        -- extension-apiserver-authentication ConfigMap: tolerated)
        local kc = helpers.kubeconfig(kube, dir)
        for _, a in ipairs({ "--lister-kubeconfig=" .. kc, "--authentication-kubeconfig=" .. kc,
            "--authorization-kubeconfig=" .. kc, "--authentication-tolerate-lookup-failure=true" }) do
            words[#words + 1] = a
        end
        local p = start(words, dir)
        wait_ready(p, port)
        -- the config's rules and resourceRules install custom and resource metrics
        assert.are.equal(200, (get(port, "/apis/custom.metrics.k8s.io/v1beta1")))
        assert.are.equal(200, (get(port, "/apis/custom.metrics.k8s.io/v1beta2")))
        assert.are.equal(200, (get(port, "/apis/metrics.k8s.io/v1beta1")))
        assert.are.equal(200, (get(port, "/livez")))
        -- a cipher suite of the Deployment's list is negotiated under TLS 1.2
        local st = get(port, "/livez", "-k --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
        assert.are.equal(200, st)
        stop(p)
        kube:stop(); prom:stop()
    end)

    it("starts the binary with exactly the Helm chart 5.3.0 args, positional /adapter first", function()
        local dir = helpers.tmpdir("helm")
        local kube = helpers.start_kube { state_file = helpers.fixture("kube/objects.json") }
        local prom = helpers.start_prometheus {}
        local cfg = helpers.write_file(dir .. "/config.yaml", assert(helpers.read_file("rules/default.yaml")))
        local function chart_args(port, tls)
            -- templates/deployment.yaml of the chart: args in this order;
            -- prometheus.url/port/path give "<url>:<port><path>"
            local a = { helpers.adapter_bin(), "/adapter",
                "--secure-port=" .. port }
            if tls then
                a[#a + 1] = "--tls-cert-file=" .. tls .. "/tls.crt"
                a[#a + 1] = "--tls-private-key-file=" .. tls .. "/tls.key"
            end
            a[#a + 1] = "--cert-dir=" .. dir .. "/cert-" .. port
            a[#a + 1] = "--prometheus-url=http://127.0.0.1:" .. prom.port
            a[#a + 1] = "--metrics-relist-interval=1m"
            a[#a + 1] = "--v=4"
            a[#a + 1] = "--config=" .. cfg
            -- extraArguments (verbatim after the chart's own): outside a pod
            -- the three Kubernetes clients need a kubeconfig (the fake, which
            -- allows every TokenReview and SubjectAccessReview)
            local kc = helpers.kubeconfig(kube, dir)
            a[#a + 1] = "--lister-kubeconfig=" .. kc
            a[#a + 1] = "--authentication-kubeconfig=" .. kc
            a[#a + 1] = "--authorization-kubeconfig=" .. kc
            a[#a + 1] = "--authentication-tolerate-lookup-failure=true"
            return a
        end
        -- self-signed certificates (chart default)
        local port = helpers.free_port()
        local pdir = dir .. "/plain"
        os.execute("mkdir -p " .. shq(pdir))
        local p = start(chart_args(port), pdir)
        wait_ready(p, port)
        assert.are.equal(200, (get(port, "/apis/custom.metrics.k8s.io/v1beta1")))
        assert.are.equal(200, (get(port, "/healthz")))   -- the chart's probes
        stop(p)
        -- tls.enable / cert-manager: the Secret's tls.crt and tls.key
        local tls = dir .. "/tls"
        os.execute("mkdir -p " .. shq(tls))
        local rc, out = sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
            .. " -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
            .. " -keyout " .. shq(tls .. "/tls.key") .. " -out " .. shq(tls .. "/tls.crt"))
        assert(rc == 0, out)
        local port2 = helpers.free_port()
        local tdir = dir .. "/tlsrun"
        os.execute("mkdir -p " .. shq(tdir))
        local verify = "--cacert " .. shq(tls .. "/tls.crt")
        local p2 = start(chart_args(port2, tls), tdir)
        wait_ready(p2, port2, verify)
        -- served with the given certificate: it verifies against itself
        assert.are.equal(200, (get(port2, "/apis/custom.metrics.k8s.io/v1beta1", verify)))
        stop(p2)
        kube:stop(); prom:stop()
    end)
end)

describe("deploy/Dockerfile", function()
    local text

    lazy_setup(function()
        text = assert(helpers.read_file("deploy/Dockerfile"))
    end)

    -- package names of the apt-get install in the stage starting at FROM n
    local function stage_packages(n)
        local parts, i = {}, 0
        for line in text:gmatch("[^\n]*") do
            if line:match("^FROM ") then
                i = i + 1
                parts[i] = ""
            elseif i > 0 then
                parts[i] = parts[i] .. line .. "\n"
            end
        end
        local body = assert(parts[n], "no stage " .. n)
        local joined = body:gsub("\\\n", " ")
        local pkgs = {}
        local list = joined:match("apt%-get install %-y %-%-no%-install%-recommends%s+(.-)%s*&&")
        assert(list, "no apt-get install in stage " .. n)
        for w in list:gmatch("%S+") do pkgs[w] = true end
        return pkgs
    end

    it("builds on Debian bookworm and runs a slim image as uid 10001 with entrypoint /adapter", function()
        assert.truthy(text:find("\nFROM debian:bookworm AS build\n", 1, true))
        assert.truthy(text:find("\nFROM debian:bookworm%-slim\n"))
        assert.truthy(text:find("\nUSER 10001:10001\n", 1, true))
        assert.truthy(text:find('\nENTRYPOINT ["/adapter"]\n', 1, true))
        -- every COPY source of the build context exists
        for src in text:gmatch("\nCOPY ([^%s-][^%s]*)") do
            assert(helpers.read_file(src:gsub("/$", "")) or os.execute("test -d " .. shq(src)) == 0,
                "COPY source missing: " .. src)
        end
    end)

    it("installs the build packages scripts/deps.sh installs", function()
        local deps = assert(helpers.read_file("scripts/deps.sh"))
        local build = deps:match('build_pkgs="(.-)"')
        for p in pairs(stage_packages(1)) do
            assert(build:find("%f[%w%-]" .. p:gsub("%-", "%%-") .. "%f[^%w%-%.]"),
                p .. " is not in scripts/deps.sh's build packages")
        end
    end)

    it("installs the package of every shared library the binary links, and no -dev package", function()
        local runtime = stage_packages(2)
        for p in pairs(runtime) do assert.is_nil(p:match("%-dev$"), p) end
        local bin = helpers.adapter_bin()
        local rc, dyn = sh("objdump -p " .. shq(bin))
        assert(rc == 0, "objdump -p " .. bin .. ": " .. dyn)
        local _, ldd = sh("ldd " .. shq(bin))
        local checked = 0
        for lib in dyn:gmatch("NEEDED%s+(%S+)") do
            local path = ldd:match(lib:gsub("[%.%-+]", "%%%0") .. " => (%S+)")
            assert(path, lib .. " not resolved by ldd")
            local rc2, owner = sh("dpkg -S $(readlink -f " .. shq(path) .. ") 2>/dev/null || dpkg -S " .. shq(path))
            assert(rc2 == 0, owner)
            local pkg = owner:match("^([^:]+):")
            -- libc6 and libgcc-s1 are in every Debian image; the sanitizer
            -- runtimes only in the ASan+UBSan test build
            if pkg ~= "libc6" and pkg ~= "libgcc-s1" and not pkg:match("^libasan")
                and not pkg:match("^libubsan") then
                assert(runtime[pkg], lib .. " comes from " .. pkg .. ", which the runtime stage does not install")
            end
            checked = checked + 1
        end
        assert.is_true(checked >= 8)
    end)
end)
