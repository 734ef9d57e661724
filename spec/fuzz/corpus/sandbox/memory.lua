return { private_data = function()
  local t = {}
  while true do t[#t + 1] = ("x"):rep(1 << 16) end
end, on_ping = function() local s = ("x"):rep(1 << 40) end }
