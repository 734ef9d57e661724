-- hearsay.busted: a busted helper that names the seed of every simulation
-- a failing test made, so that the failure can be run again exactly:
--
--   busted --helper=hearsay.busted            (or, in .busted:
--                                               helper = "hearsay.busted")
--
-- prints, under a failing test:
--
--   hearsay.sim: this test ran seed 42 (simlib.new{ seed = 42, ... })
local busted = require "busted"
local simlib = require "hearsay.sim"

busted.subscribe({ "test", "start" }, function()
  simlib.made = {}
  return nil, true
end)

busted.subscribe({ "test", "end" }, function(element, _, status)
  local made = simlib.made or {}
  if (status == "failure" or status == "error") and #made > 0 then
    local seeds = {}
    for i, s in ipairs(made) do seeds[i] = tostring(s) end
    io.stderr:write(string.format(
      "\nhearsay.sim: \"%s\" ran seed %s: new{ seed = %s, ... } replays it\n",
      element.name or "?", table.concat(seeds, ", "), seeds[1]))
  end
  return nil, true
end)

return simlib
