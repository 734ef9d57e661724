local looping = setmetatable({}, { __close = function() while true do end end })
local saved
return {
  private_data = function()
    -- the coroutine dies of the budget stop in a comparator, with a
    -- to-be-closed variable pending: wrap would close it with hooks off
    local f = coroutine.wrap(function()
      local x <close> = looping
      table.sort({ 3, 2, 1 }, function() while true do end end)
    end)
    f()
  end,
  on_ping = function()
    if saved then
      print("close", coroutine.close(saved))
      return
    end
    saved = coroutine.create(function()
      local x <close> = looping
      table.sort({ 3, 2, 1 }, function() while true do end end)
    end)
    print("resume", coroutine.resume(saved))
  end,
}
