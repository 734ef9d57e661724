local hearsay = require "hearsay"
local saved, calls = nil, 0
hearsay.every(100, function()
  calls = calls + 1
  print("call", calls, saved)
  if saved then
    print("resume saved", calls, coroutine.status(saved), coroutine.resume(saved))
  else
    saved = coroutine.running()
    while true do end
  end
end)
return {}
