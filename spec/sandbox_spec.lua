-- sandbox_spec.lua: the script sandbox under attack. Every way a script
-- could run past its budget (coroutines, pcall, message handlers, error
-- objects, to-be-closed variables, finalizers), load bytecode or block
-- the loop, in simulated nodes (the same budget and sandbox as an agent's)
-- and in real agents. #net only for the agents.
local simlib = require "hearsay.sim"
local agent = require "agent"
local cjson = require "cjson"

local BUDGET = 100000
-- Work each escape tries to do: far past the budget, but finite, so that
-- where the budget does not hold the call ends and says so.
local WORK = 50 * BUDGET

local files = {}

local function script(src)
  local path = os.tmpname() .. ".lua"
  agent.write_file(path, src)
  files[#files + 1] = path
  return path
end

local function cleanup()
  for _, f in ipairs(files) do os.remove(f) end
  files = {}
end

-- What the nodes logged matching pattern.
local function logged(sim, pattern)
  local r = {}
  for _, line in ipairs(sim:trace()) do
    if line:find(pattern) then r[#r + 1] = line end
  end
  return r
end

-- Two simulated nodes running the script `src` (WORK is a global of it);
-- each runs its hooks under a budget of BUDGET instructions.
local function cluster(src)
  local sim = simlib.new{ seed = 7, trace = true, script_budget = BUDGET }
  sim:add(2, { scripts = { script("local WORK = " .. WORK .. "\n" .. src) } })
  return sim
end

-- Run the simulation until the nodes see each other, then `ms` more.
local function settle(sim, ms)
  assert.is_true(sim:run_until(function() return sim:converged() end, 10000))
  sim:run(ms)
end

-- The escape was stopped on both nodes, every time it was tried, the
-- call never got to its end, and the nodes went on.
local function held(sim, tries)
  settle(sim, 5000)
  assert.are.same({}, logged(sim, "ESCAPED"))
  for _, n in ipairs{ "n1", "n2" } do
    local hooks = sim:stats(n).hooks
    assert.are.equal(tries or 1, hooks.budget_stops, n .. " " .. cjson.encode(hooks))
  end
  assert.is_true(sim:converged())
  assert.are.equal(0, sim:stats().false_suspicions)
end

describe("the script budget", function()
  after_each(cleanup)

  it("holds a loop that resumes a coroutine of its own (the budget is the "
     .. "call's, not the coroutine's)", function()
    held(cluster [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        local co = coroutine.create(function() for _ = 1, WORK do end end)
        while coroutine.status(co) ~= "dead" do coroutine.resume(co) end
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  it("holds coroutine.wrap, nested coroutines and pcall around resume",
     function()
    held(cluster [[
      local hearsay = require "hearsay"
      local function nest(depth)
        if depth == 0 then
          for i = 1, WORK do if i % 1000 == 0 then coroutine.yield() end end
          return
        end
        local f = coroutine.wrap(function() nest(depth - 1) end)
        while pcall(f) do coroutine.yield() end
      end
      hearsay.after(100, function()
        local co = coroutine.create(nest)
        while select(2, pcall(coroutine.resume, co, 3)) do end
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  it("holds a loop of pcall(table.sort) whose comparator runs on, and "
     .. "string.gsub callbacks", function()
    held(cluster [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        for _ = 1, WORK / 1000 do
          pcall(table.sort, { 3, 1, 2 }, function(a, b)
            for _ = 1, 1000 do end
            return a < b
          end)
          pcall(string.gsub, "ab", ".", function() for _ = 1, 1000 do end end)
        end
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  -- Lua calls a message handler where the error is raised; raised by the
  -- budget's hook, it finds hooks off there.
  it("holds an xpcall whose message handler runs on, after a stop where "
     .. "the call could not yield", function()
    held(cluster [[
      local hearsay = require "hearsay"
      local function handler(e)
        for _ = 1, WORK do end
        hearsay.log("warn", "ESCAPED (handler)")
        return e
      end
      hearsay.after(100, function()
        for _ = 1, 10 do
          xpcall(table.sort, handler, { 3, 1, 2 }, function()
            for _ = 1, WORK do end
          end)
        end
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  it("holds error objects whose metamethods run on, and errors thrown "
     .. "while handling errors", function()
    held(cluster [[
      local hearsay = require "hearsay"
      local mt = {}
      local function slow(what)
        return function()
          for _ = 1, WORK do end
          hearsay.log("warn", "ESCAPED (" .. what .. ")")
          return "e"
        end
      end
      mt.__tostring, mt.__index, mt.__concat =
        slow("tostring"), slow("index"), slow("concat")
      local obj = setmetatable({}, mt)
      local depth = 0
      local function handler()
        depth = depth + 1
        local _ = tostring(obj) .. obj.field
        if depth % 2 == 1 then error(obj) end -- and again, from here
        return obj
      end
      hearsay.after(100, function()
        for _ = 1, 10 do
          xpcall(table.sort, handler, { 3, 1, 2 }, function()
            error(obj)
          end)
          xpcall(table.sort, handler, { 3, 1, 2 }, function()
            for _ = 1, WORK do end
          end)
        end
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  it("holds to-be-closed variables whose __close runs on, in "
     .. "coroutine.close and coroutine.wrap, after the stop", function()
    held(cluster [[
      local hearsay = require "hearsay"
      local slow = setmetatable({}, { __close = function()
        for _ = 1, WORK do end
        hearsay.log("warn", "ESCAPED (closed)")
      end })
      hearsay.after(100, function()
        -- The stop comes in a comparator, where the coroutine cannot
        -- yield: it dies of the error with its variable still open.
        local co = coroutine.create(function()
          local _ <close> = slow
          table.sort({ 3, 1, 2 }, function() for _ = 1, WORK do end end)
        end)
        coroutine.resume(co)
        coroutine.close(co)
        local f = coroutine.wrap(function()
          local _ <close> = slow
          table.sort({ 3, 1, 2 }, function() for _ = 1, WORK do end end)
        end)
        pcall(f)
        hearsay.log("warn", "ESCAPED")
      end)
      return {}
    ]])
  end)

  it("refuses finalizers and hides the metatables scripts could add one "
     .. "to", function()
    local sim = cluster [[
      local hearsay = require "hearsay"
      local function try(f, ...)
        local ok, err = pcall(f, ...)
        return ok and "ok" or err
      end
      local loop = function() for _ = 1, WORK do end end
      hearsay.log("info", "gc:", try(setmetatable, {}, { __gc = loop }))
      hearsay.log("info", "gc false:", try(setmetatable, {}, { __gc = false }))
      local t = hearsay.after(1, function() end)
      hearsay.log("info", "timer mt:", tostring(getmetatable(t)))
      hearsay.after(100, function()
        hearsay.log("info", "member mt:",
                    tostring(getmetatable(hearsay.self())))
        -- a __gc added later marks nothing
        local mt = {}
        setmetatable({}, mt)
        mt.__gc = function() loop() hearsay.log("warn", "ESCAPED (gc)") end
        collectgarbage()
        collectgarbage()
      end)
      return {}
    ]]
    settle(sim, 1000)
    local function said(what)
      local line = logged(sim, "n1 %[INFO%] script: " .. what)[1]
      return line and line:match(what .. "%s(.*)$")
    end
    assert.are.equal("setmetatable: a metatable with __gc is not allowed "
      .. "(finalizers would run outside the instruction budget)", said("gc:"))
    assert.are.equal(said("gc:"), said("gc false:"))
    assert.are.equal("false", said("timer mt:"))
    assert.are.equal("false", said("member mt:"))
    assert.are.same({}, logged(sim, "ESCAPED"))
    assert.are.equal(0, sim:stats("n1").hooks.errors)
  end)

  it("stops a hook that keeps calling a hook of its own: the inner call "
     .. "pays from the outer call's budget", function()
    -- stopped twice: the inner call that spent the budget, and the outer
    held(cluster [[
      local hearsay = require "hearsay"
      local calls = 0
      hearsay.after(100, function()
        for _ = 1, WORK / 1000 do hearsay.update_private_data() end
        hearsay.log("warn", "ESCAPED")
      end)
      return { private_data = function()
        calls = calls + 1
        for _ = 1, 1000 do end
        return "p" .. calls
      end }
    ]], 2)
  end)
end)

-- One VM instruction can call a library function that loops in C for as
-- long as its arguments say, where the count hook never fires. Each
-- escape below would take Lua's own function about half a second (far
-- past the budget, but finite, so that where the budget does not hold
-- the call ends and says so); each runs from a timer of its own.
describe("the script budget over loops in C", function()
  after_each(cleanup)

  -- Every escape in `calls` is stopped by the budget on both nodes.
  local function all_held(calls)
    local src = { "local hearsay = require 'hearsay'",
                  "local nop = rawequal" }
    for i, call in ipairs(calls) do
      src[#src + 1] = ("hearsay.after(%d, function() pcall(function() %s "
        .. "end) hearsay.log('warn', 'ESCAPED %d') end)"):format(
        100 * i, call, i)
    end
    src[#src + 1] = "return {}"
    held(cluster(table.concat(src, "\n")), #calls)
  end

  it("charges string.rep for its turns before it allocates, and repeats "
     .. "nothing at once", function()
    all_held{ 'string.rep("x", 3e8)', '("x"):rep(3e8, "")',
              'local _ = ("x"):rep(0) .. string.rep("xy", 1e8, ",")' }
    -- Lua's own loops 2^50 times to repeat an empty string
    local sim = cluster [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        hearsay.log("warn", "empty: [" .. string.rep("", 1 << 50)
          .. ("x"):rep(0) .. (""):rep(1 << 60, "") .. "]")
      end)
      return {}
    ]]
    settle(sim, 1000)
    assert.are.equal(2, #logged(sim, "empty: %[%]$"))
    assert.are.equal(0, sim:stats("n1").hooks.budget_stops)
  end)

  it("charges the table functions for the length they are told, whatever "
     .. "__len, __index and __newindex do", function()
    local t = "setmetatable({}, { __len = function() return %s end, "
      .. "__index = %s, __newindex = nop })"
    local lie = t:format("1e7", "nop")
    all_held{
      "table.insert(" .. lie .. ", 1, 0)",
      "table.remove(" .. lie .. ", 1)",
      "table.move(" .. lie .. ", 1, 1e7, 2)",
      "table.concat(" .. t:format("3e6", "type") .. ")",
      "table.concat({}, '', 1, 3e6)",
      "table.concat(" .. t:format("1", "type")
        .. ", '', math.mininteger, math.maxinteger)",
      "table.unpack(" .. lie .. ", 1, 9e5)",
      "table.sort(" .. t:format("1e6", "rawlen") .. ")" }
  end)

  it("sorts the length it paid for when __len answers differently the "
     .. "next time", function()
    local sim = cluster [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        local asked, read = 0, 0
        local t = setmetatable({}, {
          __len = function() asked = asked + 1
                    return asked == 1 and 2 or 1000000 end,
          __index = function(_, k) read = read + 1 return -k end,
          __newindex = function() end })
        table.sort(t)
        hearsay.log("warn", "sorted: asked=" .. asked .. " read=" .. read)
      end)
      return {}
    ]]
    settle(sim, 1000)
    assert.are.equal(2, #logged(sim, "sorted: asked=1 read=2$"))
    assert.are.equal(0, sim:stats("n1").hooks.budget_stops)
  end)

  it("charges hearsay.keys for the keys it lists", function()
    local sim = cluster [[
      local hearsay = require "hearsay"
      hearsay.after(3000, function()
        if hearsay.self().name ~= "n1" then return end
        local n = 0
        for _ = 1, 20 do n = n + #hearsay.keys("k/") end
        hearsay.log("warn", "ESCAPED " .. n)
      end)
      return {}
    ]]
    local n1 = sim:node(1)
    for i = 1, 20000 do assert(n1:publish(("k/%05d"):format(i), "v")) end
    sim:run(4000)
    assert.are.same({}, logged(sim, "ESCAPED"))
    assert.are.equal(1, sim:stats("n1").hooks.budget_stops)
  end)

  it("stops patterns that backtrack, in find, match, gmatch and gsub",
     function()
    local s, p = '("a"):rep(22)', '("a-"):rep(8) .. "b"'
    all_held{
      ("string.find(%s, %s)"):format(s, p),
      ("%s:match(%s)"):format(s, p),
      ("for _ in %s:gmatch(%s) do end"):format(s, p),
      ("string.gsub(%s, %s, 'x')"):format(s, p),
      -- a long subject (8 MiB in 23 instructions): the scan is charged
      "local s = 'a' for _ = 1, 23 do s = s .. s end s:gsub('a', 'b')" }
  end)

  it("leaves patterns and the table functions as Lua's own within the "
     .. "budget", function()
    local sim = cluster [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        local t = { 3, 1, 2 }
        table.insert(t, 1, 9); table.insert(t, 5)
        table.sort(t)
        local r = table.concat(t, ",") .. ";" .. table.remove(t, 1)
          .. ";" .. select("#", table.unpack(t))
        local a, b = ("key=value"):match("^([%w_]+)=(.*)$")
        local words = {}
        for w in ("the quick  brown"):gmatch("%a+") do words[#words+1] = w end
        local g, n = ("a b c"):gsub("%s", { [" "] = "_" })
        hearsay.log("warn", "lib: " .. r .. " " .. a .. " " .. b .. " "
          .. table.concat(words, "/") .. " " .. g .. n .. " "
          .. tostring(("x.y"):find(".", 1, true)) .. " "
          .. ("ab"):rep(3, "-"))
      end)
      return {}
    ]]
    settle(sim, 1000)
    assert.are.equal(2, #logged(sim, "lib: 1,2,3,5,9;1;4 key value "
      .. "the/quick/brown a_b_c2 2 ab%-ab%-ab$"))
    assert.are.equal(0, sim:stats("n1").hooks.budget_stops)
  end)
end)

describe("the script sandbox", function()
  after_each(cleanup)

  it("refuses a binary chunk a script writes and requires, with the "
     .. "file's name, and goes on", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. dir))
    local mod = dir .. "/dumped.lua"
    files[#files + 1] = mod
    local main = dir .. "/main.lua"
    files[#files + 1] = main
    agent.write_file(main, ([[
      local hearsay = require "hearsay"
      local f = assert(io.open(%q, "wb"))
      f:write(string.dump(function() return { answer = 42 } end))
      f:close()
      local ok, err = pcall(require, "dumped")
      hearsay.log("info", "require:", tostring(ok), err)
      return { private_data = function() return "still here" end }
    ]]):format(mod))
    local sim = simlib.new{ seed = 7, trace = true }
    sim:add(2, { scripts = { main } })
    assert.is_true(sim:run_until(function() return sim:converged() end, 10000))
    local line = logged(sim, "n1 %[INFO%] script: require:")[1]
    assert.is_not_nil(line, table.concat(sim:trace(), "\n"))
    assert.matches("require: false error loading module 'dumped' from file '"
      .. mod:gsub("%p", "%%%0") .. "':\n\t" .. mod:gsub("%p", "%%%0")
      .. ": binary chunks are not allowed %(text only%)", line)
    assert.are.equal("still here", sim:node("n2"):member("n1").private_data)
    cleanup()
    os.remove(dir)
  end)

  it("refuses to open a FIFO (it would block the loop) and goes on",
     function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert.is_true(os.execute("mkfifo " .. fifo))
    files[#files + 1] = fifo
    local sim = cluster(([[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        -- read-write first: Lua's own io.open would not block on that
        local f, err, code = io.open(%q, "r+")
        if f then
          hearsay.log("warn", "ESCAPED: opened the FIFO")
          return
        end
        hearsay.log("info", "r+:", err, code)
        hearsay.log("info", "r:", select(2, io.open(%q)))
        hearsay.log("info", "lines:", select(2, pcall(io.lines, %q)))
      end)
      return {}
    ]]):format(fifo, fifo, fifo))
    settle(sim, 1000)
    assert.are.same({}, logged(sim, "ESCAPED"))
    local msg = fifo .. ": not a regular file (would block)"
    for _, what in ipairs{ "r+:", "r:", "lines:" } do
      local line = logged(sim, "n1 %[INFO%] script: "
                          .. what:gsub("%p", "%%%0"))[1]
      assert.is_not_nil(line, what)
      assert.truthy(line:find(what .. " " .. msg, 1, true), line)
    end
    assert.truthy(logged(sim, "r%+: .* 11$")[1]) -- EWOULDBLOCK
    assert.is_true(sim:converged())
  end)
end)

-- ===== Real agents #net =====

local ip, hs = agent.subnet("127.0.20")

-- An agent started through sh, so that its stdin or stdout can be
-- redirected (`redirs`, e.g. "0<>FIFO": a FIFO opened read-write, on which
-- a read blocks and a write blocks once the pipe is full).
local function hs_sh(name, i, redirs, args)
  local argv = { agent.bin, "agent", "--name", name,
                 "--bind", ip(i) .. ":7946", "--control", ip(i) .. ":7374",
                 "--profile", "local", "--log-level", "info" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local words = {}
  for k, a in ipairs(argv) do words[k] = agent.sh_quote(a) end
  local p = agent.spawn("hearsay-" .. name, { "sh", "-c", "exec "
    .. table.concat(words, " ") .. " " .. redirs })
  p.kind, p.name, p.control = "hearsay", name, ip(i) .. ":7374"
  p:wait_ready("==> hearsay agent running!")
  return p
end

local function fifo()
  local path = os.tmpname()
  os.remove(path)
  assert.is_true(os.execute("mkfifo " .. path))
  files[#files + 1] = path
  return path
end

describe("the script sandbox in agents #net", function()
  after_each(function()
    agent.cleanup()
    cleanup()
  end)

  it("stops the issue's script: a loop resuming a coroutine of its own; "
     .. "the agent answers and its peers see it alive", function()
    -- luacheck: push no max line length
    local s = script [[
local hearsay = require "hearsay"
hearsay.after(5000, function() local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end end)
return {}
]]
    -- luacheck: pop
    local a = hs("issue1", 1, { args = { "--script", s } })
    local b = hs("issue2", 2, { join = { ip(1) .. ":7946" } })
    assert.is_true(agent.wait(function()
      return b:status_of("issue1") == "alive"
    end, 10), a:log())
    assert.is_true(agent.wait(function()
      return a:log():find("script after was stopped: instruction budget "
                          .. "exceeded", 1, true) ~= nil
    end, 15), a:log())
    agent.sleep(3)
    local st = a:stats()
    assert.are.equal(1, st.hooks.budget_stops, cjson.encode(st.hooks))
    assert.are.equal("alive", b:status_of("issue1"))
    assert.are.equal("alive", a:status_of("issue2"))
    assert.not_matches("member suspect: member=issue1", b:log())
  end)

  it("stops a hook looping in C (table.insert on a __len of 2^40, a "
     .. "backtracking pattern): the agent answers and its peers see it "
     .. "alive", function()
    local s = script [[
      local hearsay = require "hearsay"
      hearsay.after(3000, function()
        local t = setmetatable({}, { __len = function() return 1 << 40 end,
          __index = rawequal, __newindex = rawequal })
        table.insert(t, 1, 0)
      end)
      hearsay.after(4000, function()
        (("a"):rep(40)):find(("a-"):rep(12) .. "b")
      end)
      return {}
    ]]
    local a = hs("cloop1", 6, { args = { "--script", s } })
    local b = hs("cloop2", 7, { join = { ip(6) .. ":7946" } })
    assert.is_true(agent.wait(function()
      return b:status_of("cloop1") == "alive"
    end, 10), a:log())
    -- (the log says the first; one line per 10 s after that)
    local st
    assert.is_true(agent.wait(function()
      st = a:stats()
      return st.hooks.budget_stops == 2
    end, 15), a:log())
    assert.truthy(a:log():find("script after was stopped: [^\n]*:5: "
      .. "instruction budget exceeded %(script_budget%)\nstack traceback:"
      .. "\n\t%[C%]: in function 'table.insert'"), a:log())
    assert.is_true(st.loop.longest_step_us < 2000000, cjson.encode(st.loop))
    assert.are.equal(0, st.loop.stalls, cjson.encode(st.loop))
    assert.are.equal("alive", b:status_of("cloop1"))
    assert.not_matches("member suspect: member=cloop1", b:log())
  end)

  it("refuses a binary chunk as a script or a config file at start-up",
     function()
    local bin = os.tmpname() .. ".lua"
    files[#files + 1] = bin
    agent.write_file(bin, string.dump(function() return {} end))
    for _, flag in ipairs{ "--script", "--config" } do
      local out, status = agent.run(table.concat({ agent.bin, "agent",
        "--name", "bin", "--bind", ip(3) .. ":7946", "--control",
        ip(3) .. ":7374", flag, bin }, " "))
      assert.are.equal(2, status, out)
      assert.truthy(out:find("hearsay: " .. bin .. ": binary chunks are not "
                             .. "allowed (text only)", 1, true), out)
    end
  end)

  it("reads no stdin, loads no bytecode through require, hides the file "
     .. "metatable, and measures the loop's steps", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. dir))
    local s = dir .. "/probe.lua"
    agent.write_file(dir .. "/dumped.lua", string.dump(function() end))
    files[#files + 1] = dir .. "/dumped.lua"
    files[#files + 1] = s
    agent.write_file(s, [[
      local hearsay = require "hearsay"
      hearsay.after(100, function()
        hearsay.log("info", "read:", tostring(io.read()),
                    tostring((io.lines()())))
        hearsay.log("info", "require:", select(2, pcall(require, "dumped")))
        hearsay.log("info", "file mt:", tostring(getmetatable(io.stdout)))
        hearsay.log("info", "req setmetatable:", select(2, pcall(
          require("_G").setmetatable, {}, { __gc = print })))
        -- a long step, within the budget: 300 ms of wall-clock time (CPU
        -- time, on a loaded machine, can stretch past the stall second)
        local t = hearsay.time()
        while hearsay.time() - t < 300 do end
      end)
      return {}
    ]])
    local a = hs_sh("probe1", 4, "0<>" .. fifo(),
                    { "--script", s, "--set", "script_budget=200000000",
                      "--metrics", ip(4) .. ":9100" })
    assert.is_true(agent.wait(function()
      return a:log():find("req setmetatable:", 1, true) ~= nil
    end, 10), a:log())
    local log = a:log()
    assert.truthy(log:find("script: read: nil nil", 1, true), log)
    assert.truthy(log:find("script: require: error loading module 'dumped' "
      .. "from file '" .. dir .. "/dumped.lua':\n\t" .. dir
      .. "/dumped.lua: binary chunks are not allowed (text only)", 1, true),
      log)
    assert.truthy(log:find("script: file mt: false", 1, true), log)
    assert.truthy(log:find("script: req setmetatable: setmetatable: a "
      .. "metatable with __gc is not allowed", 1, true), log)
    local loop
    assert.is_true(agent.wait(function()
      loop = a:stats().loop
      return loop.longest_step_us >= 250000
    end, 5), cjson.encode(loop))
    assert.is_true(loop.slow_steps >= 1)
    assert.are.equal(0, loop.stalls) -- under a second: no stall
    -- bash, not curl: curl hangs under make asan's preloaded sanitizers
    local out = agent.run("timeout 10 bash -c " .. agent.sh_quote(
      "exec 3<>/dev/tcp/" .. ip(4) .. "/9100 || exit 9\n"
      .. "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3\ncat <&3"))
    local secs = tonumber(out:match("\nhearsay_loop_longest_step_seconds "
                                    .. "([%d%.]+)"))
    assert.is_true(secs >= 0.25, out)
    assert.truthy(out:find("\n# TYPE hearsay_loop_slow_steps_total counter\n"
                           .. "hearsay_loop_slow_steps_total %d+\n"), out)
    assert.truthy(out:find("\nhearsay_loop_stalls_total 0\n", 1, true), out)
    cleanup()
    os.remove(dir)
  end)

  it("has the watchdog name a script blocked in a write, and exit after "
     .. "script_watchdog", function()
    local s = script [[
      local hearsay = require "hearsay"
      hearsay.after(200, function()
        io.write(("x"):rep(1 << 20)) -- blocks: nobody reads the pipe
      end)
      return {}
    ]]
    local a = hs_sh("dog1", 5, "1<>" .. fifo(),
                    { "--script", s, "--set", "script_watchdog=3s" })
    local status = a:wait_exit(15)
    local log = a:log()
    assert.are.equal(1, status, log)
    local warn = log:match("%[WARN%] event loop stalled: ([^\n]*)")
    assert.are.equal("for=1.0s script=" .. s .. ":2 hook=after", warn)
    -- (3.0s, or a tenth more on a busy machine: the watchdog looks every
    -- 50 ms, when its thread gets to run)
    local seen = log:gsub("held the event loop for 3%.[01]s", "held the "
                          .. "event loop for 3.Xs")
    assert.truthy(seen:find("[ERROR] a script call has held the event loop "
      .. "for 3.Xs: script=" .. s .. ":2 hook=after; exiting "
      .. "(script_watchdog=3000ms)", 1, true), log)
  end)
end)
