-- examples_spec.lua: the hook scripts of examples/, run unchanged: in the
-- simulation (service discovery, leader, membership log, Serf tags), in
-- real agents (#net) and beside a real serf agent (#net #serf).
local simlib = require "hearsay.sim"
local agent = require "agent"
local cjson = require "cjson"

-- The module the script requires from beside it, and the spec too: the
-- same one (package.loaded), without changing everyone's package.path.
local discovery = package.loaded.discovery or dofile("examples/discovery.lua")
package.loaded.discovery = discovery

local SETTLE_MS = 2000 -- examples/leader.lua's

-- Each simulated node stands for a process of its own, with its own
-- environment: while `fn` starts nodes, os.getenv answers from `vars`
-- (false: unset), as the scripts read their settings when they load.
local function with_env(vars, fn)
  local real = os.getenv
  os.getenv = function(k) -- luacheck: ignore 122
    local v = vars[k]
    if v == false then return nil end
    if v ~= nil then return v end
    return real(k)
  end
  local ok, err = pcall(fn)
  os.getenv = real -- luacheck: ignore 122
  if not ok then error(err, 0) end
end

-- The log lines of `node` whose message matches `pattern`, as
-- {t = virtual ms, msg =, captures...}.
local function logged(sim, node, pattern)
  local r = {}
  for _, line in ipairs(sim:trace()) do
    local t, who, msg = line:match("^%s*([%d%.]+) (%S+) %[%u+%] (.*)$")
    if who == node then
      local caps = { msg:match(pattern) }
      if #caps > 0 then
        r[#r + 1] = { t = math.floor(tonumber(t) * 1000 + 0.5), msg = msg,
                      table.unpack(caps) }
      end
    end
  end
  return r
end

local function first(events, kind)
  for _, e in ipairs(events) do
    if e.event == kind then return e end
  end
end

local function ip(sim, name)
  return (sim:addr(name):match("^(.*):%d+$"))
end

local function no_hook_errors(sim)
  for _, name in ipairs(sim:names()) do
    if sim:alive(name) then
      local hooks = sim:stats(name).hooks
      assert.are.equal(0, hooks.errors, name .. " had a hook fail")
    end
  end
end

local function read_lines(path)
  local r = {}
  local f = io.open(path)
  if not f then return r end
  for line in f:lines() do r[#r + 1] = line end
  f:close()
  return r
end

-- ===== first-hook.lua =====

describe("examples/first-hook.lua", function()
  it("greets each new member, and no hook fails", function()
    local sim = simlib.new{ seed = 200, trace = true }
    sim:add(3, { scripts = { "examples/first-hook.lua" } })
    sim:run(3000)
    assert.is_true(sim:converged())
    -- n1 greets n2 and n3; n2 and n3 greet each other (whoever it sees
    -- join after itself), never themselves
    for i = 2, 3 do
      local got = logged(sim, "n" .. i, "^script: message from (%S+) "
                         .. "welcome, (%S+)$")
      assert.is_true(#got >= 1)
      for _, g in ipairs(got) do
        assert.are.equal("n" .. i, g[2])
        assert.are_not.equal("n" .. i, g[1])
      end
    end
    no_hook_errors(sim)
  end)
end)

-- ===== service-discovery.lua =====

describe("examples/service-discovery.lua", function()
  local S = { scripts = { "examples/service-discovery.lua" } }

  it("lists the endpoints of a service on the members alive, as nodes "
     .. "join, crash and leave", function()
    local sim = simlib.new{ seed = 201, trace = true, events = true }
    sim:add({ "client" }, S) -- offers nothing, looks services up
    with_env({ HEARSAY_SERVICES = '{"web": 8080}' }, function()
      sim:add({ "web1" }, S)
    end)
    with_env({ HEARSAY_SERVICES = '{"web": 8081, "db": 5432}' }, function()
      sim:add({ "web2" }, S)
    end)
    -- private data of another kind is no service
    sim:add({ "other" }, { hooks = { private_data = function()
      return "role=web"
    end } })
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000))
    local client = sim:node("client")
    local w1, w2 = ip(sim, "web1"), ip(sim, "web2")
    assert.are.equal('{"services":{"db":5432,"web":8081}}',
                     client:member("web2").private_data)
    assert.are.same({ w1 .. ":8080", w2 .. ":8081" },
                    discovery.services("web", client))
    assert.are.same({ w2 .. ":5432" }, discovery.services("db", client))
    assert.are.same({}, discovery.services("cache", client))
    -- every node has the same view
    assert.are.same(discovery.services("web", client),
                    discovery.services("web", sim:node("other")))

    -- each endpoint was logged the moment the client saw its node join
    local join2 = first(sim:events_of("client", "web2"), "join").t
    local got = logged(sim, "client", "^script: service (%S+) gained (%S+);")
    assert.are.same({ "web", w1 .. ":8080" }, { got[1][1], got[1][2] })
    assert.are.equal(first(sim:events_of("client", "web1"), "join").t,
                     got[1].t)
    assert.are.same({ t = join2, msg = "script: service db gained "
      .. w2 .. ":5432; endpoints: " .. w2 .. ":5432", "db", w2 .. ":5432" },
      got[2])
    assert.are.same({ t = join2, msg = "script: service web gained "
      .. w2 .. ":8081; endpoints: " .. w1 .. ":8080 " .. w2 .. ":8081",
      "web", w2 .. ":8081" }, got[3])
    assert.are.equal(3, #got)

    -- a node joining later adds its endpoint
    with_env({ HEARSAY_SERVICES = '{"web": 8080}' }, function()
      sim:add({ "web3" }, S)
    end)
    assert.is_true(sim:run_until(function()
      return #discovery.services("web", client) == 3
    end, 5000))
    local w3 = ip(sim, "web3")
    local join3 = first(sim:events_of("client", "web3"), "join").t
    got = logged(sim, "client", "^script: service web gained (%S+);")
    assert.are.same({ t = join3, msg = got[3].msg, w3 .. ":8080" }, got[3])

    -- a crash takes web2's endpoints away as soon as the client suspects
    -- it (only alive members count); db has none left
    sim:kill("web2")
    assert.is_true(sim:run_until(function()
      return sim:count_seeing("web2", "dead") == 4
    end, 30000))
    local gone = sim:events_of("client", "web2")[2]
    assert.is_true(gone.event == "suspect" or gone.event == "dead")
    local lost = logged(sim, "client", "^script: service (%S+) lost (%S+);")
    assert.are.same({ t = gone.t, msg = "script: service db lost " .. w2
      .. ":5432; no endpoints left", "db", w2 .. ":5432" }, lost[1])
    assert.are.same({ t = gone.t, msg = "script: service web lost " .. w2
      .. ":8081; endpoints: " .. w1 .. ":8080 " .. w3 .. ":8080", "web",
      w2 .. ":8081" }, lost[2])
    assert.are.same({ w1 .. ":8080", w3 .. ":8080" },
                    discovery.services("web", client))
    assert.are.same({}, discovery.services("db", client))

    -- a graceful leave too
    assert.is_true(sim:leave("web1"))
    assert.is_true(sim:run_until(function()
      return client:state_of("web1") == "left"
    end, 10000))
    local left = first(sim:events_of("client", "web1"), "left").t
    lost = logged(sim, "client", "^script: service web lost (%S+);")
    assert.are.same({ t = left, msg = "script: service web lost " .. w1
      .. ":8080; endpoints: " .. w3 .. ":8080", w1 .. ":8080" }, lost[2])
    assert.are.equal(2, #lost)
    assert.are.same({ w3 .. ":8080" }, discovery.services("web", client))
    no_hook_errors(sim)
  end)

  it("refuses bad settings, advertises nothing and keeps the node running",
     function()
    local sim = simlib.new{ seed = 202, trace = true }
    sim:add({ "client" }, S)
    local many = {}
    for i = 1, 40 do many[#many + 1] = ('"service-%02d": %d'):format(i, i) end
    local bad = {
      port = '{"web": 99999}',
      json = "web=8080",
      name = '{"no spaces": 80}',
      size = "{" .. table.concat(many, ",") .. "}",
    }
    for name, text in pairs(bad) do
      with_env({ HEARSAY_SERVICES = text }, function()
        sim:add({ name }, S)
      end)
    end
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000))
    local why = {
      port = "bad port for web: 99999",
      json = "not JSON",
      name = "bad service name no spaces",
      size = "over the limit of 512",
    }
    for name, text in pairs(why) do
      local l = logged(sim, name, "^script: service discovery: "
                       .. "HEARSAY_SERVICES refused: (.*)$")
      assert.are.equal(1, #l, name)
      assert.are.equal(0, l[1].t)
      assert.truthy(l[1][1]:find(text, 1, true), l[1][1])
      assert.are.equal("", sim:node("client"):member(name).private_data)
    end
    assert.are.same({}, discovery.services("web", sim:node("client")))
    no_hook_errors(sim)
  end)

  it("reads only well-formed services from members' private data",
     function()
    assert.are.same({ web = 80 }, discovery.decode('{"services": {"web": 80, '
      .. '"db": "x", "str": "8080", "bad name": 1, "big": 70000, "f": 1.5}}'))
    assert.are.same({ web = "[::1]:80" }, discovery.offers({ addr = "::1",
      private_data = '{"services":{"web":80}}' }))
    assert.is_nil(discovery.decode("\xff\x80"))
    assert.is_nil(discovery.decode("{not json"))
    assert.is_nil(discovery.decode('{"services": 1}'))
    assert.is_nil(discovery.decode("{" .. ("x"):rep(600) .. "}"))
    assert.is_nil(discovery.decode(nil))
    assert.are.same({ web = 80 }, discovery.parse('{"services":{"web":80}}'))
    local ok, err = discovery.encode({ web = 0 })
    assert.is_nil(ok)
    assert.matches("bad port", err)
  end)
end)

describe("examples/service-discovery.lua in agents #net", function()
  after_each(function() agent.cleanup() end)

  it("logs the endpoints a joining agent advertises, and other scripts "
     .. "look them up with require 'discovery'", function()
    local script = { "--script", "examples/service-discovery.lua" }
    local a = agent.hearsay{ name = "sd-a", bind = "127.0.12.1:7946",
      control = "127.0.12.1:7374", profile = "local", log = "info",
      args = { script[1], script[2], "--script",
               "spec/fixtures/scripts/discovery_user.lua" } }
    local b = agent.hearsay{ name = "sd-b", bind = "127.0.12.2:7946",
      control = "127.0.12.2:7374", profile = "local", log = "info",
      join = { "127.0.12.1:7946" }, args = script,
      env = { HEARSAY_SERVICES = '{"web": 8080, "db": 5432}' } }
    assert.is_true(agent.wait(function()
      return a:log():match("script: service web gained 127%.0%.12%.2:8080; "
        .. "endpoints: 127%.0%.12%.2:8080") ~= nil
    end, 15), a:log() .. b:log())
    assert.matches("script: service db gained 127%.0%.12%.2:5432",
                   a:log())
    -- the other script's timer sees the same list through the module
    assert.is_true(agent.wait(function()
      return a:log():match("script: web is at 127%.0%.12%.2:8080") ~= nil
    end, 5), a:log())
    assert.are.equal('{"services":{"db":5432,"web":8080}}',
                     a:members()["sd-b"].private_data)
    -- a leave takes them away
    b:signal("TERM")
    assert.are.equal(0, b:wait_exit(15))
    assert.is_true(agent.wait(function()
      return a:log():match("script: service web lost 127%.0%.12%.2:8080; "
        .. "no endpoints left") ~= nil
    end, 10), a:log())
    assert.not_matches("script on_member failed", a:log())
  end)
end)

-- ===== leader.lua =====

describe("examples/leader.lua", function()
  local L = { scripts = { "examples/leader.lua" } }

  -- The leader `node` took, and when: {t =, msg =, leader, was}.
  local function decisions(sim, node)
    return logged(sim, node, "^script: leader is (%S+) %(was (%S+)%)$")
  end

  -- The last membership change (not an update) node saw at or before t.
  local function last_change(sim, node, t)
    local last
    for _, e in ipairs(sim:events_of(node)) do
      if e.t <= t and e.event ~= "update" then last = e.t end
    end
    return last
  end

  it("elects the lowest name, re-elects when the leader dies, and every "
     .. "node hears the new leader's announcement", function()
    local sim = simlib.new{ seed = 203, trace = true, events = true }
    sim:add(5, L)
    sim:run(5000)
    assert.is_true(sim:converged())
    -- every node names n1, SETTLE_MS after the last change it saw
    local t1
    for i = 1, 5 do
      local name = "n" .. i
      local d = decisions(sim, name)
      assert.are.equal(1, #d, name)
      assert.are.same({ "n1", "none" }, { d[1][1], d[1][2] })
      assert.are.equal(last_change(sim, name, d[1].t) + SETTLE_MS, d[1].t)
      if i == 1 then t1 = d[1].t end
    end
    -- n1 announced it; every other node got it once, soon after
    assert.are.equal(0, #logged(sim, "n1", "^script: leader announced"))
    for i = 2, 5 do
      local a = logged(sim, "n" .. i, "^script: leader announced by (%S+)")
      assert.are.equal(1, #a)
      assert.are.equal("n1", a[1][1])
      assert.is_true(a[1].t > t1 and a[1].t <= t1 + 1000, tostring(a[1].t))
    end

    -- the leader crashes: each node moves to n2 SETTLE_MS after it
    -- declared n1 dead, never before
    sim:kill("n1")
    assert.is_true(sim:run_until(function()
      return sim:count_seeing("n1", "dead") == 4
    end, 30000))
    sim:run(SETTLE_MS + 1000)
    local t2
    for i = 2, 5 do
      local name = "n" .. i
      local d = decisions(sim, name)
      assert.are.equal(2, #d, name)
      assert.are.same({ "n2", "n1" }, { d[2][1], d[2][2] })
      local dead = first(sim:events_of(name, "n1"), "dead").t
      assert.are.equal(dead + SETTLE_MS, d[2].t, name)
      if i == 2 then t2 = d[2].t end
    end
    for i = 3, 5 do
      local a = logged(sim, "n" .. i, "^script: leader announced by (%S+)")
      assert.are.equal(2, #a)
      assert.are.equal("n2", a[2][1])
      assert.is_true(a[2].t > t2 and a[2].t <= t2 + 1000, tostring(a[2].t))
    end
    -- n2 heard n1's announcement only: a rumor is not delivered to its
    -- sender
    assert.are.equal(1, #logged(sim, "n2", "^script: leader announced"))
    no_hook_errors(sim)
  end)

  it("gives each side of a partition its own leader until it heals "
     .. "(split brain)", function()
    local sim = simlib.new{ seed = 204, trace = true, events = true }
    sim:add(4, L)
    sim:run(5000)
    sim:partition({ "n1", "n2" }, { "n3", "n4" })
    assert.is_true(sim:run_until(function()
      for i = 1, 4 do
        if sim:count_seeing("n" .. i, "dead") ~= 2 then return false end
      end
      return true
    end, 60000))
    sim:run(SETTLE_MS + 1000)
    local function leader_of(name)
      local d = decisions(sim, name)
      return d[#d][1]
    end
    assert.are.same({ "n1", "n1", "n3", "n3" },
                    { leader_of("n1"), leader_of("n2"), leader_of("n3"),
                      leader_of("n4") })
    local heard = logged(sim, "n4", "^script: leader announced by (%S+)")
    assert.are.equal("n3", heard[#heard][1])
    -- once healed, the lists merge and everyone names n1 again
    sim:heal()
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 120000, 100))
    sim:run(SETTLE_MS + 1000)
    for i = 1, 4 do assert.are.equal("n1", leader_of("n" .. i)) end
    no_hook_errors(sim)
  end)
end)

-- ===== membership-log.lua =====

describe("examples/membership-log.lua", function()
  local M = { scripts = { "examples/membership-log.lua" } }
  local STATE = { join = "alive", update = "alive", alive = "alive",
                  suspect = "suspect", dead = "dead", left = "left" }
  local tmp = {}

  after_each(function()
    for _, p in ipairs(tmp) do os.remove(p) end
    tmp = {}
  end)

  it("writes every event the node sees as one JSON line, in order",
     function()
    local path = os.tmpname()
    tmp[#tmp + 1] = path
    local sim = simlib.new{ seed = 205, events = true }
    with_env({ HEARSAY_MEMBERSHIP_LOG = path }, function()
      sim:add({ "n1" }, M)
    end)
    sim:add(3)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000))
    sim:kill("n3")
    assert.is_true(sim:run_until(function()
      return sim:node("n1"):state_of("n3") == "dead"
    end, 30000))
    assert.is_true(sim:leave("n4"))
    assert.is_true(sim:run_until(function()
      return sim:node("n1"):state_of("n4") == "left"
    end, 10000))

    local lines = read_lines(path)
    local want = sim:events_of("n1")
    local kinds = {}
    for _, e in ipairs(want) do kinds[e.event] = true end
    assert.is_true(kinds.join and kinds.dead and kinds.left ~= nil)
    assert.are.equal(#want, #lines)
    for i, e in ipairs(want) do
      local got = cjson.decode(lines[i])
      assert.are.same({ clock = e.t, node = "n1", event = e.event,
        member = e.member, addr = sim:addr(e.member),
        state = STATE[e.event], incarnation = e.incarnation,
        time = got.time }, got)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", got.time)
    end
    -- one line, keys in a fixed order
    assert.matches('^{"time":"[^"]+","clock":0,"node":"n1","event":"join",'
      .. '"member":"n1","addr":"10%.0%.0%.1:7946","state":"alive",'
      .. '"incarnation":1}$', lines[1])
    no_hook_errors(sim)
  end)

  it("survives a file it cannot open or write, says so once, and writes "
     .. "again when it can", function()
    local dir = os.tmpname()
    os.remove(dir)
    tmp[#tmp + 1] = dir
    local path = dir .. "/members.jsonl"
    local sim = simlib.new{ seed = 206, trace = true }
    with_env({ HEARSAY_MEMBERSHIP_LOG = path }, function()
      sim:add({ "n1" }, M)
    end)
    with_env({ HEARSAY_MEMBERSHIP_LOG = "/dev/full" }, function()
      sim:add({ "n2" }, M)
    end)
    sim:add(2)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000))
    -- n1: no directory; n2: a device that is always full
    local open = logged(sim, "n1", "^script: membership log: cannot (%S+)")
    assert.are.equal(1, #open)
    assert.are.equal("script: membership log: cannot open " .. path
      .. ": No such file or directory (events are dropped until it works "
      .. "again)", open[1].msg)
    local write = logged(sim, "n2", "^script: membership log: cannot (%S+)")
    assert.are.equal(1, #write)
    assert.are.equal("write", write[1][1])
    assert.matches("No space left on device", write[1].msg, 1, true)
    -- the directory appears: the next event is written
    assert.is_true(os.execute("mkdir " .. dir))
    tmp[#tmp + 1] = path
    sim:kill("n4")
    assert.is_true(sim:run_until(function()
      return sim:node("n1"):state_of("n4") == "dead"
    end, 30000))
    local lines = read_lines(path)
    assert.is_true(#lines >= 1)
    assert.are.equal("n4", cjson.decode(lines[1]).member)
    assert.are.equal(1, #logged(sim, "n1",
      "^script: membership log: writing to .* again$"))
    assert.are.equal(1, #logged(sim, "n2",
      "^script: membership log: cannot"))
    assert.is_true(sim:converged())
    no_hook_errors(sim)
  end)
end)

describe("examples/membership-log.lua in an agent #net", function()
  local path = os.tmpname()

  after_each(function()
    agent.cleanup()
    os.remove(path)
  end)

  it("logs a join and a leave as JSON lines", function()
    local before = os.time()
    local a = agent.hearsay{ name = "ml-a", bind = "127.0.12.3:7946",
      control = "127.0.12.3:7374", profile = "local",
      args = { "--script", "examples/membership-log.lua" },
      env = { HEARSAY_MEMBERSHIP_LOG = path } }
    local b = agent.hearsay{ name = "ml-b", bind = "127.0.12.4:7946",
      control = "127.0.12.4:7374", profile = "local",
      join = { "127.0.12.3:7946" } }
    assert.is_true(agent.wait(function()
      return a:status_of("ml-b") == "alive"
    end, 10), a:log())
    b:signal("TERM")
    assert.are.equal(0, b:wait_exit(15))
    assert.is_true(agent.wait(function()
      return #read_lines(path) >= 3
    end, 10), a:log())
    local got = {}
    local clock = -1
    for i, line in ipairs(read_lines(path)) do
      local e = cjson.decode(line)
      got[i] = table.concat({ e.node, e.event, e.member, e.addr, e.state },
                            " ")
      assert.is_true(e.clock >= clock)
      clock = e.clock
      local y, mo, d, h, mi, s = e.time:match(
        "^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)Z$")
      local t = os.time{ year = y, month = mo, day = d, hour = h, min = mi,
                         sec = s, isdst = false }
      -- os.time reads the table as local time: undo the zone offset
      t = t + os.difftime(os.time(), os.time(os.date("!*t")))
      assert.is_true(t >= before - 1 and t <= os.time() + 1, e.time)
    end
    assert.are.same({
      "ml-a join ml-a 127.0.12.3:7946 alive",
      "ml-a join ml-b 127.0.12.4:7946 alive",
      "ml-a left ml-b 127.0.12.4:7946 left",
    }, got)
  end)
end)

-- ===== serf-tags.lua =====

describe("examples/serf-tags.lua", function()
  local T = { scripts = { "examples/serf-tags.lua" } }

  it("encodes tags as Serf does, and reads Serf's tags of every member",
     function()
    local sim = simlib.new{ seed = 207, trace = true }
    with_env({ HEARSAY_TAGS = "role=web,dc=x" }, function()
      sim:add({ "tagged" }, T)
    end)
    with_env({ HEARSAY_TAGS = false }, function()
      sim:add({ "default" }, T)
    end)
    local long = ("v"):rep(40)
    with_env({ HEARSAY_TAGS = "k=" .. long }, function()
      sim:add({ "long" }, T)
    end)
    with_env({ HEARSAY_TAGS = "k=" .. ("v"):rep(600) }, function()
      sim:add({ "huge" }, T)
    end)
    -- private data as a Serf agent sends it (a capture's {"zone": "z1"}),
    -- as an old Serf sends it, broken, and with str8 strings
    local foreign = {
      serf = "\xff\x81\xa4zone\xa2z1",
      old = "web",
      broken = "\xff\x81\xa4zo",
      str8 = "\xff\x81\xd9\x04zone\xd9\x02z2",
    }
    for name, data in pairs(foreign) do
      sim:add({ name }, { hooks = { private_data = function()
        return data
      end } })
    end
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000))
    local n = sim:node("serf")
    -- §13.2's example, {role = "web", dc = "x"}, with its keys sorted
    assert.are.equal("\xff\x82\xa2dc\xa1x\xa4role\xa3web",
                     n:member("tagged").private_data)
    assert.are.equal("\xff\x81\xa4role\xa7hearsay",
                     n:member("default").private_data)
    -- 32 bytes and more: 0xda and a 16-bit length, as Go writes it
    assert.are.equal("\xff\x81\xa1k\xda\x00\x28" .. long,
                     n:member("long").private_data)
    assert.are.equal("\xff\x80", n:member("huge").private_data)
    assert.matches("over the limit of 512", logged(sim, "huge",
      "^script: serf tags: HEARSAY_TAGS refused: (.*)$")[1][1])
    local function tags_seen(member)
      local l = logged(sim, "tagged", "^script: serf tags of " .. member
                       .. "(.*)$")
      return l[1] and l[1][1]
    end
    assert.are.equal(": zone=z1", tags_seen("serf"))
    assert.are.equal(": role=web", tags_seen("old"))
    assert.are.equal(": zone=z2", tags_seen("str8"))
    assert.are.equal(": dc=x,role=web", tags_seen("tagged"))
    assert.are.equal(": k=" .. long, tags_seen("long"))
    assert.are.equal(" unreadable: a tag cut short or not a string",
                     tags_seen("broken"))
    no_hook_errors(sim)
  end)
end)

describe("examples/serf-tags.lua beside a serf agent #net #serf", function()
  after_each(function() agent.cleanup() end)

  if not agent.have_serf() then
    pending("serf is not installed (scripts/install-deps.sh installs it)")
    return
  end

  it("shows the hearsay node's tags in serf members, exactly", function()
    local s = agent.serf{ name = "st-s", bind = "127.0.12.10:7946",
      rpc = "127.0.12.10:7373", args = { "-tag", "zone=z1" } }
    local h = agent.hearsay{ name = "st-h", bind = "127.0.12.11:7946",
      control = "127.0.12.11:7374", profile = "lan", log = "info",
      join = { "127.0.12.10:7946" },
      args = { "--script", "examples/serf-tags.lua" },
      env = { HEARSAY_TAGS = "role=web,dc=eu-1" } }
    local m
    assert.is_true(agent.wait(function()
      m = s:members()
      return m and m["st-h"] and m["st-h"].status == "alive"
    end, 30), s:log() .. h:log())
    assert.are.same({ role = "web", dc = "eu-1" }, m["st-h"].tags)
    -- serf filters on them like on its own agents' tags
    local out, status = agent.run("serf members -rpc-addr=127.0.12.10:7373 "
      .. "-tag role=web -tag dc=eu-1")
    assert.are.equal(0, status, out)
    assert.matches("st%-h%s+127%.0%.12%.11:7946%s+alive", out)
    assert.not_matches("st%-s", out)
    -- and we read the serf agent's
    assert.is_true(agent.wait(function()
      return h:log():match("script: serf tags of st%-s: zone=z1") ~= nil
    end, 10), h:log())
  end)
end)
