local hearsay = require "hearsay"
hearsay.after(50, function()
  while true do pcall(coroutine.wrap(function() while true do end end)) end
end)
return { on_member = function() local f = coroutine.wrap(function() while true do coroutine.yield() end end) while true do f() end end }
