-- leader.lua: a leader for the cluster, chosen by a rule every node
-- applies to its own member list, so no votes are exchanged.
--
--   bin/hearsay agent --name a --bind 127.0.0.1:7946 --script examples/leader.lua
--   bin/hearsay agent --name b --bind 127.0.0.1:7947 --control 127.0.0.1:7375 \
--     --join 127.0.0.1:7946 --script examples/leader.lua
--
-- The rule: the leader is the member with the lowest name (in byte order)
-- among the members alive or suspect. A suspect still counts, or every
-- false suspicion would move the leadership away and back; a member leaves
-- the race when it is declared dead or leaves, and the next name takes
-- over. A node that becomes the leader says so to everyone with a user
-- message ("leader <name>"), and every node logs whom it takes to lead:
--
--   script: leader is a (was none)
--   script: leader announced by a
--
-- A caveat, as with any rule run on a gossiped member list: gossip gives
-- eventual agreement, not consensus. While news travels, two nodes can
-- see different lists and name different leaders, and a network partition
-- gives each side its own leader (split brain) until it heals. Use this
-- for work that tolerates two leaders for a while (a periodic report, a
-- cache warm-up); for locks or anything that must never run twice, use a
-- consensus system (Raft, Paxos) and fencing tokens.
local hearsay = require "hearsay"

-- Membership changes come in bursts (a join brings the whole cluster):
-- decide once the list has been quiet for SETTLE_MS, but never later than
-- MAX_WAIT_MS after the first change of a burst.
local SETTLE_MS = 2000
local MAX_WAIT_MS = 10000

local ANNOUNCE = "leader " -- the announcement: "leader <name>"

local leader -- whom this node takes to lead, or nil before the first decision
local timer, first_change

local function elect()
  local best
  for _, m in ipairs(hearsay.members({ "alive", "suspect" })) do
    if best == nil or m.name < best then best = m.name end
  end
  return best
end

local function decide()
  timer, first_change = nil, nil
  local now = elect()
  if now == leader then return end
  hearsay.log("info", "leader is", now, "(was " .. (leader or "none") .. ")")
  leader = now
  local me = hearsay.self()
  if me and now == me.name then
    -- a rumor: every other node gets it once, best effort
    local ok, err = hearsay.broadcast(ANNOUNCE .. now)
    if not ok then hearsay.log("warn", "leader: announcement not sent:", err) end
  end
end

local function changed()
  local now = hearsay.now()
  first_change = first_change or now
  if timer then timer:cancel() end
  local wait = math.min(SETTLE_MS, first_change + MAX_WAIT_MS - now)
  timer = hearsay.after(math.max(wait, 0), decide)
end

return {
  on_member = function(event, _member)
    -- private data changes (update) do not change the candidates
    if event ~= "update" then changed() end
  end,

  on_message = function(_from, payload)
    local who = payload:match("^" .. ANNOUNCE .. "(.+)$")
    if not who then return end -- some other script's message
    if who == leader then
      hearsay.log("info", "leader announced by", who)
    else
      -- one of the two member lists has not caught up yet: gossip will
      -- settle it, and this node decides by its own list meanwhile
      hearsay.log("info", "leader announced by", who, "while this node "
                  .. "takes " .. (leader or "none") .. " to lead")
    end
  end,
}
