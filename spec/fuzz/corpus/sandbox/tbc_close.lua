local looping = setmetatable({}, { __close = function() while true do end end })
return { on_member = function()
  while true do
    local co = coroutine.create(function() local x <close> = looping coroutine.yield() end)
    coroutine.resume(co)
    pcall(coroutine.close, co)
  end
end, private_data = function()
  while true do pcall(function() local x <close> = looping error("x") end) end
end, on_ping = function() do local x <close> = looping end end }
