-- spec/helpers.lua: shared test harness for the busted specs.
--
-- Provides: temp dirs under spec/tmp/, starting and stopping the fake
-- Prometheus and fake Kubernetes API (spec/fixtures/fake_*.lua, run as
-- subprocesses), a temp kubeconfig, starting the adapter binary and talking
-- HTTPS to it through `curl -sk`, running the binary to completion, a
-- sorted-key serialiser and deep compare, and the small non-blocking HTTP/1.1
-- server loop the fakes themselves are built on (helpers.http_server).
-- Uses: lua-socket, lua-cjson, the shell (sh, kill, curl, rm, mkdir).
-- Must never: do anything at load (busted loads it as the helper for every
-- run, and the fakes require it too); leave processes behind (every start_*
-- object has a :stop(), and helpers.cleanup() stops whatever is left).
--
-- Processes are started through `sh -c 'prog & echo $! >pid; wait $!; echo $?
-- >rc' &`: the pid file holds the real program's pid (so signals reach it and
-- not a shell), and the rc file appears when it exits, with its exit status
-- (128+N when killed by signal N).

local socket = require "socket"
local cjson = require "cjson"

local helpers = {}

-- -- Small utilities ---------------------------------------------------------

-- Quote one word for sh.
function helpers.shq(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function helpers.read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

function helpers.write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
end

function helpers.now()
    return socket.gettime()
end

function helpers.sleep(s)
    socket.sleep(s)
end

-- Poll fn() until it returns a truthy value or `timeout` seconds pass.
-- Returns fn's value, or nil on timeout.
function helpers.wait_until(fn, timeout, step)
    local deadline = socket.gettime() + (timeout or 5)
    repeat
        local v = fn()
        if v then return v end
        socket.sleep(step or 0.02)
    until socket.gettime() > deadline
    return nil
end

-- Longer timeouts under the sanitizer build (ADAPTER_ASAN=1).
function helpers.scale(t)
    if os.getenv("ADAPTER_ASAN") == "1" then return t * 4 end
    return t
end

function helpers.root()
    return os.getenv("PWD") or "."
end

-- Absolute path of a file under spec/fixtures/.
function helpers.fixture(rel)
    return helpers.root() .. "/spec/fixtures/" .. rel
end

-- Decoded JSON of a file under spec/fixtures/.
function helpers.fixture_json(rel)
    return cjson.decode((assert(helpers.read_file(helpers.fixture(rel)), "no fixture " .. rel)))
end

-- -- Temp dirs -------------------------------------------------------------

local tmp_dirs = {}     -- every dir made by tmpdir(), removed by cleanup()
local live = {}         -- every started process object not yet stopped
local seq = 0

-- A fresh directory under spec/tmp/. Removed by helpers.cleanup() unless
-- SPEC_KEEP_TMP is set (for post-mortems).
function helpers.tmpdir(tag)
    seq = seq + 1
    -- our pid keeps concurrent busted runs in one tree from colliding
    if not helpers._pid then
        local stat = helpers.read_file("/proc/self/stat") or ""
        helpers._pid = tonumber(stat:match("^(%d+)")) or math.random(1, 1e9)
    end
    local dir = string.format("%s/spec/tmp/%s-%d-%d-%d", helpers.root(),
        tag or "t", helpers._pid, os.time(), seq)
    os.execute("mkdir -p " .. helpers.shq(dir))
    tmp_dirs[#tmp_dirs + 1] = dir
    return dir
end

function helpers.cleanup()
    for i = #live, 1, -1 do
        local p = live[i]
        if p and not p.stopped then pcall(p.stop, p) end
    end
    live = {}
    if not os.getenv("SPEC_KEEP_TMP") then
        for _, d in ipairs(tmp_dirs) do
            os.execute("rm -rf " .. helpers.shq(d))
        end
    end
    tmp_dirs = {}
end

-- -- Sorted-key serialisation and deep compare --------------------------------

local function ser(v, out, indent)
    local t = type(v)
    if t == "table" then
        if v == cjson.null then out[#out + 1] = "null"; return end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b)
            local ta, tb = type(a), type(b)
            if ta ~= tb then return ta < tb end
            return a < b
        end)
        if #keys == 0 then out[#out + 1] = "{}"; return end
        out[#out + 1] = "{\n"
        for _, k in ipairs(keys) do
            out[#out + 1] = indent .. "  "
            if type(k) == "string" then
                out[#out + 1] = string.format("%q", k)
            else
                out[#out + 1] = "[" .. tostring(k) .. "]"
            end
            out[#out + 1] = " = "
            ser(v[k], out, indent .. "  ")
            out[#out + 1] = ",\n"
        end
        out[#out + 1] = indent .. "}"
    elseif t == "string" then
        out[#out + 1] = string.format("%q", v)
    else
        out[#out + 1] = tostring(v)
    end
end

-- Deterministic text of any value (tables with sorted keys), so two tables
-- compare by text and a failure message shows both sides readably.
function helpers.stringify(v)
    local out = {}
    ser(v, out, "")
    return table.concat(out)
end

-- true when a and b are structurally equal; else false and a diff text.
function helpers.same(a, b)
    local sa, sb = helpers.stringify(a), helpers.stringify(b)
    if sa == sb then return true end
    return false, "expected:\n" .. sa .. "\nactual:\n" .. sb
end

-- busted-friendly assertion: fails with both serialisations.
function helpers.assert_same(expected, actual, what)
    local ok, diff = helpers.same(expected, actual)
    if not ok then
        error((what and (what .. ": ") or "") .. diff, 2)
    end
end

-- -- URL / form encoding ------------------------------------------------------

function helpers.urlencode(s)
    return (tostring(s):gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", c:byte())
    end))
end

function helpers.form_decode(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function helpers.path_decode(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=2&a=3" -> { a = {"1","3"}, b = "2" } (a repeated key gives an array).
function helpers.parse_query(q)
    local params = {}
    if not q or q == "" then return params end
    for pair in q:gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=(.*)$")
        if not k then k, v = pair, "" end
        k, v = helpers.form_decode(k), helpers.form_decode(v)
        local cur = params[k]
        if cur == nil then
            params[k] = v
        elseif type(cur) == "table" then
            cur[#cur + 1] = v
        else
            params[k] = { cur, v }
        end
    end
    return params
end

-- Build "k=v&..." with sorted keys; array values repeat the key.
function helpers.build_query(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
        local v = t[k]
        if type(v) ~= "table" then v = { v } end
        for _, x in ipairs(v) do
            parts[#parts + 1] = helpers.urlencode(k) .. "=" .. helpers.urlencode(x)
        end
    end
    return table.concat(parts, "&")
end

-- A JSON array text from a Lua list (cjson cannot tell an empty list from
-- an empty object; this always writes "[...]").
function helpers.json_array(list, encode)
    encode = encode or cjson.encode
    local parts = {}
    for i, v in ipairs(list) do parts[i] = encode(v) end
    return "[" .. table.concat(parts, ",") .. "]"
end

-- The rows of a command's table output (kubectl top) as lists of words.
function helpers.rows(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
        local words = {}
        for w in line:gmatch("%S+") do words[#words + 1] = w end
        out[#out + 1] = words
    end
    return out
end

-- -- Non-blocking HTTP/1.1 server (used by the fakes) ------------------------

local REASONS = {
    [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
    [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
    [404] = "Not Found", [405] = "Method Not Allowed", [410] = "Gone",
    [422] = "Unprocessable Entity", [429] = "Too Many Requests",
    [500] = "Internal Server Error", [502] = "Bad Gateway",
    [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local Conn = {}
Conn.__index = Conn

-- Queue raw bytes for writing; the select loop drains them.
function Conn:write(s)
    if self.closed then return end
    self.out[#self.out + 1] = s
end

-- Send a complete response and make the connection ready for the next
-- request (keep-alive) or close it after the write.
function Conn:respond(res)
    if self.closed then return end
    local status = res.status or 200
    local body = res.body or ""
    local h = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Status") }
    local headers = res.headers or {}
    local has_ct = false
    for k, v in pairs(headers) do
        if k:lower() == "content-type" then has_ct = true end
        h[#h + 1] = k .. ": " .. v .. "\r\n"
    end
    if not has_ct then h[#h + 1] = "Content-Type: application/json\r\n" end
    h[#h + 1] = "Content-Length: " .. #body .. "\r\n"
    if self.req_close or res.close then
        h[#h + 1] = "Connection: close\r\n"
        self.close_after = true
    end
    h[#h + 1] = "\r\n"
    -- HEAD: same headers (Content-Length included), no body
    self:write(table.concat(h) .. (self.method == "HEAD" and "" or body))
    self.busy = false
end

-- Start a chunked response (watch streams). Follow with :chunk() and :finish().
function Conn:start_stream(res)
    local status = res.status or 200
    local h = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Status") }
    for k, v in pairs(res.headers or {}) do h[#h + 1] = k .. ": " .. v .. "\r\n" end
    h[#h + 1] = "Transfer-Encoding: chunked\r\n\r\n"
    self:write(table.concat(h))
    self.streaming = true
end

function Conn:chunk(data)
    if #data == 0 then return end
    self:write(string.format("%x\r\n", #data) .. data .. "\r\n")
end

function Conn:finish()
    if not self.streaming then return end
    self:write("0\r\n\r\n")
    self.streaming = false
    self.busy = false
    if self.on_end then self.on_end(self) end
    self.on_end = nil
end

-- helpers.http_server{ port = 0, handler = fn(req, conn) } -> server
-- handler returns a response table { status, headers, body }, optionally
-- with delay = seconds (answered later; other connections keep being
-- served), hang = true (never answered; held until the client closes), or
-- nil when it has taken over the connection (conn:start_stream ...).
-- req = { method, target, path (percent-decoded), raw_path, query (raw),
--         params, headers (lower-case names), header_list, body, time }.
-- server:run() loops forever; server:after(sec, fn) schedules a timer.
function helpers.http_server(opts)
    local listener = assert(socket.bind("127.0.0.1", opts.port or 0))
    listener:settimeout(0)
    local _, port = listener:getsockname()
    local srv = { port = tonumber(port), conns = {}, timers = {} }

    function srv:after(sec, fn)
        self.timers[#self.timers + 1] = { at = socket.gettime() + sec, fn = fn }
    end

    local function drop(c)
        if c.closed then return end
        c.closed = true
        pcall(c.sock.close, c.sock)
        srv.conns[c.sock] = nil
        if c.on_end then c.on_end(c) end
        c.on_end = nil
    end
    srv.drop = drop

    local function dispatch(c, req)
        c.busy = true
        local ok, res = pcall(opts.handler, req, c)
        if not ok then
            io.stderr:write("fake: handler error: ", tostring(res), "\n")
            res = { status = 500, body = cjson.encode({ error = tostring(res) }) }
        end
        if res == nil then return end
        if res.hang then return end
        if res.delay and res.delay > 0 then
            local d = res.delay
            res.delay = nil
            srv:after(d, function() c:respond(res) end)
            return
        end
        c:respond(res)
    end

    -- Parse as many complete requests from c.inbuf as we may (one at a
    -- time: the next is parsed only after the previous was answered).
    local function parse(c)
        while not c.busy and not c.closed and not c.close_after do
            local hend = c.inbuf:find("\r\n\r\n", 1, true)
            if not hend then return end
            local head = c.inbuf:sub(1, hend - 1)
            local method, target = head:match("^(%u+) (%S+) HTTP/1%.%d")
            if not method then drop(c); return end
            local headers, list = {}, {}
            for line in head:gmatch("\r\n([^\r\n]*)") do
                local k, v = line:match("^([^:]+):%s*(.-)%s*$")
                if k then
                    k = k:lower()
                    list[#list + 1] = { k, v }
                    headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
                end
            end
            local need = tonumber(headers["content-length"] or "0") or 0
            if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
                -- decode a chunked request body in place (rare: libcurl sends
                -- it only for bodies of unknown size)
                local pos, parts = hend + 4, {}
                while true do
                    local eol = c.inbuf:find("\r\n", pos, true)
                    if not eol then return end
                    local n = tonumber(c.inbuf:sub(pos, eol - 1):match("^%x+"), 16)
                    if not n then drop(c); return end
                    if n == 0 then
                        local tend = c.inbuf:find("\r\n\r\n", eol - 2, true)
                        if not tend then return end
                        c.inbuf = c.inbuf:sub(1, hend + 3) .. table.concat(parts)
                            .. c.inbuf:sub(tend + 4)
                        need = #table.concat(parts)
                        headers["transfer-encoding"] = nil
                        break
                    end
                    if #c.inbuf < eol + 1 + n + 2 then return end
                    parts[#parts + 1] = c.inbuf:sub(eol + 2, eol + 1 + n)
                    pos = eol + 2 + n + 2
                end
            end
            if #c.inbuf - (hend + 3) < need then
                if need > 0 and (headers["expect"] or ""):lower() == "100-continue"
                    and not c.continued then
                    c.continued = true
                    c:write("HTTP/1.1 100 Continue\r\n\r\n")
                end
                return
            end
            c.continued = false
            local body = c.inbuf:sub(hend + 4, hend + 3 + need)
            c.inbuf = c.inbuf:sub(hend + 4 + need)
            local raw_path, query = target:match("^([^?]*)%??(.*)$")
            c.req_close = (headers["connection"] or ""):lower() == "close"
            c.method = method
            dispatch(c, {
                method = method, target = target, raw_path = raw_path,
                path = helpers.path_decode(raw_path), query = query,
                params = helpers.parse_query(query), headers = headers,
                header_list = list, body = body, time = socket.gettime(),
            })
        end
    end

    function srv:run()
        while true do
            local readers, writers = { listener }, {}
            for s, c in pairs(self.conns) do
                readers[#readers + 1] = s
                if #c.out > 0 then writers[#writers + 1] = s end
            end
            local now = socket.gettime()
            local wait = 0.05
            for _, t in ipairs(self.timers) do
                wait = math.max(0, math.min(wait, t.at - now))
            end
            local r, w = socket.select(readers, writers, wait)
            for _, s in ipairs(r) do
                if s == listener then
                    while true do
                        local cs = listener:accept()
                        if not cs then break end
                        cs:settimeout(0)
                        cs:setoption("tcp-nodelay", true)
                        self.conns[cs] = setmetatable({ sock = cs, inbuf = "", out = {},
                            busy = false, server = self }, Conn)
                    end
                else
                    local c = self.conns[s]
                    if c then
                        local data, err, partial = s:receive(65536)
                        data = data or partial
                        if data and #data > 0 then c.inbuf = c.inbuf .. data end
                        if err == "closed" then drop(c) else parse(c) end
                    end
                end
            end
            for _, s in ipairs(w) do
                local c = self.conns[s]
                if c and #c.out > 0 then
                    local buf = table.concat(c.out)
                    local last, err, partial = s:send(buf)
                    last = last or partial or 0
                    if last < #buf then
                        c.out = { buf:sub(last + 1) }
                    else
                        c.out = {}
                    end
                    if err == "closed" then
                        drop(c)
                    elseif #c.out == 0 and c.close_after then
                        drop(c)
                    elseif #c.out == 0 then
                        parse(c)
                    end
                end
            end
            now = socket.gettime()
            if #self.timers > 0 then
                local due, keep = {}, {}
                for _, t in ipairs(self.timers) do
                    if t.at <= now then due[#due + 1] = t else keep[#keep + 1] = t end
                end
                self.timers = keep
                for _, t in ipairs(due) do t.fn() end
            end
            -- answered connections may have pipelined requests waiting
            for _, c in pairs(self.conns) do
                if not c.busy and #c.inbuf > 0 and #c.out == 0 then parse(c) end
            end
        end
    end

    return srv
end

-- Parse "--key value" pairs of a fake's argv into a table.
function helpers.parse_args(argv)
    local o = {}
    local i = 1
    while i <= #argv do
        local k = argv[i]:match("^%-%-(.+)$")
        if k then
            local kk, vv = k:match("^([^=]+)=(.*)$")
            if kk then o[kk] = vv; i = i + 1
            else o[k] = argv[i + 1]; i = i + 2 end
        else
            i = i + 1
        end
    end
    return o
end

-- -- Plain HTTP client to the fakes -----------------------------------------

-- helpers.http(method, url, body, headers) -> status, body, headers
-- One request on a fresh connection (socket.http), with a timeout.
function helpers.http(method, url, body, headers, timeout)
    local http = require "socket.http"
    local ltn12 = require "ltn12"
    local out = {}
    local h = {}
    for k, v in pairs(headers or {}) do h[k:lower()] = v end
    if body then
        h["content-length"] = tostring(#body)
        h["content-type"] = h["content-type"] or "application/json"
    end
    http.TIMEOUT = timeout or 10
    local ok, code, rh = http.request {
        url = url, method = method, headers = h,
        source = body and ltn12.source.string(body) or nil,
        sink = ltn12.sink.table(out),
    }
    if not ok then return nil, code end
    return code, table.concat(out), rh
end

-- -- Fake servers ------------------------------------------------------------

local Proc = {}
Proc.__index = Proc

-- Start `cmd` (a shell command line, already quoted) in the background with
-- stdout/stderr to files in dir. Returns a Proc.
local function spawn(cmd, dir)
    local q = helpers.shq
    -- pid/rc are written to .tmp files and renamed, so a reader never sees
    -- a half-written line.
    local sh = string.format(
        "%s >%s 2>%s & echo $! >%s && mv %s %s; wait $!; echo $? >%s && mv %s %s",
        cmd, q(dir .. "/stdout"), q(dir .. "/stderr"),
        q(dir .. "/pid.tmp"), q(dir .. "/pid.tmp"), q(dir .. "/pid"),
        q(dir .. "/rc.tmp"), q(dir .. "/rc.tmp"), q(dir .. "/rc"))
    os.execute("sh -c " .. q(sh) .. " </dev/null >/dev/null 2>&1 &")
    -- Last line of defence against leaked subprocesses: when the Lua state
    -- closes (end of the busted run) every process not stopped gets SIGKILL.
    -- Created on the first spawn, not at load, so loading stays side-effect free.
    if not helpers._reaper then
        local proxy = newproxy(true)
        getmetatable(proxy).__gc = function()
            for _, lp in ipairs(live) do
                if lp.pid and not lp.stopped then
                    os.execute("kill -KILL " .. lp.pid .. " 2>/dev/null")
                end
            end
        end
        helpers._reaper = proxy
    end
    local p = setmetatable({ dir = dir }, Proc)
    local pid = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/pid")
        return s and tonumber(s:match("%d+"))
    end, 5)
    assert(pid, "process did not start: " .. cmd)
    p.pid = pid
    live[#live + 1] = p
    return p
end

-- Exit status if the process has ended, else nil.
function Proc:exit_status()
    local s = helpers.read_file(self.dir .. "/rc")
    return s and tonumber(s:match("%-?%d+"))
end

function Proc:stderr()
    return helpers.read_file(self.dir .. "/stderr") or ""
end

function Proc:stdout()
    return helpers.read_file(self.dir .. "/stdout") or ""
end

-- SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit
-- status (143 for a clean SIGTERM death, the code for a normal exit) and
-- the captured stderr.
function Proc:stop(grace)
    if not self.stopped then
        self.stopped = true
        if not self:exit_status() then
            os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
            local rc = helpers.wait_until(function() return self:exit_status() end,
                grace or helpers.scale(5))
            if not rc then
                self.killed = true
                os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
                helpers.wait_until(function() return self:exit_status() end, 5)
            end
        end
    end
    return self:exit_status(), self:stderr()
end

local Fake = setmetatable({}, { __index = Proc })
Fake.__index = Fake

function Fake:url(path)
    return "http://127.0.0.1:" .. self.port .. (self.prefix or "") .. (path or "")
end

-- Base URL without the configured path prefix (control API lives there).
function Fake:base()
    return "http://127.0.0.1:" .. self.port
end

-- Call the control API: fake:control("POST", "/_fake/query", {...}) ->
-- decoded JSON reply (errors raise).
function Fake:control(method, path, tbl)
    local body = tbl ~= nil and (type(tbl) == "string" and tbl or cjson.encode(tbl)) or nil
    local code, text = helpers.http(method, self:base() .. path, body)
    assert(code, "fake control call failed: " .. tostring(text))
    assert(code >= 200 and code < 300,
        "fake control " .. method .. " " .. path .. " -> " .. tostring(code) .. ": " .. tostring(text))
    if text == "" then return nil end
    return cjson.decode(text)
end

-- Every recorded request (control calls excluded), oldest first. With
-- `path`, only requests whose path (prefix stripped: "/api/v1/query")
-- equals it.
function Fake:requests(path)
    local all = self:control("GET", "/_fake/requests")
    if not path then return all end
    local out = {}
    for _, r in ipairs(all) do
        if (r.api_path or r.path) == path then out[#out + 1] = r end
    end
    return out
end

function Fake:clear_requests()
    self:control("DELETE", "/_fake/requests")
end

local function start_fake(script, tag, opts)
    opts = opts or {}
    local dir = helpers.tmpdir(tag)
    local args = { "luajit", helpers.shq(helpers.root() .. "/spec/fixtures/" .. script),
        "--port", "0" }
    if opts.state_file then
        args[#args + 1] = "--state-file"; args[#args + 1] = helpers.shq(opts.state_file)
    elseif opts.state then
        local f = dir .. "/state.json"
        helpers.write_file(f, type(opts.state) == "string" and opts.state or cjson.encode(opts.state))
        args[#args + 1] = "--state-file"; args[#args + 1] = helpers.shq(f)
    end
    if opts.prefix then
        args[#args + 1] = "--prefix"; args[#args + 1] = helpers.shq(opts.prefix)
    end
    for _, a in ipairs(opts.args or {}) do args[#args + 1] = helpers.shq(a) end
    local p = spawn("cd " .. helpers.shq(helpers.root()) .. " && exec " .. table.concat(args, " "), dir)
    setmetatable(p, Fake)
    p.prefix = opts.prefix
    local port = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/stdout")
        return s and tonumber(s:match("PORT (%d+)"))
    end, 5)
    if not port then
        local _, err = p:stop()
        error(script .. " did not print its port; stderr:\n" .. tostring(err))
    end
    p.port = port
    return p
end

-- Start spec/fixtures/fake_prometheus.lua. opts: prefix ("/prom"), state
-- (table or JSON text: initial script, see the fake) or state_file (path of
-- such a JSON file, e.g. spec/fixtures/prometheus/custom_metrics.json), args.
function helpers.start_prometheus(opts)
    return start_fake("fake_prometheus.lua", "prom", opts)
end

-- Start spec/fixtures/fake_kube.lua. opts: state or state_file (JSON
-- {objects = [...]}, e.g. spec/fixtures/kube/objects.json), discovery (file), args.
function helpers.start_kube(opts)
    opts = opts or {}
    if opts.discovery then
        opts.args = opts.args or {}
        table.insert(opts.args, "--discovery")
        table.insert(opts.args, opts.discovery)
    end
    return start_fake("fake_kube.lua", "kube", opts)
end

-- Write a kubeconfig pointing at the fake kube (plain HTTP). Returns path.
function helpers.kubeconfig(kube, dir)
    dir = dir or helpers.tmpdir("kubeconfig")
    local path = dir .. "/kubeconfig"
    helpers.write_file(path, table.concat({
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: fake",
        "  cluster:",
        "    server: " .. kube:base(),
        "users:",
        "- name: fake",
        "  user:",
        "    token: fake-token",
        "contexts:",
        "- name: fake",
        "  context:",
        "    cluster: fake",
        "    user: fake",
        "current-context: fake",
        "",
    }, "\n"))
    return path
end

-- Write text to a fresh temp file; returns its path.
function helpers.temp_file(text, name)
    local dir = helpers.tmpdir("file")
    return helpers.write_file(dir .. "/" .. (name or "file"), text)
end

-- A TCP port free right now on 127.0.0.1.
function helpers.free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return tonumber(port)
end

-- -- The adapter binary ------------------------------------------------------

-- ADAPTER_BUILD_DIR (default "build") lets a second build tree be tested
-- while build/ is in use; pass busted --cpath=DIR/lua/?.so too.
function helpers.build_dir()
    return os.getenv("ADAPTER_BUILD_DIR") or "build"
end

-- The C core as a shared library, for the FFI specs.
function helpers.core_so()
    local d = helpers.build_dir()
    if d:sub(1, 1) ~= "/" then d = helpers.root() .. "/" .. d end
    return d .. "/lua/adapter/core.so"
end

function helpers.adapter_bin()
    local b = os.getenv("ADAPTER_BIN") or (helpers.build_dir() .. "/promlua-adapter")
    if b:sub(1, 1) ~= "/" then b = helpers.root() .. "/" .. b end
    return b
end

local Adapter = setmetatable({}, { __index = Proc })
Adapter.__index = Adapter

-- adapter:get(path, headers) -> status, headers (lower-case names), body
-- over HTTPS with `curl -sk`. headers: { ["Accept"] = "..." }.
-- opts.max_time bounds the call (default 15 s, scaled under ASan; a timeout
-- gives status 0). opts.method, opts.user_agent override the defaults.
function Adapter:get(path, headers, opts)
    opts = opts or {}
    seq = seq + 1
    local hfile = string.format("%s/h%d", self.dir, seq)
    local bfile = string.format("%s/b%d", self.dir, seq)
    -- a neutral User-Agent: Go pretty-prints for "curl/..." agents (§4.6)
    local cmd = { "curl -sk", "-A", helpers.shq(opts.user_agent or "promlua-spec/1.0"),
        "--max-time", tostring(opts.max_time or helpers.scale(15)),
        "-o", helpers.shq(bfile), "-D", helpers.shq(hfile), "-w '%{http_code}'" }
    if opts.method then cmd[#cmd + 1] = "-X " .. helpers.shq(opts.method) end
    for k, v in pairs(headers or {}) do
        cmd[#cmd + 1] = "-H " .. helpers.shq(k .. ": " .. v)
    end
    cmd[#cmd + 1] = helpers.shq("https://127.0.0.1:" .. self.port .. path)
    local f = io.popen(table.concat(cmd, " "))
    local code = f:read("*a")
    f:close()
    local status = tonumber(code) or 0
    local hs = {}
    local htext = helpers.read_file(hfile) or ""
    for line in htext:gmatch("[^\r\n]+") do
        local k, v = line:match("^([^:]+):%s*(.*)$")
        if k then hs[k:lower()] = v end
    end
    local body = helpers.read_file(bfile) or ""
    os.remove(hfile); os.remove(bfile)
    return status, hs, body
end

-- adapter:get_json(path, headers) -> status, decoded body (nil if not
-- JSON), raw body, headers.
function Adapter:get_json(path, headers, opts)
    local status, hs, body = self:get(path, headers, opts)
    local ok, doc = pcall(cjson.decode, body)
    return status, ok and doc or nil, body, hs
end

-- Arguments common to start_adapter and run_adapter.
local function adapter_args(opts, dir)
    local args = {}
    if opts.config ~= false then
        local cfg = opts.config_file
        if not cfg and opts.config then
            cfg = helpers.write_file(dir .. "/config.yaml", opts.config)
        end
        if cfg then args[#args + 1] = "--config=" .. cfg end
    end
    for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
    return args
end

-- helpers.start_adapter{ config = yaml_text | config_file = path,
--   prometheus = fake, kube = fake, relist = "1s", args = {...},
--   ready_timeout = s, env = {K = V}, port = n }
-- Starts the binary on a free port and waits until /readyz answers 200.
-- Raises (with the adapter's stderr) when it exits or never gets ready.
function helpers.start_adapter(opts)
    opts = opts or {}
    local dir = helpers.tmpdir("adapter")
    local port = opts.port or helpers.free_port()
    local certdir = dir .. "/certs"
    os.execute("mkdir -p " .. helpers.shq(certdir))
    local args = {
        "--secure-port=" .. port,
        "--cert-dir=" .. certdir,
        "--metrics-relist-interval=" .. (opts.relist or "1s"),
    }
    if opts.kube then
        local kc = helpers.kubeconfig(opts.kube, dir)
        args[#args + 1] = "--lister-kubeconfig=" .. kc
        -- Delegated authn/authz (issue 5) through the same fake, which plays
        -- TokenReview and SubjectAccessReview (allowing by default, so
        -- credential-less requests pass as system:anonymous). Without the
        -- extension-apiserver-authentication ConfigMap the lookup is
        -- tolerated, as in a cluster where it cannot be read. A spec's own
        -- args come later and win (pflag: last value).
        args[#args + 1] = "--authentication-kubeconfig=" .. kc
        args[#args + 1] = "--authorization-kubeconfig=" .. kc
        args[#args + 1] = "--authentication-tolerate-lookup-failure=true"
    end
    if opts.prometheus then
        args[#args + 1] = "--prometheus-url=" .. opts.prometheus:url()
    end
    for _, a in ipairs(adapter_args(opts, dir)) do args[#args + 1] = a end
    -- ADAPTER_EXTRA_ARGS: whitespace-separated flags added to every start
    -- (e.g. auth settings while the wiring settles), without editing specs.
    for a in (os.getenv("ADAPTER_EXTRA_ARGS") or ""):gmatch("%S+") do args[#args + 1] = a end
    -- ADAPTER_PARITY=1: every adapter also loads rules/examples/parity.lua,
    -- the built-in steps re-implemented as hooks (docs/hooks.md): the specs
    -- must pass unchanged.
    if os.getenv("ADAPTER_PARITY") == "1" then
        args[#args + 1] = "--lua-script=" .. helpers.root() .. "/rules/examples/parity.lua"
    end
    local words = {}
    for k, v in pairs(opts.env or {}) do words[#words + 1] = k .. "=" .. helpers.shq(v) end
    words[#words + 1] = helpers.shq(helpers.adapter_bin())
    for _, a in ipairs(args) do words[#words + 1] = helpers.shq(a) end
    local p = spawn("exec env " .. table.concat(words, " "), dir)
    setmetatable(p, Adapter)
    p.port = port
    p.args = args
    local ready = helpers.wait_until(function()
        if p:exit_status() then return "exited" end
        local st = p:get("/readyz", nil, { max_time = 2 })
        return st == 200 and "ready" or nil
    end, opts.ready_timeout or helpers.scale(15), 0.1)
    if ready ~= "ready" then
        local rc, err = p:stop()
        error(string.format("adapter did not become ready (%s, exit %s); args: %s\nstderr:\n%s",
            tostring(ready), tostring(rc), table.concat(args, " "), err), 2)
    end
    return p
end

-- helpers.run_adapter{ args = {...}, config = yaml_text | false, timeout = s }
-- Runs the binary to completion -> exit code, stderr, stdout.
function helpers.run_adapter(opts)
    opts = opts or {}
    local dir = helpers.tmpdir("run")
    local words = { "timeout", "-k", "2", tostring(opts.timeout or helpers.scale(20)),
        helpers.shq(helpers.adapter_bin()) }
    for _, a in ipairs(adapter_args(opts, dir)) do words[#words + 1] = helpers.shq(a) end
    local cmd = table.concat(words, " ") .. " >" .. helpers.shq(dir .. "/stdout")
        .. " 2>" .. helpers.shq(dir .. "/stderr") .. "; echo $?"
    local f = io.popen(cmd)
    local rc = tonumber(f:read("*a"):match("%d+"))
    f:close()
    return rc, helpers.read_file(dir .. "/stderr") or "", helpers.read_file(dir .. "/stdout") or ""
end

-- -- Chunked watch stream reader (plain HTTP, for specs of the fakes) --------

local Stream = {}
Stream.__index = Stream

-- helpers.open_stream(url, headers) -> stream; stream.status, stream.headers;
-- stream:next_event(timeout) -> decoded event | nil, "timeout" | "closed".
function helpers.open_stream(url, headers)
    local host, port, target = url:match("^http://([^:/]+):(%d+)(.*)$")
    local s = assert(socket.connect(host, tonumber(port)))
    local lines = { "GET " .. (target ~= "" and target or "/") .. " HTTP/1.1",
        "Host: " .. host .. ":" .. port }
    for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
    s:send(table.concat(lines, "\r\n") .. "\r\n\r\n")
    s:settimeout(5)
    local status_line = assert(s:receive("*l"))
    local st = { sock = s, status = tonumber(status_line:match("^HTTP/1%.%d (%d+)")),
        headers = {}, buf = "", pending = {} }
    while true do
        local l = assert(s:receive("*l"))
        if l == "" then break end
        local k, v = l:match("^([^:]+):%s*(.*)$")
        if k then st.headers[k:lower()] = v end
    end
    setmetatable(st, Stream)
    if not (st.headers["transfer-encoding"] or ""):find("chunked") then
        local n = tonumber(st.headers["content-length"] or "0")
        st.body = n > 0 and s:receive(n) or ""
        st.done = true
    end
    return st
end

function Stream:next_event(timeout)
    local deadline = socket.gettime() + (timeout or 5)
    while true do
        local nl = self.buf:find("\n", 1, true)
        if nl then
            local line = self.buf:sub(1, nl - 1)
            self.buf = self.buf:sub(nl + 1)
            if line ~= "" then return cjson.decode(line) end
        else
            if self.done then return nil, "closed" end
            local left = deadline - socket.gettime()
            if left <= 0 then return nil, "timeout" end
            self.sock:settimeout(left)
            local size, err = self.sock:receive("*l")
            if not size then
                if err == "timeout" then return nil, "timeout" end
                self.done = true
                return nil, "closed"
            end
            local n = tonumber(size, 16)
            if not n or n == 0 then
                self.done = true
            else
                local data = self.sock:receive(n + 2)
                if not data then self.done = true; return nil, "closed" end
                self.buf = self.buf .. data:sub(1, n)
            end
        end
    end
end

function Stream:close()
    pcall(self.sock.close, self.sock)
end

-- RFC 3339 UTC seconds, as the adapter writes timestamps.
helpers.RFC3339 = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"

return helpers
