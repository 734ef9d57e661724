-- discovery.lua: service discovery over members' private data, as a
-- module for hook scripts (examples/service-discovery.lua) and specs.
--
-- A node advertises its services as its private data, a JSON document of
-- at most 512 bytes:
--
--   {"services":{"db":5432,"web":8080}}
--
-- and every node finds the endpoints of a service among the members it
-- sees alive. From any hook script next to this file (the agent puts a
-- script's own directory on the module path):
--
--   local discovery = require "discovery"
--   discovery.services("web")   --> { "10.0.0.5:8080", "10.0.0.7:8080" }
--
-- In a spec, name the node whose view to use: discovery.services("web",
-- sim:node("n1")), or a node made by hearsay.node{...}.
local hearsay = require "hearsay"
local cjson = require "cjson"

local M = {}

-- memberlist's limit on a node's private data (its NodeMeta).
M.MAX_BYTES = 512

local function valid_name(name)
  return type(name) == "string" and #name <= 63
    and name:match("^[%w][%w._-]*$") ~= nil
end

local function valid_port(port)
  local p = type(port) == "number" and math.tointeger(port)
  return p and p >= 1 and p <= 65535, p
end

-- Check a table of services ({web = 8080}); returns a sorted list of
-- {name, port}, or nil and the reason.
local function check(services)
  if type(services) ~= "table" then
    return nil, "services must be a table of name = port"
  end
  local list = {}
  for name, port in pairs(services) do
    if not valid_name(name) then
      return nil, "bad service name " .. tostring(name)
        .. " (letters, digits, '.', '_', '-'; at most 63)"
    end
    local ok, p = valid_port(port)
    if not ok then
      return nil, "bad port for " .. name .. ": "
        .. tostring(p or port)
    end
    list[#list + 1] = { name, p }
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

-- The private data advertising `services`, keys sorted so that the same
-- services always give the same bytes (new bytes would be gossiped as an
-- update). Returns the string, or nil and the reason.
function M.encode(services)
  local list, err = check(services)
  if not list then return nil, err end
  local parts = {}
  for i, s in ipairs(list) do
    parts[i] = cjson.encode(s[1]) .. ":" .. s[2]
  end
  local text = '{"services":{' .. table.concat(parts, ",") .. "}}"
  if #text > M.MAX_BYTES then
    return nil, ("%d bytes of private data, over the limit of %d")
      :format(#text, M.MAX_BYTES)
  end
  return text
end

-- Parse the JSON a user configures ('{"web": 8080}', or the advertised
-- form '{"services": {...}}'). Returns the services, or nil and the
-- reason.
function M.parse(text)
  local ok, doc = pcall(cjson.decode, text)
  if not ok then return nil, "not JSON: " .. tostring(doc) end
  if type(doc) == "table" and type(doc.services) == "table" then
    doc = doc.services
  end
  local list, err = check(doc)
  if not list then return nil, err end
  local services = {}
  for _, s in ipairs(list) do services[s[1]] = s[2] end
  return services
end

-- The services a member advertises ({web = 8080}), or nil when its
-- private data is something else (another script's, Serf's tags). Never
-- raises: private data comes from the network.
function M.decode(data)
  if type(data) ~= "string" or data:sub(1, 1) ~= "{"
     or #data > M.MAX_BYTES then
    return nil
  end
  local ok, doc = pcall(cjson.decode, data)
  if not ok or type(doc) ~= "table" or type(doc.services) ~= "table" then
    return nil
  end
  local services = {}
  for name, port in pairs(doc.services) do
    local good, p = valid_port(port)
    if valid_name(name) and good then services[name] = p end
  end
  return services
end

local function endpoint(addr, port)
  if addr:find(":", 1, true) then -- IPv6
    return "[" .. addr .. "]:" .. port
  end
  return addr .. ":" .. port
end

-- The endpoint of each service `member` advertises: {web =
-- "10.0.0.5:8080"}, empty for private data of another kind. It does not
-- look at the member's state.
function M.offers(member)
  local r = {}
  for name, port in pairs(M.decode(member.private_data) or {}) do
    r[name] = endpoint(member.addr, port)
  end
  return r
end

-- Every service of `members` with its endpoints, sorted:
-- { web = {"10.0.0.5:8080", ...}, db = {...} }.
function M.catalog(members)
  local cat = {}
  for _, m in ipairs(members) do
    for name, e in pairs(M.offers(m)) do
      cat[name] = cat[name] or {}
      table.insert(cat[name], e)
    end
  end
  for _, list in pairs(cat) do table.sort(list) end
  return cat
end

-- The endpoints ("addr:port", sorted) of service `name` on the members
-- `node` sees alive: this node's view inside a hook, or the view of the
-- node given (sim:node("n1"), a hearsay.node).
function M.services(name, node)
  local members
  if node then
    members = node:members("alive")
  else
    members = hearsay.members("alive")
  end
  return M.catalog(members)[name] or {}
end

return M
