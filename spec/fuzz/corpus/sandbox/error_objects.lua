local mt = {}
mt.__tostring = function() while true do end end
mt.__index = function() while true do end end
return { on_member = function() error(setmetatable({}, mt)) end,
  private_data = function()
    while true do
      local ok, e = pcall(error, setmetatable({}, mt))
      pcall(tostring, e)
      local _ = e.x
    end
  end,
  on_message = function()
    error(setmetatable({}, { __tostring = function() error(setmetatable({}, mt)) end }))
  end }
