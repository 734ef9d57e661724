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

-- The catalog at the last event, to tell what changed.
local known = {}

local function refresh()
  local now = discovery.catalog(hearsay.members("alive"))
  for _, c in ipairs(discovery.diff(known, now)) do
    local what = {}
    if #c.gained > 0 then
      what[#what + 1] = "gained " .. table.concat(c.gained, " ")
    end
    if #c.lost > 0 then
      what[#what + 1] = "lost " .. table.concat(c.lost, " ")
    end
    local left = #c.now > 0 and "endpoints: " .. table.concat(c.now, " ")
      or "no endpoints left"
    hearsay.log("info", "service " .. c.service,
                table.concat(what, ", ") .. ";", left)
  end
  known = now
end

return {
  private_data = function() return mine end,

  -- Any event may change the catalog: a join or an update brings
  -- services, a suspicion, a death or a leave takes them away, and a
  -- refuted suspicion brings them back.
  on_member = function(_event, _member)
    refresh()
  end,
}
