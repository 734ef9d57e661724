-- cluster-hooks.lua: the hooks scripts/bench-cluster loads into every
-- agent: they log what the benchmark times (a rumor delivered, a metadata
-- write applied), and turn a write of bench/broadcast on the node it was
-- made on into a rumor.
local hearsay = require "hearsay"

return {
  on_message = function(_, payload)
    hearsay.log("info", "bench: message", payload)
  end,

  on_metadata = function(key, value, _, origin)
    if key == "bench/broadcast" and value
       and origin == hearsay.self().name then
      hearsay.log("info", "bench: broadcast", value)
      hearsay.broadcast(value)
    elseif key == "bench/meta" and value then
      hearsay.log("info", "bench: meta", value)
    end
  end,
}
