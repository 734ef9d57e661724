local f = io.open("f1.lua", "wb")
f:write(string.dump(function() return { } end))
f:close()
local ok, err = pcall(require, "f1")
print("binary", ok, err)
return {}
