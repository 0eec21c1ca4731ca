-- adapter.naming: seriesFilters and name.matches / name.as
-- (spec-rules.md §4.1, §4.2).
--
-- Provides: naming.compile_filter(is, isNot) -> filter | nil, err
--           naming.compile_name(matches, as) -> namer | nil, err, field
--           naming.match_series(rule, series) -> bool      (default step)
--           naming.metric_name(rule, series_name) -> name | nil, err
--                                                          (default step)
--           naming.expand(template, caps, names) -> string (Go Regexp.Expand)
-- Uses: adapter.core.regex (Go RE2 dialect; no Lua fallback on purpose).
-- Never: anchors or escapes user regexes (PA does neither).

local M = {}

local function core() return require "adapter.core" end

local function compile(re)
    local rx, err = core().regex(re)
    if not rx then
        return nil, string.format("unable to compile series filter %q: %s", re, tostring(err))
    end
    return rx
end

function M.compile_filter(is, isnot)
    is, isnot = is or "", isnot or ""
    if is ~= "" and isnot ~= "" then
        return nil, string.format("cannot have both an `is` (%q) and `isNot` (%q) "
            .. "expression in a single filter", is, isnot)
    end
    if is == "" and isnot == "" then
        return nil, "must have either an `is` or `isNot` expression in a filter"
    end
    local rx, err = compile(is ~= "" and is or isnot)
    if not rx then return nil, err end
    return { rx = rx, is = is ~= "", text = is ~= "" and is or isnot }
end

-- field tells which key the error belongs to: "matches" or "as".
function M.compile_name(matches, as)
    matches, as = matches or "", as or ""
    local namer = { matches = matches }
    if matches ~= "" then
        local rx, err = compile(matches)
        if not rx then return nil, err, "matches" end
        namer.filter = { rx = rx, is = true, text = matches }
        namer.rx = rx
    else
        namer.rx = assert(core().regex(".*"))
    end
    if as == "" then
        local n = namer.rx:ncaptures()
        if n == 0 then as = "$0"
        elseif n == 1 then as = "$1"
        else return nil, "needs as", "as" end
    end
    namer.as = as
    namer.names = namer.rx:names() or {}
    return namer
end

-- Go regexp extract(): name = longest run of letters, digits and "_"
-- (bytes >= 0x80 count as letters: they only occur inside UTF-8 letters in
-- any sane config).  Returns name, num (-1 if not a number), rest or nil.
local function extract(s)
    if s == "" then return nil end
    local brace = false
    if s:sub(1, 1) == "{" then brace = true; s = s:sub(2) end
    local name = s:match("^[%w_\128-\255]+")
    if not name then return nil end
    local rest = s:sub(#name + 1)
    if brace then
        if rest:sub(1, 1) ~= "}" then return nil end
        rest = rest:sub(2)
    end
    local num = -1
    if name:match("^%d+$") and #name < 9 then num = tonumber(name) end
    if name:sub(1, 1) == "0" and #name > 1 then num = -1 end
    return name, num, rest
end

-- caps: caps[0] whole match, caps[i] group i or false; names: name -> index.
function M.expand(tpl, caps, names)
    local out = {}
    while true do
        local d = tpl:find("$", 1, true)
        if not d then break end
        out[#out + 1] = tpl:sub(1, d - 1)
        tpl = tpl:sub(d + 1)
        if tpl:sub(1, 1) == "$" then
            out[#out + 1] = "$"
            tpl = tpl:sub(2)
        else
            local name, num, rest = extract(tpl)
            if not name then
                out[#out + 1] = "$"
            else
                tpl = rest
                local v
                if num >= 0 then v = caps[num]
                elseif names[name] then v = caps[names[name]] end
                if v then out[#out + 1] = v end
            end
        end
    end
    out[#out + 1] = tpl
    return table.concat(out)
end

-- Default match_series step: every filter (seriesFilters, then the
-- implicit `is: <matches>`) must pass on the series name.
function M.match_series(rule, series)
    for _, f in ipairs(rule.c.filters) do
        if f.rx:test(series.name) ~= f.is then return false end
    end
    return true
end

-- Default metric_name step.
function M.metric_name(rule, series_name)
    local namer = rule.c.namer
    local caps = namer.rx:match(series_name)
    if not caps then
        return nil, string.format("series name %q did not match expected pattern %q",
            series_name, namer.matches)
    end
    return M.expand(namer.as, caps, namer.names)
end

return M
