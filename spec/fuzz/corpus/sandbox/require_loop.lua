local f = io.open("f2.lua", "w")
f:write("local t = {} while true do t[#t % 10 + 1] = 1 end")
f:close()
return { private_data = function()
  while true do pcall(require, "f2") end
end }
