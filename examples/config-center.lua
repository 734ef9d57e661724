-- config-center.lua: a config center on hearsay's cluster metadata.
--
-- Publish a document once, on any node, and every node has it:
--
--   bin/hearsay agent --name a --bind 127.0.0.1:7946 --script examples/config-center.lua
--   bin/hearsay kv put config/web '{"name": "web", "version": 3, "replicas": 2}'
--   bin/hearsay kv get config/web              (on any node)
--
-- Keys under config/ must hold a JSON object that fits the schema below;
-- anything else is refused, by the CLI on the node it is written to and by
-- every node that runs this script when it arrives by gossip. Every
-- change applied is logged.
local hearsay = require "hearsay"
local cjson = require "cjson"

local PREFIX = "config/"

-- field = {type, required}
local SCHEMA = {
  name = { "string", true },
  version = { "number", true },
  replicas = { "number", false },
  enabled = { "boolean", false },
  owner = { "string", false },
}

local function check(doc)
  if type(doc) ~= "table" then
    return false, "a document must be a JSON object"
  end
  for field, rule in pairs(SCHEMA) do
    local v = doc[field]
    if v == nil then
      if rule[2] then return false, "missing field " .. field end
    elseif type(v) ~= rule[1] then
      return false, field .. " must be a " .. rule[1]
    end
  end
  for field in pairs(doc) do
    if SCHEMA[field] == nil then
      return false, "unknown field " .. tostring(field)
    end
  end
  if doc.version < 1 or doc.version % 1 ~= 0 then
    return false, "version must be a positive integer"
  end
  if doc.replicas and (doc.replicas < 1 or doc.replicas > 100) then
    return false, "replicas must be between 1 and 100"
  end
  return true
end

return {
  validate_metadata = function(key, value)
    if key:sub(1, #PREFIX) ~= PREFIX or value == nil then
      return true -- other keys, and deletes, are not ours to judge
    end
    local ok, doc = pcall(cjson.decode, value)
    if not ok then
      return false, "not JSON: " .. tostring(doc)
    end
    return check(doc)
  end,

  on_metadata = function(key, value, old, origin)
    if key:sub(1, #PREFIX) ~= PREFIX then return end
    local what = value == nil and "deleted" or (old == nil and "created"
      or "updated")
    hearsay.log("info", "config", key, what, "by", origin)
  end,
}
