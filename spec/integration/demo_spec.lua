-- spec/integration/demo_spec.lua: the README's first command, as `make demo`
-- runs it after building: `DEMO_ONESHOT=1 scripts/demo.sh` (real
-- Prometheus, the fake Kubernetes API, the adapter, nginx as the front,
-- kubectl) with the binary under test. Checks the exit status, every
-- section header, the four pod rows of `kubectl top pod` (memory exactly,
-- CPU near the workload's rate), and that the script leaves no process
-- and no /tmp/promlua-demo.* work directory behind.
-- scripts/demo.sh neither installs packages nor builds (make demo does,
-- before calling it): the spec runs it as is, after make has built.
-- Uses: spec/helpers.lua, scripts/demo/stack.lua (the workload's figures),
-- bash, timeout (coreutils), ps, prometheus, nginx, kubectl.
-- Must never: leave a process behind (timeout ends the whole process group
-- if the script hangs; the spec then kills what is left of it, by pid).

local helpers = require "helpers"
package.path = "scripts/?.lua;" .. package.path
local stack = require "demo.stack"

local shq = helpers.shq

-- pids of the live processes in process group `pgid`, with their command
-- lines (a zombie is already dead: it waits only for its reaper)
local function group(pgid)
    local f = io.popen("ps -eo pgid=,pid=,stat=,args=")
    local left = {}
    for line in f:lines() do
        local g, pid, stat, args = line:match("^%s*(%d+)%s+(%d+)%s+(%S+)%s+(.*)$")
        if tonumber(g) == pgid and not stat:find("Z", 1, true) then left[#left + 1] = pid .. " " .. args end
    end
    f:close()
    return left
end

describe("DEMO_ONESHOT=1 scripts/demo.sh", function()
    local out, err, rc, pgid

    lazy_setup(function()
        for _, c in ipairs({ "prometheus", "nginx", "kubectl", "timeout" }) do
            assert(os.execute("command -v " .. c .. " >/dev/null 2>&1") == 0,
                c .. " is needed (scripts/deps.sh test)")
        end
        local dir = helpers.tmpdir("demo")
        -- timeout becomes the process group leader (it calls setpgid), so
        -- its pid, written by the shell it replaces, names every process
        -- the demo starts; on expiry it sends TERM to the group (the
        -- script's trap stops its children) and KILL 10 s later
        local inner = "echo $$ >" .. shq(dir .. "/pgid")
            .. "; exec timeout -k 10 " .. math.floor(helpers.scale(150))
            .. " env DEMO_ONESHOT=1 DEMO_KEEP=0 ADAPTER_EXTRA_ARGS= ADAPTER_BIN="
            .. shq(helpers.adapter_bin()) .. " scripts/demo.sh"
        os.execute("sh -c " .. shq(inner) .. " </dev/null >" .. shq(dir .. "/out")
            .. " 2>" .. shq(dir .. "/err") .. "; echo $? >" .. shq(dir .. "/rc"))
        out = helpers.read_file(dir .. "/out") or ""
        err = helpers.read_file(dir .. "/err") or ""
        rc = tonumber((helpers.read_file(dir .. "/rc") or ""):match("%d+"))
        pgid = tonumber((helpers.read_file(dir .. "/pgid") or ""):match("%d+"))
    end)

    lazy_teardown(function()
        -- only if the script failed to stop its own children
        if pgid then
            for _, p in ipairs(group(pgid)) do os.execute("kill -9 " .. p:match("^%d+") .. " 2>/dev/null") end
        end
        helpers.cleanup()
    end)

    it("exits 0 after printing every section", function()
        assert.are.equal(0, rc, "stdout:\n" .. out .. "\nstderr:\n" .. err)
        for _, h in ipairs({
            "starting the demo stack in /tmp/promlua-demo.",
            "discovered custom metrics (custom.metrics.k8s.io/v1beta2)",
            "a custom metric: requests per second of each web pod",
            "an external metric: messages ready in the orders queue",
            "a resource metric (metrics.k8s.io): pod web-0",
            "kubectl top pod",
            "kubectl top node",
        }) do
            assert(out:find("\n\27[1m== " .. h, 1, true), "no section \"" .. h .. "\" in:\n" .. out)
        end
        -- one line per answer of the external query: the gauge of the orders queue
        assert(out:find("\n  queue_messages_ready   {queue=orders} 42\n", 1, true), out)
    end)

    it("shows the four pods of the workload in kubectl top pod", function()
        local section = out:match("\n%$ kubectl top pod\n(.-)\n\27%[1m==")
        assert(section, "no kubectl top pod output in:\n" .. out)
        local rows = helpers.rows(section)
        helpers.assert_same({ "NAME", "CPU(cores)", "MEMORY(bytes)" }, rows[1])
        assert.are.equal(#stack.workload.pods + 1, #rows, section)
        for i, p in ipairs(stack.workload.pods) do
            local r = rows[i + 1]
            assert.are.equal(p.name, r[1])
            assert.are.equal(string.format("%dMi", p.mem / 1048576), r[3])
            -- irate() of a counter growing at p.cpu cores, sampled at
            -- scrape times: near, not exactly, the rate
            local m = tonumber(r[2]:match("^(%d+)m$"))
            assert(m, p.name .. ": CPU " .. tostring(r[2]))
            assert(math.abs(m - p.cpu * 1000) <= p.cpu * 1000 * 0.3,
                p.name .. ": CPU " .. r[2] .. ", workload " .. p.cpu * 1000 .. "m")
        end
    end)

    it("leaves no process and no work directory behind", function()
        assert.is_number(pgid)
        local left = helpers.wait_until(function()
            local l = group(pgid)
            return #l == 0 and l
        end, helpers.scale(5), 0.1)
        assert(left, "left running:\n" .. table.concat(group(pgid), "\n"))
        local work = out:match("starting the demo stack in (/tmp/promlua%-demo%.[%w]+)")
        assert.is_string(work)
        assert(os.execute("test -e " .. shq(work)) ~= 0, work .. " is left")
        -- nor any process naming it (one that left the process group)
        local f = io.popen("ps -eo args=")
        local ps = f:read("*a")
        f:close()
        assert.is_nil(ps:find(work, 1, true), work .. " is in use:\n" .. ps)
    end)
end)
