local function nest(n)
  if n == 0 then while true do end end
  local co = coroutine.create(function() while true do pcall(nest, n - 1) end end)
  while true do pcall(coroutine.resume, co) end
end
return { private_data = function() nest(5) end, on_member = function() nest(1) end }
