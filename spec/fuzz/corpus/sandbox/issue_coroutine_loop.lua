local hearsay = require "hearsay"
hearsay.after(50, function()
  local co = coroutine.create(function() while true do end end)
  while true do coroutine.resume(co) end
end)
return {}
