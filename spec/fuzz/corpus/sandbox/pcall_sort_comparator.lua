return { on_ping = function()
  local t = {3, 2, 1, 5, 4}
  while true do pcall(table.sort, t, function() while true do end end) end
end, ack_payload = function()
  table.sort({3,2,1}, function() while true do pcall(table.sort, {2,1}, function() while true do end end) end end)
end }
