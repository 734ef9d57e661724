-- hooks_spec.lua: hook scripts in real agents: events in order, private
-- data, vetoes, and every way a script can fail. #net
local hearsay = require "hearsay"
local agent = require "agent"
local cjson = require "cjson"

local SCRIPTS = "spec/fixtures/scripts/"

local ip, hs = agent.subnet("127.0.4")

local stats = agent.stats

local write = agent.write_file

describe("hook scripts in agents #net", function()
  local obs

  after_each(function()
    if obs then obs:close() end
    obs = nil
    agent.cleanup()
  end)

  it("see join, update, suspect, alive, dead and left, in order, with "
     .. "the member's fields", function()
    local events = {}
    local file = os.tmpname()
    write(file, "v1")
    -- the agents first: our loop only runs inside run_until
    local a1 = hs("a1", 2)
    local a2 = hs("a2", 3, { join = { ip(2) .. ":7946" },
      args = { "--script", SCRIPTS .. "private_file.lua" },
      env = { HEARSAY_PRIVATE_FILE = file } })
    assert.is_true(agent.wait(function()
      return a1:status_of("a2") == "alive"
    end, 10), a2:log())
    obs = assert(hearsay.node{ name = "obs", bind = ip(1) .. ":7946",
      join = { ip(2) .. ":7946" },
      profile = "local", log_level = "off", hooks = {
        on_member = function(event, m)
          events[#events + 1] = { event = event, name = m.name,
            state = m.state, inc = m.incarnation, pd = m.private_data,
            addr = m.addr, port = m.port, pcur = m.protocol.cur,
            dcur = m.delegate.cur }
        end } })
    local function saw(name, event)
      for _, e in ipairs(events) do
        if e.name == name and e.event == event then return e end
      end
    end
    assert.is_true(hearsay.run_until(function()
      return saw("a1", "join") and saw("a2", "join")
    end, 10000), a2:log())
    local j = saw("a2", "join")
    assert.are.equal("127.0.4.3", j.addr)
    assert.are.equal(7946, j.port)
    assert.are.equal("v1", j.pd)
    assert.are.equal(2, j.pcur)
    assert.are.equal(5, j.dcur)
    -- new private data: an update (written aside and renamed, so that the
    -- script, which polls the file, never reads it empty)
    write(file .. ".new", "v2")
    assert(os.rename(file .. ".new", file))
    assert.is_true(hearsay.run_until(function() return saw("a2", "update") end,
                                     10000))
    assert.are.equal("v2", saw("a2", "update").pd)
    -- frozen: suspect; thawed: alive (refuted, higher incarnation)
    a2:signal("STOP")
    assert.is_true(hearsay.run_until(function() return saw("a2", "suspect") end,
                                     10000))
    a2:signal("CONT")
    assert.is_true(hearsay.run_until(function() return saw("a2", "alive") end,
                                     10000), a2:log())
    assert.is_true(saw("a2", "alive").inc > saw("a2", "update").inc)
    -- crashed: dead
    a1:signal("KILL")
    assert.is_true(hearsay.run_until(function() return saw("a1", "dead") end,
                                     30000))
    -- gone gracefully: left
    a2:signal("TERM")
    assert.is_true(hearsay.run_until(function() return saw("a2", "left") end,
                                     10000))
    local order = {}
    for _, e in ipairs(events) do
      if e.name == "a2" then order[#order + 1] = e.event end
    end
    assert.are.same({ "join", "update", "suspect", "alive", "left" }, order)
    order = {}
    for _, e in ipairs(events) do
      if e.name == "a1" then order[#order + 1] = e.event end
    end
    -- the death may reach us before or after our own suspicion does
    local seq = table.concat(order, ",")
    assert.is_true(seq == "join,suspect,dead" or seq == "join,dead", seq)
    assert.are.equal("dead", saw("a1", "dead").state)
    assert.are.equal("left", saw("a2", "left").state)
    os.remove(file)
  end)

  it("spread private data to hearsay and to serf, which shows it as tags",
     function()
    local a = hs("pd1", 10, { args = { "--script",
      SCRIPTS .. "private_file.lua" },
      env = { HEARSAY_PRIVATE_FILE = SCRIPTS .. "web.txt" } })
    local b = hs("pd2", 11, { join = { ip(10) .. ":7946" } })
    assert.is_true(agent.wait(function()
      local m = b:members()
      return m and m.pd1 and m.pd1.private_data == "web"
    end, 10))
    if agent.have_serf() then
      local s = agent.serf{ name = "serf1", bind = ip(12) .. ":7946",
                            rpc = ip(12) .. ":7373",
                            join = { ip(10) .. ":7946" } }
      assert.is_true(agent.wait(function()
        local m = s:members()
        return m and m.pd1 and m.pd1.tags and m.pd1.tags.role == "web"
      end, 15), s:log())
      local out = agent.run("serf members -detailed -rpc-addr=" .. ip(12)
        .. ":7373")
      assert.matches("pd1%s+127%.0%.4%.10:7946%s+alive%s+role=web", out)
    end
    assert.is_not_nil(a)
  end)

  it("keep refused members out everywhere allow_member runs", function()
    local guard = { "--script", SCRIPTS .. "refuse_bad.lua" }
    local g = {}
    for i = 1, 3 do
      g[i] = hs("g" .. i, 20 + i, { args = guard,
        join = i > 1 and { ip(21) .. ":7946" } or nil })
    end
    hs("bad1", 24, { join = { ip(21) .. ":7946" } })
    hs("fine1", 25, { join = { ip(22) .. ":7946" } })
    assert.is_true(agent.wait(function()
      for i = 1, 3 do
        if g[i]:status_of("fine1") ~= "alive" then return false end
      end
      return true
    end, 15))
    agent.sleep(3) -- let bad1 gossip its alive around
    for i = 1, 3 do
      assert.is_nil(g[i]:status_of("bad1"))
    end
    assert.is_true(stats(g[1]).members_refused > 0)
    assert.matches("member refused: member=bad1 .*names starting with bad",
                   g[1]:log())
  end)
end)

describe("a failing script #net", function()
  after_each(function() agent.cleanup() end)

  local function start_fails(script, pattern)
    local out, status = agent.run(agent.bin .. " agent --name x --bind "
      .. ip(40) .. ":7946 --control " .. ip(40) .. ":7374 --script "
      .. SCRIPTS .. script)
    assert.are.equal(2, status, out)
    assert.matches(pattern, out)
  end

  it("stops the agent at start-up with file:line for a syntax error",
     function()
    start_fails("syntax_error.lua",
                "hearsay: spec/fixtures/scripts/syntax_error%.lua:3: ")
  end)

  it("stops the agent at start-up for an unknown hook", function()
    start_fails("unknown_hook.lua", "hearsay: spec/fixtures/scripts/"
      .. "unknown_hook%.lua: unknown hook 'on_joinn'")
  end)

  it("stops the agent at start-up for a script that returns no table",
     function()
    start_fails("not_table.lua", "must return a table of hooks, not a number")
    start_fails("no_such_file.lua", "cannot open")
  end)

  it("logs a runtime error with its traceback, counts it, and the node "
     .. "goes on", function()
    local a = hs("e1", 41, { args = { "--script",
      SCRIPTS .. "runtime_error.lua" } })
    local b = hs("e2", 42, { join = { ip(41) .. ":7946" } })
    assert.is_true(agent.wait(function()
      return a:status_of("e2") == "alive" and b:status_of("e1") == "alive"
    end, 10))
    -- its own join came first; the next failures within 10s are counted,
    -- not logged
    assert.matches("script on_member failed: .*runtime_error%.lua:3: boom "
      .. "on e1\nstack traceback:", a:log())
    assert.not_matches("boom on e2", a:log())
    assert.is_true(stats(a).hooks.errors >= 2)
    assert.are.equal("still here", b:members().e1.private_data)
  end)

  it("stops a runaway hook or timer, and no member is wrongly suspected",
     function()
    local r = hs("r1", 43, { args = { "--script", SCRIPTS .. "runaway.lua",
                                      "--set", "script_budget=2000000" } })
    local o = {}
    for i = 2, 3 do
      o[i] = hs("r" .. i, 42 + i, { join = { ip(43) .. ":7946" } })
    end
    assert.is_true(agent.wait(function()
      return r:status_of("r3") == "alive" and o[3]:status_of("r1") == "alive"
    end, 10))
    agent.sleep(8)
    for i = 2, 3 do
      assert.not_matches("member suspect: member=r1", o[i]:log())
      assert.are.equal("alive", o[i]:status_of("r1"))
    end
    local st = stats(r)
    assert.is_true(st.hooks.budget_stops >= 10, cjson.encode(st.hooks))
    assert.matches("script every was stopped: instruction budget exceeded",
                   r:log())
    assert.matches("script on_member was stopped", r:log())
  end)

  it("stops a hook that grows past script_memory", function()
    -- a budget of 5 s of CPU time: under the sanitizers, on a loaded
    -- machine, filling 16 MiB can take longer than the default half second
    local a = hs("m1", 46, { args = { "--script", SCRIPTS .. "memory_hog.lua",
                                      "--set", "script_memory=16MiB",
                                      "--set", "script_budget=100000000" } })
    local b = hs("m2", 47, { join = { ip(46) .. ":7946" } })
    assert.is_true(agent.wait(function()
      return a:status_of("m2") == "alive" and b:status_of("m1") == "alive"
    end, 10))
    assert.is_true(agent.wait(function()
      return stats(a).hooks.memory_errors > 0
    end, 10), a:log())
    assert.matches("ran out of memory", a:log())
    assert.are.equal("hog", b:members().m1.private_data)
  end)

  it("keeps working when a script holds its state full", function()
    local a = hs("k1", 50, { args = { "--script",
      SCRIPTS .. "memory_keeper.lua", "--set", "script_memory=8MiB" } })
    assert.is_true(agent.wait(function()
      return a:log():match("ran out of memory") ~= nil
    end, 10), a:log())
    -- events still come, with no room for their arguments
    local b = hs("k2", 51, { join = { ip(50) .. ":7946" } })
    local c = hs("k3", 52, { join = { ip(50) .. ":7946" } })
    assert.is_true(agent.wait(function()
      return a:status_of("k3") == "alive" and b:status_of("k3") == "alive"
    end, 10))
    c:signal("KILL")
    assert.is_true(agent.wait(function()
      return a:status_of("k3") == "dead"
    end, 30))
    assert.is_true(a:running())
    assert.is_true(stats(a).hooks.memory_errors > 0)
  end)

  it("keeps the old scripts when a reload fails, and takes new ones that "
     .. "load", function()
    local script = os.tmpname() .. ".lua"
    os.execute("cp " .. SCRIPTS .. "good_v1.lua " .. script)
    local a = hs("l1", 48, { args = { "--script", script } })
    local b = hs("l2", 49, { join = { ip(48) .. ":7946" } })
    assert.is_true(agent.wait(function()
      local m = b:members()
      return m and m.l1 and m.l1.private_data == "v1"
    end, 10))
    os.execute("cp " .. SCRIPTS .. "broken_v2.lua " .. script)
    local out, status = a:cli("reload")
    assert.are.equal(1, status)
    assert.matches("Error: .*%.lua:2: .* expected", out)
    a:signal("HUP")
    assert.is_true(agent.wait(function()
      return #a:log():gsub("reload failed", "") < #a:log() - 20
    end, 5))
    assert.are.equal("v1", b:members().l1.private_data)
    write(script, 'return { private_data = function() return "v3" end }')
    out, status = a:cli("reload")
    assert.are.equal(0, status, out)
    assert.matches("Scripts reloaded: 1 script", out)
    assert.is_true(agent.wait(function()
      return b:members().l1.private_data == "v3"
    end, 10))
    os.remove(script)
  end)
end)

describe("the script sandbox #net", function()
  after_each(function() agent.cleanup() end)

  it("keeps scripts, and the modules they require, from running "
     .. "commands or loading code", function()
    local a = hs("sb1", 60, { args = { "--script",
                                       SCRIPTS .. "sandbox_probe.lua" } })
    assert.is_true(agent.wait(function()
      return a:log():match("script: sandbox:") ~= nil
    end, 10), a:log())
    local line = a:log():match("script: sandbox: ([^\n]*)")
    for _, want in ipairs{ "execute=nil", "req_os_execute=nil",
                           "req_os_time=function", "debug=error",
                           "popen=nil", "loadlib=error", "load=nil",
                           "cjson=function", "module_execute=nil",
                           "module_debug=nil" } do
      assert.matches(want, line, 1, true)
    end
  end)
end)
