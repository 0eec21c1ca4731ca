-- spec/unit/yamltree.lua: YAML text -> the engine's node tree, for specs.
-- Uses adapter.core.yaml_parse (the real C parser) when the built module
-- has it; otherwise builds the same tree shape (architecture.md) from
-- lyaml's libyaml event stream, so config specs keep real line numbers.
local M = {}

local STYLE = { PLAIN = "plain", SINGLE_QUOTED = "single", DOUBLE_QUOTED = "double",
    LITERAL = "literal", FOLDED = "folded" }
local NULLS = { [""] = true, ["~"] = true, null = true, Null = true, NULL = true }

local function from_events(text)
    local yaml = require "yaml"
    local anchors, stack, root = {}, {}, nil
    local function add(node)
        local top = stack[#stack]
        if not top then root = node; return end
        if top.tag == "seq" then
            top.items[#top.items + 1] = node
        elseif top._key then
            top.pairs[#top.pairs + 1] = { key = top._key, value = node }
            top._key = nil
        else
            top._key = node
        end
    end
    for ev in yaml.parser(text) do
        local line = ev.start_mark and ev.start_mark.line + 1
        local col = ev.start_mark and ev.start_mark.column + 1
        local t = ev.type
        if t == "SCALAR" then
            local style = STYLE[ev.style] or "plain"
            local node = { tag = "scalar", line = line, col = col, value = ev.value,
                style = style, null = style == "plain" and NULLS[ev.value] or false }
            if ev.anchor then anchors[ev.anchor] = node end
            add(node)
        elseif t == "MAPPING_START" or t == "SEQUENCE_START" then
            local node = t == "MAPPING_START" and { tag = "map", line = line, col = col, pairs = {} }
                or { tag = "seq", line = line, col = col, items = {} }
            if ev.anchor then anchors[ev.anchor] = node end
            add(node)
            stack[#stack + 1] = node
        elseif t == "MAPPING_END" or t == "SEQUENCE_END" then
            stack[#stack] = nil
        elseif t == "ALIAS" then
            add(assert(anchors[ev.anchor], "unknown anchor"))
        end
    end
    return root
end

function M.parse(text)
    local ok, core = pcall(require, "adapter.core")
    if ok and type(core.yaml_parse) == "function" then
        return assert(core.yaml_parse(text, "spec.yaml"))
    end
    return from_events(text)
end

return M
