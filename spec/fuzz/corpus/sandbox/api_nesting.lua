local hearsay = require "hearsay"
local depth = 0
hearsay.every(1, function() while true do end end)
return {
  private_data = function()
    depth = depth + 1
    while true do hearsay.update_private_data() end
  end,
  validate_metadata = function(k)
    while true do hearsay.publish("app/x" .. math.random(10), "v") end
  end,
}
