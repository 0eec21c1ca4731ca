-- spec/unit/yamltree.lua: YAML text -> the engine's node tree, for specs,
-- through the real C parser (adapter.core.yaml_parse, src/yaml.c), so the
-- config specs see the same trees and line numbers as the binary.
local core = require "adapter.core"

local M = {}

-- Returns the tree (nil for an empty document); raises on a syntax error.
function M.parse(text)
    local tree, err = core.yaml_parse(text, "spec.yaml")
    if tree == nil and err then error(err, 2) end
    return tree
end

return M
