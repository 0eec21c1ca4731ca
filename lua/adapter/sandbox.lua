-- adapter.sandbox: the environment user hook scripts (--lua-script) run in,
-- and the time guard every user hook call runs under.
--
-- Provides: sandbox.env() -> a fresh allowlist environment
--             (string, table, math, pairs, ipairs, next, select, type,
--             tostring, tonumber, error, assert, pcall, xpcall, unpack,
--             rawequal/rawget/rawset/rawlen-free set, setmetatable,
--             getmetatable, os = { time, clock }, adapter = { log, regex,
--             json, now }); no io, os.*, require, load*, dofile, debug,
--             jit, ffi, package, collectgarbage, getfenv/setfenv, newproxy.
--           sandbox.load(path, text) -> exports, nil, return_line
--                                        | nil, "path:line: msg"
--             compiles a script with the JIT off for all of its functions,
--             runs it (under the guard) in a fresh env; it must return a
--             table (its exports). return_line is the line of the chunk's
--             last instruction (its final `return`), which errors about
--             the returned value cite.
--           sandbox.guard(timeout_ms, fn, ...) -> ok, results... | false, err
--             runs fn under a deadline: a count hook raises "timed out"
--             once the deadline has passed; sandbox.extend(seconds) moves
--             the current deadline (time spent waiting for Prometheus).
--             err is always a string, made while the deadline still holds
--             (an error object's __tostring is script code too).
-- Uses: debug (kept here, never handed to scripts), jit, adapter.core
--       (regex, log, now), cjson (lua-cjson, a Debian package).
-- Never: hands debug/io/os/require to a script, or lets a script's pcall
--        swallow a timeout.
--
-- LuaJIT does not check hooks inside JIT-compiled traces (LuaJIT #723,
-- #779), so every function a script defines is compiled with the JIT off
-- (jit.off(chunk, true) marks the chunk's prototype and all nested ones):
-- its loops run in the interpreter, where the count hook fires.  A single
-- long C call (string.rep of a huge string) cannot be interrupted.

local core = require "adapter.core"
local cjson_ok, cjson = pcall(require, "cjson")

local M = {}

-- Kept before any script runs; scripts never see these.
local debug_sethook, debug_gethook = debug.sethook, debug.gethook
local debug_getmetatable = debug.getmetatable
local debug_getinfo = debug.getinfo
local jit_off = jit and jit.off
local now = core.now
local raw_pcall, raw_xpcall, raw_error = pcall, xpcall, error

local TIMEOUT_TAG = "lua hook timed out"
M.TIMEOUT_TAG = TIMEOUT_TAG

-- Guard state of this lua_State (one per thread): nil when no user code
-- runs.  Nested guards (compute -> default -> render_query hook) share
-- the outermost deadline.
local active = nil

local COUNT = 1000  -- VM instructions between deadline checks

local function on_count()
    local g = active
    if g and now() > g.deadline then
        g.expired = true
        raw_error(string.format("%s after %d ms", TIMEOUT_TAG, g.timeout_ms), 2)
    end
end

local function is_timeout(err)
    return active ~= nil and active.expired
        or (type(err) == "string" and err:find(TIMEOUT_TAG, 1, true) ~= nil)
end

-- Lua shortens a chunk name longer than LUA_IDSIZE to "...<tail>" in error
-- messages, so a script under a long directory would be reported by a path
-- nobody can open.  Every loaded script's full path is remembered and put
-- back wherever such a tail appears.
local loaded_paths = {}

local function full_paths(msg)
    if type(msg) ~= "string" or not msg:find("...", 1, true) then return msg end
    return (msg:gsub("%.%.%.([^:\n]+):(%d+):", function(tail, line)
        for path in pairs(loaded_paths) do
            if #path > #tail and path:sub(-#tail) == tail then
                return path .. ":" .. line .. ":"
            end
        end
    end))
end

-- The message handler of every guarded call: it turns the error into a
-- string while the count hook still runs, so a looping __tostring on an
-- error object is cut by the deadline like the rest of the hook (once the
-- guard returns, no script code may run: it would run without a limit).
-- Never raises by itself: a failing __tostring is described instead.
local function to_message(e)
    local t = type(e)
    if t == "string" then return e end
    if t == "number" then return tostring(e) end
    local mt = (t == "table" or t == "userdata") and debug_getmetatable(e) or nil
    if mt and rawget(mt, "__tostring") ~= nil then
        local ok, s = raw_pcall(tostring, e)
        if ok and type(s) == "string" then return s end
        if type(s) == "string" and s:find(TIMEOUT_TAG, 1, true) then return s end
        return string.format("(error object is a %s value whose __tostring failed)", t)
    end
    return string.format("(error object is a %s value)", t)
end

-- Runs fn(...) under a deadline of timeout_ms.  Returns true, results or
-- false, message.  Restores whatever hook was set before (busted, luacov).
function M.guard(timeout_ms, fn, ...)
    if active then
        -- already inside a guarded call: share its deadline
        return raw_xpcall(fn, to_message, ...)
    end
    local prev_f, prev_mask, prev_count = debug_gethook()
    active = { deadline = now() + timeout_ms / 1000, timeout_ms = timeout_ms }
    debug_sethook(on_count, "", COUNT)
    local res = { raw_xpcall(fn, to_message, ...) }
    local g = active
    active = nil
    if prev_f then debug_sethook(prev_f, prev_mask, prev_count)
    else debug_sethook() end
    -- the error is a string here (to_message), or LuaJIT's "error in
    -- error handling" when the count hook cut the handler itself
    if not res[1] and type(res[2]) ~= "string" then res[2] = "(error object is not a string)" end
    if not res[1] and g.expired and not res[2]:find(TIMEOUT_TAG, 1, true) then
        -- the script caught the timeout and raised something else
        res[2] = string.format("%s after %d ms", TIMEOUT_TAG, timeout_ms)
    end
    if not res[1] then res[2] = full_paths(res[2]) end
    return unpack(res, 1, table.maxn(res))
end

-- Pushes the running guard's deadline back by `seconds` (time spent in
-- C waiting for Prometheus, which --prometheus-timeout bounds instead).
function M.extend(seconds)
    if active and not active.expired then active.deadline = active.deadline + seconds end
end

function M.active() return active ~= nil end

-- -------------------------------------------------------------- the env

local function copy(t, names)
    local out = {}
    for _, k in ipairs(names) do out[k] = t[k] end
    return out
end

local STRING = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
    "match", "rep", "reverse", "sub", "upper" }
local TABLE = { "concat", "insert", "maxn", "remove", "sort" }
local MATH = { "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh", "deg", "exp",
    "floor", "fmod", "frexp", "huge", "ldexp", "log", "log10", "max", "min", "modf", "pi",
    "pow", "rad", "random", "sin", "sinh", "sqrt", "tan", "tanh" }

-- A script's pcall must not swallow a timeout: once the deadline passed,
-- the error goes on up to the guard.
local function rethrow_timeout(ok, ...)
    if not ok and is_timeout((...)) then raw_error((...), 0) end
    return ok, ...
end

local function safe_pcall(f, ...)
    return rethrow_timeout(raw_pcall(f, ...))
end

local function safe_xpcall(f, handler)
    return rethrow_timeout(raw_xpcall(f, function(e)
        if is_timeout(e) then return e end
        return handler(e)
    end))
end

local function adapter_log(level, ...)
    local parts = {}
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
    if level ~= "info" and level ~= "warning" and level ~= "error"
        and type(level) ~= "number" then
        raw_error("adapter.log: level must be \"info\", \"warning\", \"error\" or a "
            .. "verbosity number", 2)
    end
    core.log(level, table.concat(parts, " "))
end

local function adapter_regex(pattern)
    return core.regex(pattern)
end

-- Only a table's metatable: the string metatable is shared with the
-- engine (getmetatable("").__index is the real string library), and a
-- userdata's metatable is the C module's (adapter.regex's methods, and
-- __gc, which would run outside any time guard): a script must reach
-- neither.  (adapter.core also sets __metatable on its own.)
local function safe_getmetatable(v)
    if type(v) ~= "table" then return nil end
    return getmetatable(v)
end

local json = nil
if cjson_ok then
    -- A private instance, so scripts cannot change the engine's settings.
    local inst = cjson.new and cjson.new() or cjson
    json = { encode = inst.encode, decode = inst.decode, null = inst.null,
        empty_array = rawget(inst, "empty_array") }
end

function M.env()
    local env = {
        string = copy(string, STRING), table = copy(table, TABLE), math = copy(math, MATH),
        pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
        tostring = tostring, tonumber = tonumber, error = error, assert = assert,
        pcall = safe_pcall, xpcall = safe_xpcall, unpack = unpack,
        rawequal = rawequal, rawget = rawget, rawset = rawset,
        setmetatable = setmetatable, getmetatable = safe_getmetatable,
        os = { time = os.time, clock = os.clock },
        adapter = { log = adapter_log, regex = adapter_regex, json = json, now = now },
    }
    env._G = env
    return env
end

-- The line errors about a script's result point at: the highest line
-- with code in the main chunk, i.e. its final `return` (the last line of
-- a multi-line `return {...}`), or the last statement when there is no
-- return; 1 for an empty script.
local function return_line(chunk)
    local info = debug_getinfo(chunk, "L")
    local max = 1
    for line in pairs(info and info.activelines or {}) do
        if line > max then max = line end
    end
    return max
end

-- Compiles and runs one script.  path names it in errors ("path:line:",
-- the full path: these messages are built here, not by Lua, so they are
-- never shortened).  Top-level code runs under the same time guard as
-- hooks.
function M.load(path, text, timeout_ms)
    loaded_paths[path] = true
    local chunk, err = loadstring(text, "@" .. path)
    if not chunk then return nil, full_paths(err) end
    if jit_off then jit_off(chunk, true) end
    setfenv(chunk, M.env())
    local line = return_line(chunk)
    local ok, exports = M.guard(timeout_ms or 1000, chunk)
    if not ok then return nil, tostring(exports) end
    if type(exports) ~= "table" then
        return nil, string.format("%s:%d: the script must return a table of functions "
            .. "(got %s)", path, line, type(exports))
    end
    return exports, nil, line
end

return M
