-- first-hook.lua: a first hook script. Logs every membership event,
-- advertises a role as this node's private data, and greets new members.
--
--   bin/hearsay agent --name a --bind 127.0.0.1:7946 --script examples/first-hook.lua
local hearsay = require "hearsay"

return {
  -- every join, update, suspect, alive, dead or left
  on_member = function(event, member)
    hearsay.log("info", "event", event, member.name, member.addr, member.state)
    -- the first join a node sees is its own
    if event == "join" and member.name ~= hearsay.self().name then
      hearsay.send(member.name, "welcome, " .. member.name)
    end
  end,

  -- this node's private data (memberlist's node meta, at most 512 bytes)
  private_data = function()
    return "role=web"
  end,

  -- user messages: from is the sender's name
  on_message = function(from, payload)
    hearsay.log("info", "message from", from, payload)
  end,
}
