-- spec/robust_helpers.lua: what the robustness specs add to spec/helpers.lua
-- (faults_spec, hostile_clients_spec): the misbehaving Prometheus
-- (spec/fixtures/fault_server.lua) as a managed subprocess, process
-- resource readings from /proc (VmRSS, VmHWM, open descriptors, threads),
-- and a UTF-8 validity check for response bodies.
-- Uses: spec/helpers.lua, lua-cjson. Must never: do anything at load, or
-- leave a process behind (every start has a :stop()).

local helpers = require "helpers"
local cjson = require "cjson"

local R = {}

local Fault = {}
Fault.__index = Fault

-- Starts spec/fixtures/fault_server.lua (on `port`, or any free one);
-- returns an object with :url(), :set(rule), :clear(), :stats(), :stop().
function R.start_fault_server(port)
    local dir = helpers.tmpdir("fault")
    local q = helpers.shq
    os.execute(string.format(
        "sh -c %s </dev/null >/dev/null 2>&1 &",
        q(string.format("cd %s && exec luajit spec/fixtures/fault_server.lua --port %d >%s 2>%s & echo $! >%s",
            q(helpers.root()), port or 0, q(dir .. "/stdout"), q(dir .. "/stderr"), q(dir .. "/pid")))))
    local pid = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/pid")
        return s and tonumber(s:match("%d+"))
    end, 5)
    local port = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/stdout")
        return s and tonumber(s:match("PORT (%d+)"))
    end, 5)
    assert(pid and port, "fault_server did not start: " .. tostring(helpers.read_file(dir .. "/stderr")))
    return setmetatable({ pid = pid, port = port, dir = dir }, Fault)
end

function Fault:url(path)
    return "http://127.0.0.1:" .. self.port .. (path or "")
end

function Fault:set(rule)
    local code, text = helpers.http("POST", self:url("/_fault/set"), cjson.encode(rule))
    assert(code == 200, "fault_server set: " .. tostring(code) .. " " .. tostring(text))
end

function Fault:clear()
    local code = helpers.http("DELETE", self:url("/_fault/set"))
    assert(code == 200)
end

function Fault:stats()
    local code, text = helpers.http("GET", self:url("/_fault/stats"))
    assert(code == 200)
    return cjson.decode(text)
end

function Fault:stop()
    if self.pid then
        os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
        self.pid = nil
    end
end

-- /proc/<pid>/status field in kB (VmRSS, VmHWM) or count (Threads).
function R.status_field(pid, field)
    local s = helpers.read_file("/proc/" .. pid .. "/status") or ""
    return tonumber(s:match(field .. ":%s*(%d+)"))
end

function R.rss_kb(pid) return R.status_field(pid, "VmRSS") end
function R.hwm_kb(pid) return R.status_field(pid, "VmHWM") end
function R.threads(pid) return R.status_field(pid, "Threads") end

-- Number of open file descriptors of pid.
function R.fds(pid)
    local f = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
    local n = tonumber(f:read("*a"))
    f:close()
    return n
end

-- TCP connections whose local port is `port` (the server side of client
-- connections) that the process still holds a descriptor for: ESTABLISHED
-- and CLOSE-WAIT.  The other states are the kernel's alone: SYN-RECV
-- (a handshake the listener never saw; a client that gave up on a
-- non-blocking connect leaves these until the SYN-ACK retries run out,
-- about a minute) and the orphans of closed sockets (FIN-WAIT, LAST-ACK,
-- CLOSING, TIME-WAIT).  Read from /proc/net/tcp{,6}: no iproute2 needed.
-- Also returns a "state=count" summary of every state, for messages.
local HELD = { ["01"] = true, ["08"] = true }
function R.server_conns(port)
    local n, by = 0, {}
    for _, f in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
        local text = helpers.read_file(f) or ""
        for lport, state in text:gmatch("\n%s*%d+: %x+:(%x+) %x+:%x+ (%x%x)") do
            if tonumber(lport, 16) == port then
                by[state] = (by[state] or 0) + 1
                if HELD[state] then n = n + 1 end
            end
        end
    end
    local keys = {}
    for k in pairs(by) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do keys[i] = k .. "=" .. by[k] end
    return n, table.concat(keys, " ")
end

-- True when s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
function R.valid_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local len, min
        if c < 0x80 then len, min = 1, 0
        elseif c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
        elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
        elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
        else return false, i end
        if i + len - 1 > n then return false, i end
        local cp = len == 1 and c or (c % (2 ^ (7 - len)))
        for k = 1, len - 1 do
            local b = s:byte(i + k)
            if b < 0x80 or b > 0xBF then return false, i end
            cp = cp * 64 + (b - 0x80)
        end
        if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false, i end
        i = i + len
    end
    return true
end

-- Runs a shell command line in the background; its stdout goes to a file
-- whose path is returned (the caller reads it when the command is done).
function R.background(cmd)
    local dir = helpers.tmpdir("bg")
    os.execute("sh -c " .. helpers.shq(cmd .. " >" .. dir .. "/out 2>&1; echo $? >" .. dir .. "/rc")
        .. " </dev/null >/dev/null 2>&1 &")
    return dir
end

-- Waits for a background command; returns its output and exit code, or nil.
function R.wait_background(dir, timeout)
    local rc = helpers.wait_until(function()
        local s = helpers.read_file(dir .. "/rc")
        return s and tonumber(s:match("%d+"))
    end, timeout or 30, 0.05)
    return helpers.read_file(dir .. "/out"), rc
end

return R
