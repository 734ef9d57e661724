local ok, err = pcall(setmetatable, {}, { __gc = function() while true do end end })
print("gc", ok, err)
local mt = getmetatable(io.stdout)
print("filemt", mt)
local hearsay = require "hearsay"
local t = hearsay.after(1, function() end)
print("timermt", getmetatable(t), getmetatable(hearsay.self()))
return { private_data = function()
  local m = {}
  setmetatable({}, m)
  m.__gc = function() while true do end end
  collectgarbage()
  return "x"
end }
