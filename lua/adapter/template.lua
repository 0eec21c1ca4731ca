-- adapter.template: Go text/template with "<<" / ">>" delimiters, the subset
-- prometheus-adapter configs use (spec-rules.md §2.1).
--
-- Provides: template.compile(text, name) -> tmpl | nil, err   (parse at load)
--           tmpl:execute(data) -> string | nil, err           (per request)
--           template.list(t), template.map(t), template.struct(type, names, t)
--           (typed values so printing follows Go fmt: [a b], map[k:v], {..})
--           template.sprintf(fmt, ...) (Go fmt.Sprintf subset, used by printf)
-- Uses: adapter.core (goquote, only for %q, loaded lazily).
-- Never: touches globals, does I/O, or accepts a construct it cannot run:
-- define/template/block/call are refused at compile time with a clear
-- message (stricter than Go, allowed by §2.1).
--
-- Values: Lua strings, integers (numbers), booleans, nil, and tables tagged
-- with a metatable: FLOAT, LIST ([]string), MAP (map[string]string) and
-- STRUCT (the data object; a missing field is an execution error).  A missing
-- map key yields NOVALUE, which prints "<no value>" as in Go.

local M = {}

local LIST = { __kind = "list" }
local MAP = { __kind = "map" }
local FLOAT = { __kind = "float" }
local STRUCT = { __kind = "struct" }
local NOVALUE = setmetatable({}, { __kind = "invalid" })
M.NOVALUE = NOVALUE

function M.list(t) return setmetatable(t or {}, LIST) end
function M.map(t) return setmetatable(t or {}, MAP) end
function M.float(x) return setmetatable({ v = x }, FLOAT) end
-- names: field order (for %v printing); t: field -> value.
function M.struct(typename, names, t)
    return setmetatable({ __type = typename, __names = names, __f = t }, STRUCT)
end

local function kind(v)
    local tv = type(v)
    if v == nil then return "nil" end
    if tv == "string" then return "string" end
    if tv == "number" then return "int" end
    if tv == "boolean" then return "bool" end
    if tv == "table" then
        local mt = getmetatable(v)
        if mt and mt.__kind then return mt.__kind end
    end
    return "unknown"
end
M.kind = kind

local function gotype(v)
    local k = kind(v)
    if k == "string" then return "string" end
    if k == "int" then return "int" end
    if k == "bool" then return "bool" end
    if k == "float" then return "float64" end
    if k == "list" then return "[]string" end
    if k == "map" then return "map[string]string" end
    if k == "struct" then return v.__type end
    return "<nil>"
end

-- ---------------------------------------------------------------- printing

local function fmt_float(x, verb, prec)
    -- Go %v/%g: shortest representation that round-trips.
    if x ~= x then return "NaN" end
    if x == math.huge then return "+Inf" end
    if x == -math.huge then return "-Inf" end
    if prec then return string.format("%." .. prec .. (verb or "g"), x) end
    local s
    for p = 1, 17 do
        s = string.format("%." .. p .. "g", x)
        if tonumber(s) == x then break end
    end
    -- Go uses %e only when exp < -4 or exp >= 21 for %v.
    local mant, exp = s:match("^(-?[%d%.]+)e([-+]%d+)$")
    if mant then
        local e = tonumber(exp)
        if e >= -4 and e < 21 then
            s = string.format("%.17f", x):gsub("0+$", ""):gsub("%.$", "")
            for p = 0, 17 do
                local c = string.format("%." .. p .. "f", x)
                if tonumber(c) == x then s = c; break end
            end
        else
            s = mant .. "e" .. (e < 0 and "-" or "+")
                .. string.format("%02d", math.abs(e))
        end
    end
    return s
end

local function printv(v)
    local k = kind(v)
    if k == "string" then return v end
    if k == "int" then return string.format("%d", v) end
    if k == "bool" then return tostring(v) end
    if k == "float" then return fmt_float(v.v) end
    if k == "nil" then return "<nil>" end
    if k == "invalid" then return "<no value>" end
    if k == "list" then
        local out = {}
        for i = 1, #v do out[i] = printv(v[i]) end
        return "[" .. table.concat(out, " ") .. "]"
    end
    if k == "map" then
        local keys = {}
        for key in pairs(v) do keys[#keys + 1] = key end
        table.sort(keys)
        local out = {}
        for i, key in ipairs(keys) do
            out[i] = printv(key) .. ":" .. printv(v[key])
        end
        return "map[" .. table.concat(out, " ") .. "]"
    end
    if k == "struct" then
        local out = {}
        for i, n in ipairs(v.__names) do out[i] = printv(v.__f[n]) end
        return "{" .. table.concat(out, " ") .. "}"
    end
    return tostring(v)
end
M.print_value = printv

local function goquote(s)
    return require("adapter.core").goquote(s)
end

local function pad(s, width, minus, zero)
    if not width or #s >= width then return s end
    if minus then return s .. string.rep(" ", width - #s) end
    if zero then
        local sign, rest = s:match("^([-+]?)(.*)$")
        return sign .. string.rep("0", width - #s) .. rest
    end
    return string.rep(" ", width - #s) .. s
end

local function bad_verb(verb, v)
    if v == nil then return "%!" .. verb .. "(<nil>)" end
    return "%!" .. verb .. "(" .. gotype(v) .. "=" .. printv(v) .. ")"
end

local function fmt_one(verb, v, f)
    local k = kind(v)
    if verb == "v" then
        if f.plus_sharp then return printv(v) end
        return printv(v)
    elseif verb == "s" then
        if k == "string" then
            return f.prec and v:sub(1, f.prec) or v
        elseif k == "list" or k == "map" or k == "struct" then
            return printv(v)
        end
        return bad_verb(verb, v)
    elseif verb == "q" then
        if k == "string" then return goquote(v) end
        if k == "list" then
            local out = {}
            for i = 1, #v do out[i] = goquote(v[i]) end
            return "[" .. table.concat(out, " ") .. "]"
        end
        return bad_verb(verb, v)
    elseif verb == "d" then
        if k == "int" then
            local s = string.format("%d", v)
            if f.plus and v >= 0 then s = "+" .. s
            elseif f.space and v >= 0 then s = " " .. s end
            return s
        end
        return bad_verb(verb, v)
    elseif verb == "t" then
        if k == "bool" then return tostring(v) end
        return bad_verb(verb, v)
    elseif verb == "x" or verb == "X" then
        if k == "int" then
            local s = string.format("%" .. verb, math.abs(v))
            return (v < 0 and "-" or "") .. s
        elseif k == "string" then
            local s = v:gsub(".", function(c)
                return string.format("%02" .. verb, c:byte())
            end)
            return s
        end
        return bad_verb(verb, v)
    elseif verb == "f" or verb == "F" or verb == "e" or verb == "g" then
        local x
        if k == "float" then x = v.v
        else return bad_verb(verb, v) end
        local p = f.prec
        if not p and verb ~= "g" then p = 6 end
        if verb == "g" and not p then return fmt_float(x) end
        return fmt_float(x, verb == "F" and "f" or verb, p)
    elseif verb == "c" then
        if k == "int" then
            if v < 0x80 then return string.char(v) end
            local ok, s = pcall(function()
                if v < 0x800 then
                    return string.char(0xC0 + math.floor(v / 64), 0x80 + v % 64)
                elseif v < 0x10000 then
                    return string.char(0xE0 + math.floor(v / 4096),
                        0x80 + math.floor(v / 64) % 64, 0x80 + v % 64)
                end
                return string.char(0xF0 + math.floor(v / 262144),
                    0x80 + math.floor(v / 4096) % 64,
                    0x80 + math.floor(v / 64) % 64, 0x80 + v % 64)
            end)
            if ok then return s end
        end
        return bad_verb(verb, v)
    end
    return "%!" .. verb .. "(" .. gotype(v) .. "=" .. printv(v) .. ")"
end

-- Go fmt.Sprintf for the verbs configs use (%s %v %d %q %t %x %X %f %e %g
-- %c %%), with flags "-+ 0#", width and precision.  Malformed input gives
-- Go's %!verb(...) markers rather than an error, as Go does.
function M.sprintf(format, args)
    local out = {}
    local argi = 1
    local i, n = 1, #format
    while i <= n do
        local c = format:sub(i, i)
        if c ~= "%" then
            local j = format:find("%", i, true) or (n + 1)
            out[#out + 1] = format:sub(i, j - 1)
            i = j
        else
            i = i + 1
            local f = {}
            while i <= n do
                local fc = format:sub(i, i)
                if fc == "-" then f.minus = true
                elseif fc == "+" then f.plus = true
                elseif fc == " " then f.space = true
                elseif fc == "0" then f.zero = true
                elseif fc == "#" then f.sharp = true
                else break end
                i = i + 1
            end
            local w = format:match("^%d+", i)
            if w then f.width = tonumber(w); i = i + #w end
            if format:sub(i, i) == "." then
                i = i + 1
                local p = format:match("^%d+", i) or ""
                f.prec = tonumber(p) or 0
                i = i + #p
            end
            if i > n then
                out[#out + 1] = "%!(NOVERB)"
                break
            end
            local verb = format:sub(i, i)
            i = i + 1
            if verb == "%" then
                out[#out + 1] = "%"
            elseif argi > args.n then
                out[#out + 1] = "%!" .. verb .. "(MISSING)"
            else
                local s = fmt_one(verb, args[argi], f)
                argi = argi + 1
                out[#out + 1] = pad(s, f.width, f.minus, f.zero)
            end
        end
    end
    if argi <= args.n then
        local extra = {}
        for k = argi, args.n do
            extra[#extra + 1] = gotype(args[k]) .. "=" .. printv(args[k])
        end
        out[#out + 1] = "%!(EXTRA " .. table.concat(extra, ", ") .. ")"
    end
    return table.concat(out)
end

-- fmt.Sprint: a space between operands when neither is a string.
local function sprint(args)
    local out = {}
    for i = 1, args.n do
        if i > 1 and kind(args[i - 1]) ~= "string"
            and kind(args[i]) ~= "string" then
            out[#out + 1] = " "
        end
        out[#out + 1] = printv(args[i])
    end
    return table.concat(out)
end

local function sprintln(args)
    local out = {}
    for i = 1, args.n do out[i] = printv(args[i]) end
    return table.concat(out, " ") .. "\n"
end

-- ------------------------------------------------------------------ lexer

local LEFT, RIGHT = "<<", ">>"
local KEYWORDS = {
    ["if"] = true, ["else"] = true, ["end"] = true, ["range"] = true,
    ["with"] = true, ["define"] = true, ["template"] = true,
    ["block"] = true, ["break"] = true, ["continue"] = true,
    ["nil"] = true, ["true"] = true, ["false"] = true,
}

local function is_space(c)
    return c == " " or c == "\t" or c == "\r" or c == "\n"
end

local function line_of(text, pos)
    local line = 1
    for _ in text:sub(1, pos - 1):gmatch("\n") do line = line + 1 end
    return line
end

-- Go strconv.Unquote for "..." literals.
local function unquote(body)
    local out, i = {}, 1
    local simple = { a = "\a", b = "\b", f = "\f", n = "\n", r = "\r",
        t = "\t", v = "\v", ["\\"] = "\\", ['"'] = '"', ["'"] = "'" }
    local function utf8(cp)
        if cp < 0x80 then return string.char(cp) end
        if cp < 0x800 then
            return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
        end
        if cp < 0x10000 then
            return string.char(0xE0 + math.floor(cp / 4096),
                0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
        end
        return string.char(0xF0 + math.floor(cp / 262144),
            0x80 + math.floor(cp / 4096) % 64,
            0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    while i <= #body do
        local c = body:sub(i, i)
        if c ~= "\\" then
            out[#out + 1] = c; i = i + 1
        else
            local e = body:sub(i + 1, i + 1)
            if simple[e] then
                out[#out + 1] = simple[e]; i = i + 2
            elseif e == "x" then
                local h = body:match("^%x%x", i + 2)
                if not h then return nil end
                out[#out + 1] = string.char(tonumber(h, 16)); i = i + 4
            elseif e == "u" or e == "U" then
                local len = e == "u" and 4 or 8
                local h = body:sub(i + 2, i + 1 + len)
                if #h ~= len or not h:match("^%x+$") then return nil end
                out[#out + 1] = utf8(tonumber(h, 16)); i = i + 2 + len
            elseif e:match("[0-7]") then
                local o = body:match("^[0-7][0-7][0-7]", i + 1)
                if not o or tonumber(o, 8) > 255 then return nil end
                out[#out + 1] = string.char(tonumber(o, 8)); i = i + 4
            else
                return nil
            end
        end
    end
    return table.concat(out)
end

-- Tokens: { t = type, v = value, pos = byte offset }.  Types: text, left,
-- right, space, ident, field, var, dot, string, number, char, bool, nil,
-- pipe, lparen, rparen, decl (:=), assign (=), comma, keyword, eof.
local function lex(text, name)
    local toks = {}
    local pos, n = 1, #text
    local trim_next = false
    local function err(p, msg)
        error({ tmpl = true, msg = string.format("template: %s:%d: %s",
            name, line_of(text, p), msg) }, 0)
    end
    while pos <= n do
        local ls = text:find(LEFT, pos, true)
        local chunk_end = ls and ls - 1 or n
        local chunk = text:sub(pos, chunk_end)
        local trim_left = false
        if ls then
            local after = text:sub(ls + 2, ls + 3)
            if after:sub(1, 1) == "-" and is_space(after:sub(2, 2)) then
                trim_left = true
            end
        end
        if trim_next then chunk = chunk:gsub("^[ \t\r\n]+", "") end
        if trim_left then chunk = chunk:gsub("[ \t\r\n]+$", "") end
        trim_next = false
        if #chunk > 0 then toks[#toks + 1] = { t = "text", v = chunk, pos = pos } end
        if not ls then break end
        local p = ls + 2
        if trim_left then p = p + 2 end
        -- comment
        if text:sub(p, p + 1) == "/*" then
            local ce = text:find("*/", p + 2, true)
            if not ce then err(ls, "unclosed comment") end
            local q = ce + 2
            if text:sub(q, q + 3):match("^ %->>") then
                trim_next = true; q = q + 4
            elseif text:sub(q, q + 1) == RIGHT then
                q = q + 2
            else
                err(ls, "comment ends before closing delimiter")
            end
            pos = q
        else
            toks[#toks + 1] = { t = "left", pos = ls }
            local paren = 0
            while true do
                if p > n then err(ls, "unclosed action") end
                local c = text:sub(p, p)
                -- right delimiter, possibly with a trim marker
                if paren == 0 and is_space(c) and text:sub(p + 1, p + 3) == "->>" then
                    toks[#toks + 1] = { t = "right", pos = p }
                    trim_next = true
                    p = p + 4
                    break
                elseif text:sub(p, p + 1) == RIGHT then
                    if paren > 0 then err(p, "unclosed left paren") end
                    toks[#toks + 1] = { t = "right", pos = p }
                    p = p + 2
                    break
                elseif is_space(c) then
                    local s, e = text:find("^[ \t\r\n]+", p)
                    toks[#toks + 1] = { t = "space", pos = p }
                    p = e + 1
                    local _ = s
                elseif text:sub(p, p + 1) == ":=" then
                    toks[#toks + 1] = { t = "decl", pos = p }; p = p + 2
                elseif c == "=" then
                    toks[#toks + 1] = { t = "assign", pos = p }; p = p + 1
                elseif c == "|" then
                    toks[#toks + 1] = { t = "pipe", pos = p }; p = p + 1
                elseif c == "," then
                    toks[#toks + 1] = { t = "comma", pos = p }; p = p + 1
                elseif c == "(" then
                    paren = paren + 1
                    toks[#toks + 1] = { t = "lparen", pos = p }; p = p + 1
                elseif c == ")" then
                    paren = paren - 1
                    if paren < 0 then err(p, "unexpected right paren") end
                    toks[#toks + 1] = { t = "rparen", pos = p }; p = p + 1
                elseif c == '"' then
                    local q = p + 1
                    while true do
                        local d = text:sub(q, q)
                        if d == "" or d == "\n" then err(p, "unterminated quoted string") end
                        if d == "\\" then q = q + 2
                        elseif d == '"' then break
                        else q = q + 1 end
                    end
                    local v = unquote(text:sub(p + 1, q - 1))
                    if not v then err(p, "invalid syntax in quoted string") end
                    toks[#toks + 1] = { t = "string", v = v, pos = p }
                    p = q + 1
                elseif c == "`" then
                    local q = text:find("`", p + 1, true)
                    if not q then err(p, "unterminated raw quoted string") end
                    toks[#toks + 1] = { t = "string", v = text:sub(p + 1, q - 1), pos = p }
                    p = q + 1
                elseif c == "'" then
                    local q = p + 1
                    while true do
                        local d = text:sub(q, q)
                        if d == "" or d == "\n" then err(p, "unterminated character constant") end
                        if d == "\\" then q = q + 2
                        elseif d == "'" then break
                        else q = q + 1 end
                    end
                    local body = text:sub(p + 1, q - 1)
                    local v = body == '"' and '"' or unquote(body)
                    if not v or v == "" then err(p, "malformed character constant") end
                    local b = v:byte(1)
                    local cp = b
                    if #v > 1 then
                        -- decode one UTF-8 sequence
                        local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
                        if #v ~= len then err(p, "malformed character constant") end
                        cp = b % (2 ^ (7 - len))
                        for k = 2, len do cp = cp * 64 + v:byte(k) % 64 end
                    end
                    toks[#toks + 1] = { t = "number", v = cp, pos = p, char = true }
                    p = q + 1
                elseif c == "$" then
                    local id = text:match("^%$[%w_]*", p)
                    toks[#toks + 1] = { t = "var", v = id, pos = p }
                    p = p + #id
                elseif c == "." then
                    local id = text:match("^%.[%a_][%w_]*", p)
                    if id then
                        toks[#toks + 1] = { t = "field", v = id:sub(2), pos = p }
                        p = p + #id
                    elseif text:sub(p + 1, p + 1):match("%d") then
                        local num = text:match("^%.%d+[eE]?[-+]?%d*", p)
                        toks[#toks + 1] = { t = "number", v = num, pos = p }
                        p = p + #num
                    else
                        toks[#toks + 1] = { t = "dot", pos = p }
                        p = p + 1
                    end
                elseif c:match("[%d%+%-]") then
                    local num = text:match("^[-+]?0[xX][%x_]+", p)
                        or text:match("^[-+]?%d[%d_]*%.?%d*[eE][-+]?%d+", p)
                        or text:match("^[-+]?%d[%d_]*%.?%d*", p)
                        or text:match("^[-+]?%.%d+", p)
                    if not num then err(p, "bad number syntax: \"" .. c .. "\"") end
                    local nextc = text:sub(p + #num, p + #num)
                    if nextc:match("[%w_]") then
                        err(p, "bad number syntax: \"" .. num .. nextc .. "\"")
                    end
                    toks[#toks + 1] = { t = "number", v = num, pos = p }
                    p = p + #num
                elseif c:match("[%a_]") then
                    local id = text:match("^[%w_]+", p)
                    local t = "ident"
                    if id == "true" or id == "false" then t = "bool"
                    elseif id == "nil" then t = "nil"
                    elseif KEYWORDS[id] then t = "keyword" end
                    toks[#toks + 1] = { t = t, v = id, pos = p }
                    p = p + #id
                else
                    err(p, string.format("unrecognized character in action: %q", c))
                end
            end
            pos = p
        end
    end
    toks[#toks + 1] = { t = "eof", pos = n + 1 }
    return toks
end

-- ----------------------------------------------------------------- parser

local FUNCS -- defined below; the parser checks names against it

local function parse(text, name)
    local toks = lex(text, name)
    local i = 1
    local vars = { "$" }          -- names in scope (parse-time check)
    local range_depth = 0

    local function err(tok, msg)
        error({ tmpl = true, msg = string.format("template: %s:%d: %s",
            name, line_of(text, tok.pos), msg) }, 0)
    end
    local function peek() return toks[i] end
    local function next_tok() local t = toks[i]; i = i + 1; return t end
    local function peek_ns()
        while toks[i].t == "space" do i = i + 1 end
        return toks[i]
    end
    local function next_ns() local t = peek_ns(); i = i + 1; return t end
    local function tokdesc(t)
        if t.t == "eof" then return "EOF" end
        if t.t == "right" then return "right delim" end
        if t.v then return string.format("%q", tostring(t.v)) end
        return string.format("%q", text:sub(t.pos, t.pos))
    end
    local function has_var(v)
        for k = #vars, 1, -1 do if vars[k] == v then return true end end
        return false
    end

    local parse_pipeline

    -- Field chain after an operand: (.X).Y or $x.Y
    local function chain(node)
        while peek().t == "field" do
            local t = next_tok()
            node = { k = "chain", node = node, fields = node.fields or {}, pos = t.pos }
            node.fields = { t.v }
            while peek().t == "field" do node.fields[#node.fields + 1] = next_tok().v end
        end
        return node
    end

    local function term()
        local t = peek_ns()
        if t.t == "ident" then
            i = i + 1
            if not FUNCS[t.v] then err(t, string.format("function %q not defined", t.v)) end
            if t.v == "call" then
                err(t, "function \"call\" is not supported by this adapter")
            end
            return { k = "ident", name = t.v, pos = t.pos }
        elseif t.t == "dot" then
            i = i + 1
            return { k = "dot", pos = t.pos }
        elseif t.t == "nil" then
            i = i + 1
            return { k = "nil", pos = t.pos }
        elseif t.t == "var" then
            i = i + 1
            if not has_var(t.v) then err(t, string.format("undefined variable %q", t.v)) end
            return { k = "var", name = t.v, pos = t.pos }
        elseif t.t == "field" then
            i = i + 1
            local fields = { t.v }
            while peek().t == "field" do fields[#fields + 1] = next_tok().v end
            return { k = "field", fields = fields, pos = t.pos }
        elseif t.t == "bool" then
            i = i + 1
            return { k = "const", v = t.v == "true", pos = t.pos }
        elseif t.t == "number" then
            i = i + 1
            local v = t.v
            if type(v) == "string" then
                local s = v:gsub("_", "")
                if s:match("^[-+]?0[xX]") then
                    local neg = s:sub(1, 1) == "-"
                    local h = tonumber(s:match("0[xX](%x+)"), 16)
                    v = neg and -h or h
                elseif s:match("[%.eE]") then
                    v = M.float(tonumber(s))
                else
                    v = tonumber(s)
                end
                if v == nil then err(t, "illegal number syntax: \"" .. t.v .. "\"") end
            end
            return { k = "const", v = v, pos = t.pos }
        elseif t.t == "string" then
            i = i + 1
            return { k = "const", v = t.v, pos = t.pos }
        elseif t.t == "lparen" then
            i = i + 1
            local p = parse_pipeline("parenthesized pipeline", "rparen")
            return { k = "pipe", pipe = p, pos = t.pos }
        end
        return nil
    end

    local function operand()
        local node = term()
        if not node then return nil end
        if peek().t == "field" then
            if node.k == "ident" or node.k == "nil" or node.k == "const" then
                err(peek(), "unexpected . after term " .. tokdesc(toks[i - 1]))
            end
            node = chain(node)
        end
        return node
    end

    local function command(endt)
        local args = {}
        local start = peek_ns()
        while true do
            local t = peek_ns()
            if t.t == "pipe" or t.t == endt then break end
            if t.t == "right" or t.t == "rparen" or t.t == "eof" then
                err(t, "unexpected " .. tokdesc(t) .. " in operand")
            end
            local op = operand()
            if not op then err(t, "unexpected " .. tokdesc(t) .. " in operand") end
            args[#args + 1] = op
            local nt = peek()
            if nt.t ~= "space" and nt.t ~= "pipe" and nt.t ~= endt then
                if nt.t == "right" or nt.t == "rparen" then
                    err(nt, "unexpected " .. tokdesc(nt) .. " in operand")
                end
                err(nt, "unexpected " .. tokdesc(nt) .. " in operand")
            end
        end
        if #args == 0 then err(start, "missing value for command") end
        return { args = args, pos = start.pos,
            src = text:sub(start.pos, toks[i].pos - 1):gsub("%s+$", "") }
    end

    -- ctx: "if", "range", "with", "command", "parenthesized pipeline"
    function parse_pipeline(ctx, endt)
        endt = endt or "right"
        local pipe = { decl = {}, cmds = {}, pos = peek_ns().pos }
        -- declarations: $x := / $x = / $i, $v :=
        local save = i
        local t = peek_ns()
        if t.t == "var" then
            i = i + 1
            local t2 = peek_ns()
            if t2.t == "decl" or t2.t == "assign" then
                i = i + 1
                pipe.decl = { t.v }
                pipe.is_assign = t2.t == "assign"
                if pipe.is_assign and not has_var(t.v) then
                    err(t, string.format("undefined variable %q", t.v))
                end
            elseif t2.t == "comma" and ctx == "range" then
                i = i + 1
                local t3 = next_ns()
                if t3.t ~= "var" then err(t3, "range can only initialize variables") end
                local t4 = next_ns()
                if t4.t ~= "decl" and t4.t ~= "assign" then
                    err(t4, "range can only initialize variables")
                end
                pipe.decl = { t.v, t3.v }
                pipe.is_assign = t4.t == "assign"
            elseif t2.t == "comma" then
                err(t2, "too many declarations in " .. ctx)
            else
                i = save
            end
        end
        if not pipe.is_assign then
            for _, v in ipairs(pipe.decl) do vars[#vars + 1] = v end
        end
        while true do
            local c = peek_ns()
            if c.t == endt then
                i = i + 1
                break
            end
            if c.t == "eof" then err(c, "unclosed action") end
            pipe.cmds[#pipe.cmds + 1] = command(endt)
            local nt = peek_ns()
            if nt.t == "pipe" then
                i = i + 1
                if peek_ns().t == endt then err(nt, "missing command after pipe") end
            end
        end
        if #pipe.cmds == 0 then err(toks[i - 1], "missing value for " .. ctx) end
        for k = 2, #pipe.cmds do
            local a = pipe.cmds[k].args[1]
            if a.k == "const" or a.k == "nil" then
                err(toks[i - 1], "non executable command in pipeline stage " .. k)
            end
        end
        return pipe
    end

    local parse_list

    local function expect_right(kw)
        local t = next_ns()
        if t.t ~= "right" then err(t, "unexpected " .. tokdesc(t) .. " in " .. kw) end
    end

    local function control(kw, pos)
        local mark = #vars
        if kw == "range" then range_depth = range_depth + 1 end
        local node = { k = kw, pos = pos }
        node.pipe = parse_pipeline(kw)
        local body, stop = parse_list()
        node.list = body
        if kw == "range" then range_depth = range_depth - 1 end
        if stop.kw == "else" then
            local t = peek_ns()
            if kw == "if" and t.t == "keyword" and t.v == "if" then
                -- "else if": a nested if that consumes the shared "end".
                i = i + 1
                node.else_list = { control("if", t.pos) }
                for k = #vars, mark + 1, -1 do vars[k] = nil end
                return node
            end
            expect_right("else")
            -- variables declared in the pipeline stay visible in else
            local else_list, stop2 = parse_list()
            if stop2.kw ~= "end" then err(stop2.tok, "expected end; found " .. stop2.kw) end
            node.else_list = else_list
        elseif stop.kw ~= "end" then
            err(stop.tok, "unexpected EOF")
        end
        for k = #vars, mark + 1, -1 do vars[k] = nil end
        return node
    end

    -- Returns list, { kw = "end"|"else"|"eof", tok }
    function parse_list()
        local list = {}
        while true do
            local t = next_tok()
            if t.t == "eof" then return list, { kw = "eof", tok = t } end
            if t.t == "text" then
                list[#list + 1] = { k = "text", v = t.v }
            elseif t.t == "left" then
                local a = peek_ns()
                if a.t == "keyword" then
                    i = i + 1
                    local kw = a.v
                    if kw == "end" then
                        expect_right("end")
                        return list, { kw = "end", tok = a }
                    elseif kw == "else" then
                        return list, { kw = "else", tok = a }
                    elseif kw == "if" or kw == "range" or kw == "with" then
                        list[#list + 1] = control(kw, a.pos)
                    elseif kw == "break" or kw == "continue" then
                        if range_depth == 0 then
                            err(a, string.format("{{%s}} outside {{range}}", kw))
                        end
                        expect_right(kw)
                        list[#list + 1] = { k = kw }
                    elseif kw == "define" or kw == "template" or kw == "block" then
                        err(a, string.format("%q actions are not supported by this adapter", kw))
                    else
                        err(a, "unexpected " .. tokdesc(a) .. " in command")
                    end
                else
                    local pipe = parse_pipeline("command")
                    list[#list + 1] = { k = "action", pipe = pipe, pos = t.pos }
                end
            else
                err(t, "unexpected " .. tokdesc(t))
            end
        end
    end

    local list, stop = parse_list()
    if stop.kw ~= "eof" then err(stop.tok, "unexpected " .. tokdesc(stop.tok)) end
    return list
end

-- -------------------------------------------------------------- execution

local BREAK, CONTINUE = {}, {}

local function truth(v)
    local k = kind(v)
    if k == "nil" or k == "invalid" then return false end
    if k == "bool" then return v end
    if k == "string" then return #v > 0 end
    if k == "int" then return v ~= 0 end
    if k == "float" then return v.v ~= 0 end
    if k == "list" then return #v > 0 end
    if k == "map" then return next(v) ~= nil end
    return true
end

local function arg_value(v)
    if v == NOVALUE then return nil end
    return v
end

local function basic(v)
    local k = kind(v)
    if k == "float" then return "float", v.v end
    if k == "int" then return "int", v end
    if k == "string" or k == "bool" then return k, v end
    return k, v
end

local function eq2(a, b)
    local ka, va = basic(a)
    local kb, vb = basic(b)
    if ka == "list" or ka == "map" or ka == "struct" then
        error("error calling eq: non-comparable type " .. printv(a) .. ": " .. gotype(a), 0)
    end
    if ka == "nil" or kb == "nil" then
        if ka == "nil" and kb == "nil" then return true end
        error("error calling eq: incompatible types for comparison", 0)
    end
    if ka ~= kb then
        if (ka == "int" or ka == "float") and (kb == "int" or kb == "float") then
            return va == vb
        end
        error("error calling eq: incompatible types for comparison", 0)
    end
    return va == vb
end

local function cmp(fname, a, b)
    local ka, va = basic(a)
    local kb, vb = basic(b)
    local ok = { int = true, float = true, string = true }
    if not ok[ka] or not ok[kb] then
        error("error calling " .. fname .. ": invalid type for comparison", 0)
    end
    local numa, numb = ka ~= "string", kb ~= "string"
    if numa ~= numb then
        error("error calling " .. fname .. ": incompatible types for comparison", 0)
    end
    if va < vb then return -1 elseif va == vb then return 0 end
    return 1
end

local function html_escape(s)
    return (s:gsub("[\"'&<>%z]", {
        ['"'] = "&#34;", ["'"] = "&#39;", ["&"] = "&amp;",
        ["<"] = "&lt;", [">"] = "&gt;", ["\0"] = "\239\191\189" }))
end

local function js_escape(s)
    return (s:gsub("[%c\\'\"<>&=]", function(c)
        if c == "\\" then return "\\\\" end
        if c == "'" then return "\\'" end
        if c == '"' then return '\\"' end
        if c == "<" then return "\\u003C" end
        if c == ">" then return "\\u003E" end
        if c == "&" then return "\\u0026" end
        if c == "=" then return "\\u003D" end
        return string.format("\\u%04X", c:byte())
    end))
end

local function query_escape(s)
    return (s:gsub("[^%w%-_%.~]", function(c)
        if c == " " then return "+" end
        return string.format("%%%02X", c:byte())
    end))
end

-- fmt.Sprint of the args, except that one string arg is used as is
-- (Go's evalArgs used by html/js/urlquery).
local function eval_args(args)
    if args.n == 1 and kind(args[1]) == "string" then return args[1] end
    return sprint(args)
end

local function to_index(fname, x, cap)
    local k = kind(x)
    if k ~= "int" then
        error("error calling " .. fname .. ": cannot index slice/array with type " .. gotype(x), 0)
    end
    if x < 0 or x > cap then
        error("error calling " .. fname .. ": index out of range: " .. x, 0)
    end
    return x
end

-- Builtins get (args) with args.n; and/or are handled by the evaluator
-- because they short-circuit.
FUNCS = {
    ["and"] = true, ["or"] = true, call = true,
    ["not"] = function(a)
        if a.n ~= 1 then error("wrong number of args for not: want 1 got " .. a.n, 0) end
        return not truth(a[1])
    end,
    len = function(a)
        if a.n ~= 1 then error("wrong number of args for len: want 1 got " .. a.n, 0) end
        local v, k = a[1], kind(a[1])
        if k == "string" then return #v end
        if k == "list" then return #v end
        if k == "map" then
            local c = 0
            for _ in pairs(v) do c = c + 1 end
            return c
        end
        if k == "nil" then error("error calling len: len of nil pointer", 0) end
        error("error calling len: len of type " .. gotype(v), 0)
    end,
    index = function(a)
        if a.n < 1 then error("wrong number of args for index: want at least 1 got 0", 0) end
        local item = a[1]
        for j = 2, a.n do
            local k = kind(item)
            local x = a[j]
            if k == "nil" then error("error calling index: index of untyped nil", 0) end
            if k == "list" then
                to_index("index", x, #item - 1)
                if x >= #item then error("error calling index: index out of range: " .. x, 0) end
                item = item[x + 1]
            elseif k == "string" then
                to_index("index", x, #item - 1)
                if x >= #item then error("error calling index: index out of range: " .. x, 0) end
                item = item:byte(x + 1)
            elseif k == "map" then
                if kind(x) ~= "string" then
                    error("error calling index: value has type " .. gotype(x)
                        .. "; should be string", 0)
                end
                local v = item[x]
                if v == nil then v = "" end -- zero value of the element type
                item = v
            else
                error("error calling index: can't index item of type " .. gotype(item), 0)
            end
        end
        return item
    end,
    slice = function(a)
        if a.n < 1 then error("wrong number of args for slice: want at least 1 got 0", 0) end
        local item, k = a[1], kind(a[1])
        if k ~= "string" and k ~= "list" then
            if k == "nil" then error("error calling slice: slice of untyped nil", 0) end
            error("error calling slice: can't slice item of type " .. gotype(item), 0)
        end
        if a.n > 4 then error("error calling slice: too many slice indexes: " .. (a.n - 1), 0) end
        if k == "string" and a.n == 4 then
            error("error calling slice: cannot 3-index slice a string", 0)
        end
        local len = #item
        local idx = { 0, len }
        for j = 2, a.n do idx[j - 1] = to_index("slice", a[j], len) end
        if idx[1] > idx[2] then
            error("error calling slice: invalid slice index: " .. idx[1] .. " > " .. idx[2], 0)
        end
        if k == "string" then return item:sub(idx[1] + 1, idx[2]) end
        local out = {}
        for j = idx[1] + 1, idx[2] do out[#out + 1] = item[j] end
        return M.list(out)
    end,
    print = function(a) return sprint(a) end,
    println = function(a) return sprintln(a) end,
    printf = function(a)
        if a.n < 1 or kind(a[1]) ~= "string" then
            error("wrong type for value; expected string; got " .. gotype(a[1]), 0)
        end
        local rest = { n = a.n - 1 }
        for j = 2, a.n do rest[j - 1] = a[j] end
        return M.sprintf(a[1], rest)
    end,
    html = function(a) return html_escape(eval_args(a)) end,
    js = function(a) return js_escape(eval_args(a)) end,
    urlquery = function(a) return query_escape(eval_args(a)) end,
    eq = function(a)
        if a.n < 2 then error("error calling eq: missing argument for comparison", 0) end
        for j = 2, a.n do
            if eq2(a[1], a[j]) then return true end
        end
        return false
    end,
    ne = function(a)
        if a.n ~= 2 then error("wrong number of args for ne: want 2 got " .. a.n, 0) end
        return not eq2(a[1], a[2])
    end,
    lt = function(a) return cmp("lt", a[1], a[2]) < 0 end,
    le = function(a) return cmp("le", a[1], a[2]) <= 0 end,
    gt = function(a) return cmp("gt", a[1], a[2]) > 0 end,
    ge = function(a) return cmp("ge", a[1], a[2]) >= 0 end,
}

local Template = {}
Template.__index = Template

local function exec(tmpl, data)
    local text, name = tmpl.text, tmpl.name
    local out = {}
    local vars = { { "$", data } }

    local function fail(pos, at, msg)
        error({ tmpl = true, msg = string.format(
            "template: %s:%d:%d: executing %q at <%s>: %s", name,
            line_of(text, pos), pos - (text:sub(1, pos - 1):match(".*\n()") or 1),
            name, at, msg) }, 0)
    end
    local function getvar(v)
        for k = #vars, 1, -1 do if vars[k][1] == v then return vars[k][2] end end
        return nil
    end
    local function setvar(v, val)
        for k = #vars, 1, -1 do
            if vars[k][1] == v then vars[k][2] = val; return end
        end
    end

    local eval_pipe

    local function field_of(recv, f, pos, at, has_args)
        local k = kind(recv)
        if k == "struct" then
            local v = recv.__f[f]
            local known = false
            for _, fn in ipairs(recv.__names) do if fn == f then known = true end end
            if not known then
                fail(pos, at, string.format("can't evaluate field %s in type %s", f, recv.__type))
            end
            if has_args then
                fail(pos, at, string.format(
                    "%s has arguments but cannot be invoked as function", f))
            end
            return v
        elseif k == "map" then
            if has_args then
                fail(pos, at, string.format(
                    "%s is not a method but has arguments", f))
            end
            local v = recv[f]
            if v == nil then return NOVALUE end
            return v
        elseif k == "nil" or k == "invalid" then
            fail(pos, at, string.format("nil data; no entry for key %q", f))
        end
        fail(pos, at, string.format("can't evaluate field %s in type %s", f, gotype(recv)))
    end

    local function fields(recv, list, pos, at, has_args)
        for j, f in ipairs(list) do
            recv = field_of(recv, f, pos, at, has_args and j == #list)
        end
        return recv
    end

    local eval_arg

    local function call_func(cmd, dot, final, has_final)
        local fname = cmd.args[1].name
        local at = cmd.src
        if fname == "and" or fname == "or" then
            local n = #cmd.args - 1 + (has_final and 1 or 0)
            if n < 1 then fail(cmd.pos, at, "wrong number of args for " .. fname
                .. ": want at least 1 got 0") end
            local v
            for j = 2, #cmd.args do
                v = eval_arg(cmd.args[j], dot)
                local t = truth(v)
                if (fname == "and" and not t) or (fname == "or" and t) then return v end
            end
            if has_final then v = final end
            return v
        end
        local args = { n = 0 }
        for j = 2, #cmd.args do
            args.n = args.n + 1
            args[args.n] = arg_value(eval_arg(cmd.args[j], dot))
        end
        if has_final then
            args.n = args.n + 1
            args[args.n] = arg_value(final)
        end
        local fixed = { ["not"] = 1, len = 1, ne = 2, lt = 2, le = 2, gt = 2, ge = 2 }
        if fixed[fname] and args.n ~= fixed[fname] then
            fail(cmd.pos, at, string.format("wrong number of args for %s: want %d got %d",
                fname, fixed[fname], args.n))
        end
        local ok, res = pcall(FUNCS[fname], args)
        if not ok then
            if type(res) == "table" then error(res, 0) end
            fail(cmd.pos, at, tostring(res))
        end
        return res
    end

    local function eval_node(node, dot, args_follow)
        local k = node.k
        if k == "dot" then return dot end
        if k == "nil" then return nil end
        if k == "const" then return node.v end
        if k == "var" then return getvar(node.name) end
        if k == "field" then
            return fields(dot, node.fields, node.pos, "." .. table.concat(node.fields, "."),
                args_follow)
        end
        if k == "pipe" then return eval_pipe(node.pipe, dot) end
        if k == "chain" then
            local base = eval_node(node.node, dot)
            return fields(base, node.fields, node.pos, "." .. table.concat(node.fields, "."),
                args_follow)
        end
        if k == "ident" then
            return call_func({ args = { node }, pos = node.pos, src = node.name }, dot)
        end
        error("unknown node " .. tostring(k))
    end

    function eval_arg(node, dot)
        if node.k == "ident" then
            return call_func({ args = { node }, pos = node.pos, src = node.name }, dot)
        end
        return eval_node(node, dot)
    end

    local function eval_cmd(cmd, dot, final, has_final)
        local first = cmd.args[1]
        if first.k == "ident" then return call_func(cmd, dot, final, has_final) end
        local extra = #cmd.args > 1 or has_final
        if first.k == "nil" then fail(cmd.pos, cmd.src, "nil is not a command") end
        if extra then
            if first.k == "field" or first.k == "chain" then
                -- evaluate to raise the right "has arguments" error
                eval_node(first, dot, true)
            end
            fail(cmd.pos, cmd.src, "can't give argument to non-function " .. cmd.src:match("^%S+"))
        end
        return eval_node(first, dot)
    end

    function eval_pipe(pipe, dot)
        local v, has = nil, false
        for _, cmd in ipairs(pipe.cmds) do
            v = eval_cmd(cmd, dot, v, has)
            has = true
        end
        if #pipe.decl == 1 then
            if pipe.is_assign then setvar(pipe.decl[1], v)
            else vars[#vars + 1] = { pipe.decl[1], v } end
        end
        return v
    end

    local run_list

    local function run_range(node, dot)
        local mark = #vars
        local decl = node.pipe.decl
        -- evaluate without declaring: range binds its own variables
        local saved = node.pipe.decl
        node.pipe.decl = {}
        local v = eval_pipe(node.pipe, dot)
        node.pipe.decl = saved
        local k = kind(v)
        local items = {}
        if k == "list" then
            for j = 1, #v do items[#items + 1] = { j - 1, v[j] } end
        elseif k == "map" then
            local keys = {}
            for key in pairs(v) do keys[#keys + 1] = key end
            table.sort(keys)
            for _, key in ipairs(keys) do items[#items + 1] = { key, v[key] } end
        elseif k == "int" then
            for j = 0, v - 1 do items[#items + 1] = { j, j } end
        elseif k == "nil" or k == "invalid" then
            items = {}
        else
            fail(node.pos, "range", "range can't iterate over " .. printv(v))
        end
        if #items == 0 then
            if node.else_list then run_list(node.else_list, dot) end
            return
        end
        for _, it in ipairs(items) do
            if #decl == 1 then
                vars[mark + 1] = { decl[1], it[2] }
            elseif #decl == 2 then
                vars[mark + 1] = { decl[1], it[1] }
                vars[mark + 2] = { decl[2], it[2] }
            end
            local r = run_list(node.list, it[2])
            for j = #vars, mark + #decl + 1, -1 do vars[j] = nil end
            if r == BREAK then break end
        end
        for j = #vars, mark + 1, -1 do vars[j] = nil end
    end

    function run_list(list, dot)
        for _, node in ipairs(list) do
            local k = node.k
            if k == "text" then
                out[#out + 1] = node.v
            elseif k == "action" then
                local mark = #vars
                local v = eval_pipe(node.pipe, dot)
                if #node.pipe.decl == 0 then out[#out + 1] = printv(v) end
                -- action-level declarations live until the enclosing end
                local _ = mark
            elseif k == "if" or k == "with" then
                local mark = #vars
                local v = eval_pipe(node.pipe, dot)
                local r
                if truth(v) then
                    r = run_list(node.list, k == "with" and v or dot)
                elseif node.else_list then
                    r = run_list(node.else_list, dot)
                end
                for j = #vars, mark + 1, -1 do vars[j] = nil end
                if r then return r end
            elseif k == "range" then
                run_range(node, dot)
            elseif k == "break" then
                return BREAK
            elseif k == "continue" then
                return CONTINUE
            end
        end
        return nil
    end

    run_list(tmpl.tree, data)
    return table.concat(out)
end

-- Parses text now; parse errors come back as Go-style messages
-- ("template: <name>:<line>: ...").
function M.compile(text, name)
    name = name or "template"
    local ok, res = pcall(parse, text, name)
    if not ok then
        if type(res) == "table" and res.tmpl then return nil, res.msg end
        return nil, "template: " .. name .. ": " .. tostring(res)
    end
    return setmetatable({ text = text, name = name, tree = res }, Template)
end

-- Runs the template against data; execution errors are returned as
-- (nil, message), never raised.
function Template:execute(data)
    local ok, res = pcall(exec, self, data)
    if not ok then
        if type(res) == "table" and res.tmpl then return nil, res.msg end
        return nil, "template: " .. self.name .. ": " .. tostring(res)
    end
    return res
end

return M
