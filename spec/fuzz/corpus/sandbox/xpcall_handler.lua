return { on_message = function()
  while true do xpcall(error, function() while true do end end) end
end }
