-- spec/core/flags_spec.lua: the C flag parser (src/flags.c) through LuaJIT
-- FFI on build/lua/adapter/core.so, which links the whole core library.
-- Only functions whose prototypes need no struct layout are declared: the
-- options struct is an opaque buffer of flags_options_size() bytes, read
-- back through flags_value (pflag's text form of each value).
local ffi = require "ffi"

ffi.cdef [[
int flags_parse(int argc, const char **argv, void *o, char *err, size_t errlen);
void options_free(void *o);
bool flags_was_set(const void *o, const char *name);
const char *flags_value(const void *o, const char *name, char *out, size_t outlen);
size_t flags_options_size(void);
int flags_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
void flags_format_duration(int64_t ms, char *out, size_t outlen);
int dup(int fd);
int dup2(int oldfd, int newfd);
int open(const char *path, int flags, ...);
int close(int fd);
int fflush(void *stream);
]]

local helpers = require "helpers"
local lib = ffi.load(helpers.core_so())

-- Runs fn with stdout and stderr sent to /dev/null (usage text is long).
local function quiet(fn)
    io.stdout:flush()
    io.stderr:flush()
    local o1, o2 = ffi.C.dup(1), ffi.C.dup(2)
    local null = ffi.C.open("/dev/null", 1)
    ffi.C.dup2(null, 1)
    ffi.C.dup2(null, 2)
    local ok, a, b = pcall(fn)
    ffi.C.fflush(nil)   -- C stdio buffers: flush into /dev/null, not later
    ffi.C.dup2(o1, 1)
    ffi.C.dup2(o2, 2)
    ffi.C.close(o1)
    ffi.C.close(o2)
    ffi.C.close(null)
    assert(ok, a)
    return a, b
end

-- parse{...} -> rc, err, get(name), was_set(name); argv[0] is added.
local function parse(args)
    local words = { "/adapter" }
    for _, a in ipairs(args) do words[#words + 1] = a end
    local argv = ffi.new("const char *[?]", #words + 1)
    for i, w in ipairs(words) do argv[i - 1] = w end
    local o = ffi.new("uint8_t[?]", lib.flags_options_size())
    local err = ffi.new("char[1024]")
    local rc = quiet(function()
        return lib.flags_parse(#words, argv, o, err, 1024)
    end)
    local values, set = {}, {}
    local function get(name)
        local out = ffi.new("char[4096]")
        local p = lib.flags_value(o, name, out, 4096)
        return p ~= nil and ffi.string(p) or nil
    end
    -- read what the specs need before freeing
    local res = { rc = rc, err = ffi.string(err), get = function(n)
        if values[n] == nil then values[n] = get(n) or false end
        return values[n] or nil
    end, was_set = function(n)
        if set[n] == nil then set[n] = lib.flags_was_set(o, n) end
        return set[n]
    end, free = function() lib.options_free(o) end }
    return res
end

local function value_of(args, name)
    local r = parse(args)
    local v = r.get(name)
    r.free()
    return v, r
end

describe("flags defaults (spec-server 8.2)", function()
    local r
    setup(function() r = parse {} end)
    teardown(function() r.free() end)
    local defaults = {
        ["prometheus-url"] = "https://localhost",
        ["prometheus-verb"] = "GET",
        ["metrics-relist-interval"] = "10m0s",
        ["metrics-max-age"] = "0s",
        ["secure-port"] = "443",
        ["bind-address"] = "0.0.0.0",
        ["cert-dir"] = "apiserver.local.config/certificates",
        ["client-qps"] = "5",
        ["client-burst"] = "10",
        ["authentication-token-webhook-cache-ttl"] = "10s",
        ["requestheader-username-headers"] = "[x-remote-user]",
        ["requestheader-group-headers"] = "[x-remote-group]",
        ["requestheader-extra-headers-prefix"] = "[x-remote-extra-]",
        ["requestheader-allowed-names"] = "[]",
        ["authorization-always-allow-paths"] = "[/healthz,/readyz,/livez]",
        ["audit-log-format"] = "json",
        ["audit-log-mode"] = "blocking",
        ["audit-log-batch-buffer-size"] = "10000",
        ["audit-log-truncate-max-batch-size"] = "10485760",
        ["audit-webhook-batch-max-wait"] = "30s",
        ["audit-webhook-batch-throttle-enable"] = "true",
        ["audit-webhook-batch-throttle-qps"] = "10",
        ["profiling"] = "true",
        ["enable-priority-and-fairness"] = "false",
        ["v"] = "0",
        ["log-flush-frequency"] = "5s",
        ["lua-hook-timeout"] = "1s",
        ["prometheus-timeout"] = "30s",
        ["prometheus-max-get-length"] = "8192",
        ["request-timeout"] = "1m0s",
        ["max-requests-inflight"] = "400",
        ["logging-format"] = "text",
        ["prometheus-header"] = "[]",
    }
    for name, want in pairs(defaults) do
        it("--" .. name .. " defaults to " .. want, function()
            assert.equal(0, r.rc)
            assert.equal(want, r.get(name))
            assert.is_false(r.was_set(name))
        end)
    end
end)

describe("flags parsing (pflag semantics, spec-server 8.1)", function()
    it("accepts the Helm chart's argv with the extra /adapter word", function()
        local r = parse { "/adapter", "--secure-port=6443", "--cert-dir=/tmp/cert",
            "--prometheus-url=http://prometheus.default.svc:9090",
            "--metrics-relist-interval=1m", "--v=4",
            "--config=/etc/adapter/config.yaml" }
        assert.equal(0, r.rc)
        assert.equal("6443", r.get("secure-port"))
        assert.equal("1m0s", r.get("metrics-relist-interval"))
        assert.equal("4", r.get("v"))
        assert.equal("/etc/adapter/config.yaml", r.get("config"))
        assert.is_true(r.was_set("secure-port"))
        r.free()
    end)

    it("takes --f v as well as --f=v", function()
        assert.equal("http://x:1", value_of({ "--prometheus-url", "http://x:1" },
                                            "prometheus-url"))
    end)

    it("does not let a bare bool consume the next word", function()
        local r = parse { "--prometheus-auth-incluster", "false" }
        assert.equal(0, r.rc)
        assert.equal("true", r.get("prometheus-auth-incluster"))
        r.free()
        assert.equal("false", value_of({ "--profiling=false" }, "profiling"))
        assert.equal("true", value_of({ "--disable-http2=T" }, "disable-http2"))
    end)

    it("reads -v in all its spellings, base 10 only", function()
        assert.equal("4", value_of({ "-v=4" }, "v"))
        assert.equal("5", value_of({ "-v", "5" }, "v"))
        assert.equal("6", value_of({ "-v6" }, "v"))
        assert.equal("10", value_of({ "--v=010" }, "v"))
        local _, r = value_of({ "--v=0x4" }, "v")
        assert.equal(2, r.rc)
        assert.equal('invalid argument "0x4" for "--v" flag: strconv.ParseInt: parsing "0x4": invalid syntax', r.err)
    end)

    it("stops at --", function()
        local r = parse { "--secure-port=1", "--", "--secure-port=2", "--bogus" }
        assert.equal(0, r.rc)
        assert.equal("1", r.get("secure-port"))
        r.free()
    end)

    it("splits string slices as CSV, replaces the default, then appends", function()
        assert.equal("[X-Foo]", value_of({ "--requestheader-username-headers=X-Foo" },
                                          "requestheader-username-headers"))
        assert.equal("[A,B,C]", value_of({ "--tls-cipher-suites=A,B",
                                           "--tls-cipher-suites", "C" },
                                         "tls-cipher-suites"))
        assert.equal("[]", value_of({ "--authorization-always-allow-paths=" },
                                    "authorization-always-allow-paths"))
    end)

    it("keeps a quoted comma inside one slice entry", function()
        local r = parse { '--tls-cipher-suites="a,b",c' }
        assert.equal(0, r.rc)
        -- two entries, "a,b" and "c", printed back as CSV like pflag
        assert.equal('["a,b",c]', r.get("tls-cipher-suites"))
        r.free()
        local r2 = parse { '--tls-cipher-suites=a"b' }
        assert.equal(2, r2.rc)
        assert.matches('bare " in non%-quoted%-field', r2.err)
        r2.free()
    end)

    it("never splits --prometheus-header, one entry per occurrence", function()
        assert.equal('["X-Scope-OrgID=a,b",Authorization=Bearer x]',
            value_of({ "--prometheus-header=X-Scope-OrgID=a,b",
                       "--prometheus-header", "Authorization=Bearer x" },
                     "prometheus-header"))
    end)

    it("validates IPs like net.ParseIP", function()
        assert.equal("::1", value_of({ "--bind-address= ::1 " }, "bind-address"))
        local _, r = value_of({ "--bind-address=foo" }, "bind-address")
        assert.equal(2, r.rc)
        assert.equal('invalid argument "foo" for "--bind-address" flag: failed to parse IP: "foo"', r.err)
    end)

    it("accepts Go integer prefixes for int flags", function()
        assert.equal("443", value_of({ "--secure-port=0x1bb" }, "secure-port"))
        assert.equal("8", value_of({ "--secure-port=010" }, "secure-port"))
    end)

    it("maps the deprecated audit alias onto the real flag", function()
        local r = parse { "--audit-webhook-batch-initial-backoff=5s" }
        assert.equal(0, r.rc)
        assert.equal("5s", r.get("audit-webhook-initial-backoff"))
        r.free()
    end)

    local errors = {
        { { "--x" }, "unknown flag: --x" },
        { { "--logtostderr" }, "unknown flag: --logtostderr" },
        { { "--secure-port=abc" },
          'invalid argument "abc" for "--secure-port" flag: strconv.ParseInt: parsing "abc": invalid syntax' },
        { { "--secure-port" }, "flag needs an argument: --secure-port" },
        { { "-v" }, "flag needs an argument: 'v' in -v" },
        { { "-x" }, "unknown shorthand flag: 'x' in -x" },
        { { "---x" }, "bad flag syntax: ---x" },
        { { "--metrics-relist-interval=5" },
          'invalid argument "5" for "--metrics-relist-interval" flag: time: missing unit in duration "5"' },
        { { "--metrics-max-age=abc" },
          'invalid argument "abc" for "--metrics-max-age" flag: time: invalid duration "abc"' },
        { { "--profiling=maybe" },
          'invalid argument "maybe" for "--profiling" flag: strconv.ParseBool: parsing "maybe": invalid syntax' },
        { { "--client-qps=x" },
          'invalid argument "x" for "--client-qps" flag: strconv.ParseFloat: parsing "x": invalid syntax' },
        { { "--tls-sni-cert-key=abc" },
          'invalid argument "abc" for "--tls-sni-cert-key" flag: expected comma separated certificate and key file paths' },
    }
    for _, case in ipairs(errors) do
        it("rejects " .. table.concat(case[1], " ") .. " with exit code 2", function()
            local r = parse(case[1])
            assert.equal(2, r.rc)
            assert.equal(case[2], r.err)
            r.free()
        end)
    end

    it("answers -h and --help with the help code", function()
        for _, a in ipairs { "-h", "--help", "-help" } do
            local r = parse { "--secure-port=1", a }
            assert.equal(1, r.rc)
            r.free()
        end
    end)

    it("knows no value for an unknown name", function()
        local r = parse {}
        assert.is_nil(r.get("no-such-flag"))
        assert.is_false(r.was_set("no-such-flag"))
        r.free()
    end)
end)

describe("Go durations", function()
    local function dur(s)
        local ms = ffi.new("int64_t[1]")
        local err = ffi.new("char[256]")
        local rc = lib.flags_parse_duration(s, ms, err, 256)
        if rc ~= 0 then return nil, ffi.string(err) end
        return tonumber(ms[0])
    end
    local function fmt(ms)
        local out = ffi.new("char[64]")
        lib.flags_format_duration(ms, out, 64)
        return ffi.string(out)
    end

    it("parses Go syntax into milliseconds", function()
        assert.equal(90000, dur("1m30s"))
        assert.equal(500, dur("500ms"))
        assert.equal(3600000, dur("1h"))
        assert.equal(0, dur("0"))
        assert.equal(5400000, dur("1.5h"))
        assert.equal(500, dur(".5s"))
        assert.equal(-1000, dur("-1s"))
        assert.equal(9900000, dur("2h45m"))
    end)

    it("fails with Go's messages", function()
        assert.same({ nil, 'time: missing unit in duration "1"' }, { dur("1") })
        assert.same({ nil, 'time: unknown unit "x" in duration "1x"' }, { dur("1x") })
        assert.same({ nil, 'time: invalid duration ""' }, { dur("") })
        assert.same({ nil, 'time: invalid duration "."' }, { dur(".") })
    end)

    it("formats as time.Duration.String()", function()
        assert.equal("0s", fmt(0))
        assert.equal("500ms", fmt(500))
        assert.equal("1.5s", fmt(1500))
        assert.equal("1m30s", fmt(90000))
        assert.equal("10m0s", fmt(600000))
        assert.equal("1h0m0s", fmt(3600000))
        assert.equal("-1.5s", fmt(-1500))
    end)
end)
