-- service-discovery.lua: every node advertises the services it runs, and
-- every node knows where each service runs and logs when that changes.
--
--   HEARSAY_SERVICES='{"web": 8080, "db": 5432}' bin/hearsay agent --name a \
--     --bind 127.0.0.1:7946 --script examples/service-discovery.lua
--   HEARSAY_SERVICES='{"web": 8081}' bin/hearsay agent --name b \
--     --bind 127.0.0.1:7947 --control 127.0.0.1:7375 --join 127.0.0.1:7946 \
--     --script examples/service-discovery.lua
--
-- Each node's log then shows lines such as
--
--   script: service web gained 127.0.0.1:8081; endpoints: 127.0.0.1:8080 127.0.0.1:8081
--   script: service db lost 127.0.0.1:5432; no endpoints left
--
-- The services travel in the node's private data as
-- {"services":{"db":5432,"web":8080}} (see `hearsay members --detailed`),
-- so they reach every member with its alive message, and vanish from the
-- lists as soon as the member is suspected, dead or gone. Only alive
-- members count as endpoints. Other scripts get the lists from the module
-- next to this file: require("discovery").services("web").
local hearsay = require "hearsay"
local discovery = require "discovery"

-- What this node offers, when $HEARSAY_SERVICES is not set: none, so a
-- node that only looks services up needs no configuration.
local DEFAULT_SERVICES = "{}"

-- Read once, when the script loads; a bad value is logged and this node
-- advertises nothing rather than failing to start.
local mine = "" -- the private data this node advertises
do
  local text = os.getenv("HEARSAY_SERVICES") or DEFAULT_SERVICES
  local services, err = discovery.parse(text)
  local data
  if services then data, err = discovery.encode(services) end
  if data then
    mine = data
  else
    hearsay.log("error", "service discovery: HEARSAY_SERVICES refused:",
                err, "(advertising no services)")
  end
end

-- What each alive member offers (offers.b = {web = "10.0.0.2:8081"}),
-- and per service the endpoint of each member (catalog.web.b = the same).
-- An event concerns one member, so only its share is looked at again.
local offers, catalog = {}, {}

local function endpoints(service)
  local list = {}
  for _, e in pairs(catalog[service] or {}) do list[#list + 1] = e end
  table.sort(list)
  return list
end

local function changed(member)
  local old = offers[member.name] or {}
  local new = member.state == "alive" and discovery.offers(member) or {}
  offers[member.name] = next(new) and new or nil
  local services = {} -- those whose endpoint on this member changed
  for s, e in pairs(old) do
    if new[s] ~= e then services[#services + 1] = s end
  end
  for s in pairs(new) do
    if old[s] == nil then services[#services + 1] = s end
  end
  table.sort(services)
  for _, s in ipairs(services) do
    catalog[s] = catalog[s] or {}
    catalog[s][member.name] = new[s]
    if next(catalog[s]) == nil then catalog[s] = nil end
    local what = {}
    if new[s] then what[#what + 1] = "gained " .. new[s] end
    if old[s] then what[#what + 1] = "lost " .. old[s] end
    local now = endpoints(s)
    hearsay.log("info", "service " .. s, table.concat(what, ", ") .. ";",
                #now > 0 and "endpoints: " .. table.concat(now, " ")
                  or "no endpoints left")
  end
end

return {
  private_data = function() return mine end,

  -- A join or an update brings a member's services (or new ones); a
  -- suspicion, a death or a leave takes them away; a refuted suspicion
  -- (alive) brings them back.
  on_member = function(_event, member)
    changed(member)
  end,
}
