return { private_data = function()
  local s = ("x"):rep(1 << 20)
  local t = s .. ""
  while true do local _ = s == t end
end, on_ping = function()
  local t = {} for i = 1, 20000 do t[i] = -i end
  while true do table.sort(t) end
end }
