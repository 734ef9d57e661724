print("fifo", io.open("fifo"))
print("fifo lines", pcall(io.lines, "fifo"))
print("read", io.read())
for l in io.lines() do print("line", l) end
return {}
