-- spec/unit/hooks_sandbox_spec.lua: what a hook script can reach, and the
-- time limit.  Every forbidden global is absent (io, os.* except time and
-- clock, require, load*, dofile, debug, jit, package, getfenv/setfenv...);
-- adapter.log, adapter.regex and adapter.json work; userdata metatables
-- (the shared regex methods) are out of reach; a hook that runs past its
-- timeout is stopped -- a tight loop, a loop calling C functions, a loop
-- hidden behind pcall, an error object's looping __tostring -- even though
-- LuaJIT would JIT-compile those loops (count hooks do not fire in traces:
-- the sandbox turns the JIT off for script functions).

local core = require "adapter.core"
local sandbox = require "adapter.sandbox"
local hooks = require "adapter.hooks"

local function load(text, timeout)
    return sandbox.load("t.lua", text, timeout or 200)
end

describe("hooks sandbox", function()
    it("hides every forbidden global", function()
        for _, name in ipairs({ "io", "require", "load", "loadstring", "loadfile", "dofile",
            "debug", "jit", "ffi", "package", "getfenv", "setfenv", "collectgarbage",
            "module", "newproxy", "print" }) do
            local ex = assert(load("return { v = function() return " .. name .. " end }"))
            assert.is_nil(ex.v(), name)
        end
    end)

    it("keeps only os.time and os.clock", function()
        local ex = assert(load([[return { v = function()
            local n = 0
            for k in pairs(os) do n = n + 1 end
            return n, type(os.time()), type(os.clock()), os.execute, os.getenv, os.exit
        end }]]))
        local n, t, c, exec, getenv, exit = ex.v()
        assert.equal(2, n)
        assert.equal("number", t)
        assert.equal("number", c)
        assert.is_nil(exec)
        assert.is_nil(getenv)
        assert.is_nil(exit)
    end)

    it("does not hand out the shared string metatable", function()
        local ex = assert(load("return { v = function() return getmetatable('') end }"))
        assert.is_nil(ex.v())
    end)

    it("hides userdata metatables: a script cannot change the built-in regexes", function()
        local ex = assert(load([[return { v = function()
            local rx = adapter.regex("^a$")
            local mt = getmetatable(rx)
            if mt then mt.__index.test = function() return true end end
            return mt, getmetatable(adapter.json.null)
        end }]]))
        local mt, nullmt = ex.v()
        assert.is_nil(mt)
        assert.is_nil(nullmt)
        -- the C module protects the metatable on its own too (__metatable)
        assert.is_false(getmetatable(core.regex("^a$")))
        -- a seriesFilters-style regex of the engine is unchanged
        assert.is_false(core.regex("^a$"):test("b"))
        assert.is_true(core.regex("^a$"):test("a"))
        -- table metatables stay reachable (scripts may use their own)
        local ex2 = assert(load([[return { v = function()
            local mt = {}
            return getmetatable(setmetatable({}, mt)) == mt
        end }]]))
        assert.is_true(ex2.v())
    end)

    it("gives each script its own globals", function()
        local a = assert(load("X = 1; return { v = function() return X end }"))
        local b = assert(load("return { v = function() return X end }"))
        assert.equal(1, a.v())
        assert.is_nil(b.v())
        assert.is_nil(rawget(_G, "X"))
    end)

    it("offers adapter.log, adapter.regex and adapter.json", function()
        local ex = assert(load([[return { v = function()
            adapter.log("info", "hello from", "a hook", 1)
            local rx = assert(adapter.regex("^(a+)b$"))
            local caps = rx:match("aaab")
            local doc = adapter.json.decode('{"x":[1,2]}')
            return caps[1], doc.x[2], adapter.json.encode({ k = "v" }), pcall(adapter.log, "loud", "x")
        end }]]))
        local cap, two, enc, ok = ex.v()
        assert.equal("aaa", cap)
        assert.equal(2, two)
        assert.equal('{"k":"v"}', enc)
        assert.is_false(ok)
    end)

    it("turns the JIT off for every function of a script", function()
        if not jit or not jit.status() then return end
        local LOOP = [[return { f = function()
            local s = 0
            for i = 1, 300000 do s = s + i %% 7 end
            return s
        end }]]
        -- which functions start a trace while fn runs
        local function traced(fn)
            local started = {}
            local function on_trace(what, _, func)
                if what == "start" then started[func] = true end
            end
            jit.attach(on_trace, "trace")
            fn()
            jit.attach(on_trace)
            return started
        end
        local ex = assert(load(string.format(LOOP)))
        assert.is_nil(traced(ex.f)[ex.f])
        -- the control: the same code loaded without the sandbox is traced
        local plain = loadstring(string.format(LOOP))()
        assert.is_true(traced(plain.f)[plain.f])
    end)
end)

describe("hooks time limit", function()
    local function timed(text, timeout)
        local ex = assert(load(text, 1000))
        local t0 = core.now()
        local ok, err = sandbox.guard(timeout or 150, ex.f)
        return ok, err, core.now() - t0
    end

    it("stops a tight infinite loop", function()
        local ok, err, took = timed("return { f = function() while true do end end }")
        assert.is_false(ok)
        assert.truthy(tostring(err):find("lua hook timed out after 150 ms", 1, true), err)
        assert.is_true(took < 2, took)
    end)

    it("stops a loop of arithmetic that LuaJIT would compile", function()
        local ok, err = timed([[return { f = function()
            local x = 0
            for i = 1, 1e15 do x = (x + i) % 7 end
            return x
        end }]])
        assert.is_false(ok)
        assert.truthy(tostring(err):find("timed out", 1, true), err)
    end)

    it("stops a loop calling C functions", function()
        local ok, err = timed([[return { f = function()
            local n = 0
            while true do n = n + #string.format("%d", n) + math.floor(1.5) end
        end }]])
        assert.is_false(ok)
        assert.truthy(tostring(err):find("timed out", 1, true), err)
    end)

    it("cannot be swallowed by pcall in the script", function()
        local ok, err = timed([[return { f = function()
            while true do pcall(function() while true do end end) end
        end }]])
        assert.is_false(ok)
        assert.truthy(tostring(err):find("timed out", 1, true), err)
    end)

    it("cuts an error object's looping __tostring (made a string inside the guard)", function()
        local ok, err, took = timed([[return { f = function()
            error(setmetatable({}, { __tostring = function() while true do end end }))
        end }]])
        assert.is_false(ok)
        assert.equal("string", type(err))
        assert.truthy(err:find("lua hook timed out after 150 ms", 1, true), err)
        assert.is_true(took < 2, took)
    end)

    it("names error objects by type, and uses a working __tostring", function()
        local ok, err = timed("return { f = function() error({ code = 1 }) end }")
        assert.is_false(ok)
        assert.equal("(error object is a table value)", err)
        ok, err = timed([[return { f = function()
            error(setmetatable({}, { __tostring = function() return "custom failure" end }))
        end }]])
        assert.is_false(ok)
        assert.equal("custom failure", err)
        ok, err = timed([[return { f = function()
            error(setmetatable({}, { __tostring = function() return {} end }))
        end }]])
        assert.is_false(ok)
        assert.equal("(error object is a table value whose __tostring failed)", err)
    end)

    it("applies to a script's top-level code at load", function()
        local ex, err = load("while true do end", 100)
        assert.is_nil(ex)
        assert.truthy(err:find("t.lua:1: lua hook timed out", 1, true), err)
    end)

    it("lets a quick hook finish and restores the previous debug hook", function()
        local called = 0
        local function h() called = called + 1 end
        debug.sethook(h, "", 1000000)
        local ex = assert(load("return { f = function(a, b) return a + b, 'x' end }"))
        local ok, v, w = sandbox.guard(100, ex.f, 2, 3)
        local f = debug.gethook()
        debug.sethook()
        assert.is_true(ok)
        assert.equal(5, v)
        assert.equal("x", w)
        assert.equal(h, f)
    end)

    it("counts a timed-out hook as failed and the next call runs again", function()
        local set = assert(hooks.load({ { path = "slow.lua", text = [[
            local calls = 0
            return { metric_name = function(rule, name)
                calls = calls + 1
                if calls == 1 then while true do end end
                return name
            end }]] } }, { timeout_ms = 100 }))
        local rule = { hooks = {} }
        local st = set:steps_for(rule, {}, { metric_name = function(_, n) return n end }, "rules[0]")
        local name, err = st.metric_name(rule, "x")
        assert.is_nil(name)
        assert.truthy(err:find("timed out", 1, true), err)
        assert.equal(1, set:failures()["hook metric_name (slow.lua: metric_name)"])
        assert.equal("y", (st.metric_name(rule, "y")))
    end)
end)
