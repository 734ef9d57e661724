-- A script that defines every hook and calls the API from them.
local hearsay = require "hearsay"
local cjson = require "cjson"
local seen = {}
local t = hearsay.every(200, function()
  hearsay.broadcast("tick")
  hearsay.publish("app/tick", tostring(hearsay.now()))
  for _, m in ipairs(hearsay.members("alive")) do
    hearsay.send(m.name, "hi", { reliable = false })
  end
end)
hearsay.after(1000, function() t:cancel() end)
local f = io.open("f1", "w")
f:write("one\ntwo\n")
f:close()
for line in io.lines("f1") do seen[#seen + 1] = line end
return {
  on_member = function(event, m)
    seen[#seen + 1] = event .. m.name .. tostring(m)
    local copy = m:totable()
    return cjson.encode(copy)
  end,
  private_data = function() return "role=fuzz" end,
  validate_metadata = function(key, value) return key ~= "app/no", "no" end,
  on_metadata = function(key, value, old, origin)
    seen[#seen + 1] = table.concat({ key, value or "-", old or "-", origin }, " ")
  end,
  allow_member = function(m) return m.name ~= "evil" end,
  allow_merge = function(ms) return #ms < 100 end,
  on_conflict = function(a, b) print(a.name, b.addr) end,
  on_message = function(from, payload) seen[#seen + 1] = payload:upper() end,
  ack_payload = function() return "ack" end,
  on_ping = function(m, rtt, payload) seen[#seen + 1] = rtt end,
  local_state = function(join) return cjson.encode({ join = join, n = #seen }) end,
  merge_remote_state = function(state, join)
    local ok, v = pcall(cjson.decode, state)
    seen[#seen + 1] = ok and v.n or state
    hearsay.log("info", "merged", join, hearsay.stats().members.alive)
  end,
}
