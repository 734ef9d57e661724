-- sim_spec.lua: hearsay.sim at scale, in virtual time: joins, failure
-- detection, Lifeguard's awareness, partitions, metadata on a thousand
-- nodes, hook scripts, the link models, and replays.
local core = require "hearsay.core"
local simlib = require "hearsay.sim"

local simtools = require "simtools"
local names, first = simtools.names, simtools.first
local parse_trace = simtools.parse_trace

describe("a simulated cluster of 100 nodes", function()
  it("joins, and declares a crashed node dead within the suspicion "
     .. "timeout's bounds, sooner with confirmations", function()
    local sim = simlib.new{ seed = 101, events = true, trace = true,
                            log = "off" }
    sim:add(100)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 60000, 500))
    -- memberlist's formulas for n = 100: min = 4 * log10(100) * 1s = 8s,
    -- max = 6 * min = 48s, and k = suspicion_mult - 2 = 2 confirmations.
    local min = core.suspicion_timeout(4, 100, 1000)
    local max = 6 * min
    assert.are.equal(8000, min)
    sim:log_level("debug")
    sim:kill("n42")
    local killed = sim:now()
    assert.is_true(sim:run_until(function()
      return sim:count_seeing("n42", "dead") == 99
    end, 120000, 100))
    local trace = parse_trace(sim:trace())
    local earliest, shortened, own = math.huge, 0, 0
    for _, name in ipairs(names(1, 100)) do
      if name ~= "n42" then
        local ev = sim:events_of(name, "n42")
        local s, d = first(ev, "suspect"), first(ev, "dead")
        assert.is_not_nil(s, name .. " never suspected n42")
        assert.is_not_nil(d, name .. " never declared n42 dead")
        earliest = math.min(earliest, s.t)
        -- Each node's own timer bounds its suspicion by the maximum.
        assert.is_true(d.t - s.t <= max, name)
        -- Replay the confirmations this node heard before the death and
        -- predict it: start + remaining(confirmations), never past max.
        local deadline, marked = s.t + max, false
        for _, l in ipairs(trace) do
          if l.node == name and l.t <= d.t then
            local c = l.msg:match("^suspicion confirmed: member=n42 .* "
                                  .. "confirmations=(%d+)/2")
            if c then
              local left = core.suspicion_remaining(tonumber(c), 2, 0, min,
                                                    max)
              deadline = math.max(s.t + left, l.t)
            end
            if l.msg:match("^marking member failed: member=n42 ") then
              marked = true
            end
          end
        end
        if marked then
          assert.are.equal(deadline, d.t, name)
          own = own + 1
          if d.t - s.t < max then shortened = shortened + 1 end
        else
          assert.is_true(d.t <= deadline, name)
        end
      end
    end
    -- Someone suspected it within a protocol period or two of the crash
    -- (SWIM: e/(e-1) periods expected for the first detection), someone's
    -- own timer fired, and confirmations made it fire early.
    assert.is_true(earliest - killed <= 3000, tostring(earliest - killed))
    assert.is_true(own > 0)
    assert.is_true(shortened > 0)
    -- No one else was ever wrongly suspected.
    assert.are.equal(0, sim:stats().false_suspicions)
  end)

  it("lets a paused node refute its suspicion when it resumes", function()
    local sim = simlib.new{ seed = 102, events = true }
    sim:add(100)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 60000, 500))
    sim:pause("n7", 5000) -- shorter than the 8s suspicion minimum
    sim:run(20000)
    assert.is_true(sim:converged())
    local suspected = 0
    for _, name in ipairs(names(1, 100)) do
      local ev = sim:events_of(name, "n7")
      assert.is_nil(first(ev, "dead"), name .. " declared n7 dead")
      if first(ev, "suspect") then suspected = suspected + 1 end
    end
    assert.is_true(suspected > 0)
    assert.is_true(sim:node("n7"):stats().refutations >= 1)
    assert.is_true(sim:node("n1"):member("n7").incarnation >= 2)
  end)

  it("heals a 50/50 partition into one cluster", function()
    local sim = simlib.new{ seed = 103 }
    sim:add(100)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 60000, 500))
    sim:partition(names(1, 50), names(51, 100))
    -- each half gives the other up
    assert.is_true(sim:run_until(function()
      return sim:count_seeing("n1", "dead") == 50
        and sim:count_seeing("n100", "dead") == 50
    end, 120000, 1000))
    assert.is_false(sim:converged())
    sim:heal()
    -- failed members are tried again every reconnect_interval
    local ok, took = sim:run_until(function() return sim:converged() end,
                                   120000, 500)
    assert.is_true(ok)
    assert.is_true(took <= 60000, tostring(took))
  end)
end)

describe("Lifeguard's awareness in the simulation", function()
  -- A slow node reads everything 1.5s late while its timers keep time:
  -- its probes time out before it reads their acks.
  local function run(multiplier)
    local sim = simlib.new{ seed = 104, awareness_max_multiplier = multiplier }
    sim:add(20)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 30000, 500))
    sim:slow("n5", 1500)
    sim:run(300000)
    return sim:stats("n5").sim.false_raised, sim:stats().false_suspicions
  end

  it("makes a slow node raise fewer false suspicions", function()
    local by_slow_on, all_on = run(8)  -- memberlist's default
    local by_slow_off, all_off = run(1) -- awareness off
    assert.is_true(by_slow_off > 0)
    -- far fewer accusations from the slow node, and fewer overall
    assert.is_true(by_slow_on * 4 < by_slow_off,
                   by_slow_on .. " vs " .. by_slow_off)
    assert.is_true(all_on < all_off, all_on .. " vs " .. all_off)
  end)
end)

describe("metadata on a thousand simulated nodes", function()
  it("reaches every node, and concurrent writes end as one value",
     function()
    local sim = simlib.new{ seed = 105 }
    sim:add(1000)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 120000, 1000))
    local function everywhere(key, want)
      for i = 1, 1000 do
        local v = sim:node("n" .. i):read(key)
        if v ~= (want or v) or v == nil then return false end
        want = want or v
      end
      return true
    end
    assert.is_true(sim:node("n500"):publish("config/app", "v1"))
    assert.is_true(sim:run_until(function()
      return everywhere("config/app", "v1")
    end, 30000, 100))
    -- ten writers at once
    for i = 1, 10 do
      assert.is_true(sim:node("n" .. (i * 97)):publish("race", "w" .. i))
    end
    assert.is_true(sim:run_until(function()
      return everywhere("race")
    end, 60000, 100))
    -- the one value is the write with the highest (version, origin)
    local _, info = sim:node("n1"):read("race")
    for i = 1, 10 do
      local _, mine = sim:node("n" .. (i * 97)):read("race")
      assert.is_true(mine.version <= info.version)
    end
  end)
end)

describe("hook scripts in the simulation", function()
  it("run unchanged: the config-center example refuses invalid documents",
     function()
    local sim = simlib.new{ seed = 106, trace = true }
    sim:add(9, { scripts = { "examples/config-center.lua" } })
    sim:add({ "loose" }) -- runs no script: it takes anything
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 30000, 100))
    local good = '{"name": "web", "version": 3}'
    assert.is_true(sim:node("n3"):publish("config/web", good))
    local ok, msg, code = sim:node("n4"):publish("config/web",
                                                 '{"name": "web"}')
    assert.is_nil(ok)
    assert.are.equal("EREFUSED", code)
    assert.matches("missing field version", msg)
    assert.is_true(sim:node("loose"):publish("config/db", "not json"))
    sim:run(20000)
    for i = 1, 9 do
      local n = sim:node("n" .. i)
      assert.are.equal(good, n:read("config/web"))
      assert.is_nil(n:read("config/db"))
    end
    assert.are.equal("not json", sim:node("loose"):read("config/db"))
    local log = table.concat(sim:trace(), "\n")
    assert.matches("n7 %[INFO%] script: config config/web created by n3", log)
    assert.matches("n7 %[INFO%] metadata write refused: key=config/db "
                   .. "origin=loose reason=not JSON", log)
  end)

  it("give each node its own API, timers and messages", function()
    local hearsay = require "hearsay"
    local got = {}
    -- one table of hooks for every node: hearsay.self() says which
    local hooks = {
      on_message = function(from, payload)
        local me = hearsay.self().name
        got[me] = (got[me] or "") .. from .. ":" .. payload .. ";"
      end,
    }
    local sim = simlib.new{ seed = 107 }
    sim:add(5, { hooks = hooks })
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 20000, 100))
    local a, b = sim:node("n1"), sim:node("n2")
    assert.are.equal("n1", a:self().name)
    assert.are.equal(5, #b:members())
    assert.is_true(a:broadcast("hello"))
    local fired = 0
    local t = b:every(1000, function() fired = fired + 1 end)
    assert.is_true(b:send("n3", "direct"))
    sim:run(5500)
    for i = 2, 5 do
      assert.matches("n1:hello;", got["n" .. i] or "", 1, true)
    end
    assert.is_nil(got.n1) -- a rumor is not delivered to its sender
    assert.matches("n2:direct;", got.n3, 1, true)
    assert.are.equal(5, fired)
    -- a crash stops the node's timers; its object stays, and says so
    sim:kill("n2")
    sim:run(3000)
    assert.are.equal(5, fired)
    assert.is_false(t:active())
    assert.has_error(function() b:members() end, "the node is not running")
    sim:restart("n2")
    sim:run(3000)
    assert.are.equal("n2", b:self().name)
  end)
end)

describe("the simulated network", function()
  local function pair(opts)
    local sim = simlib.new(opts)
    sim:add(2)
    sim:run(3000)
    assert.is_true(sim:converged())
    return sim
  end

  it("loses, duplicates and reorders packets as told", function()
    local sim = simlib.new{ seed = 108, loss = 0.2, duplicate = 0.2,
                            reorder = 0.2, reorder_ms = 30 }
    sim:add(10)
    sim:run(120000)
    local st = sim:stats()
    -- a fifth of the packets sent are lost; a fifth of the others come
    -- twice; a fifth of what travels is held back
    local want = { lost = st.packets * 0.2,
                   duplicated = (st.packets - st.lost) * 0.2,
                   reordered = (st.packets - st.lost + st.duplicated) * 0.2 }
    for k, w in pairs(want) do
      assert.is_true(math.abs(st[k] - w) < w * 0.15,
                     k .. "=" .. st[k] .. ", about " .. w)
    end
    -- and through all that the cluster holds together
    assert.is_true(sim:converged())
  end)

  it("delays by the latency model, per link or for all", function()
    local sim = pair{ seed = 109 }
    local rtts = {}
    sim:add({ "n3" }, { hooks = { on_ping = function(m, rtt)
      rtts[#rtts + 1] = { m.name, rtt }
    end } })
    sim:run(3000)
    sim:link("n3", "n1", { latency = 40 })
    sim:link("n1", "n3", { latency = 60 })
    sim:link("n3", "n2", { latency = { mean = 50, sd = 5 } })
    sim:link("n2", "n3", { latency = { 10, 20 } })
    rtts = {}
    sim:run(30000)
    local sum = { n1 = {}, n2 = {} }
    for _, r in ipairs(rtts) do table.insert(sum[r[1]], r[2]) end
    assert.is_true(#sum.n1 > 5 and #sum.n2 > 5)
    for _, v in ipairs(sum.n1) do assert.are.equal(100, v) end
    local total = 0
    for _, v in ipairs(sum.n2) do
      assert.is_true(v >= 45 and v <= 95, tostring(v))
      total = total + v
    end
    local mean = total / #sum.n2
    assert.is_true(mean > 55 and mean < 80, tostring(mean))
  end)

  it("caps a link's bandwidth", function()
    local sim = simlib.new{ seed = 110 } -- lan: a 10s TCP timeout
    sim:add(2)
    sim:run(3000)
    sim:link{ latency = 1, bandwidth = 100 * 1024 } -- 100 KiB/s
    -- bytes that do not compress
    local bytes, x = {}, 7
    for i = 1, 400 * 1024 do
      x = (x * 1103515245 + 12345) % 2147483648
      bytes[i] = string.char(x >> 16 & 0xff)
    end
    local value = table.concat(bytes)
    assert.is_true(sim:node("n1"):publish("big", value))
    local ok, took = sim:run_until(function()
      return sim:node("n2"):read("big") == value
    end, 60000, 10)
    assert.is_true(ok)
    -- 400 KiB cannot cross a 100 KiB/s link in less than 4s
    assert.is_true(took >= 4000 and took < 10000, tostring(took))
  end)

  it("keeps connections waiting when a node is busy, as a listen backlog",
     function()
    local sim = simlib.new{ seed = 111, max_inbound_streams = 2 }
    sim:add(30)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 30000, 100))
    assert.is_true(sim:stats("n1").sim.backlogged > 0)
  end)

  it("drops a connection's SYN past the backlog, and the client sends it "
     .. "again", function()
    -- 2 in service, 8 waiting: 30 of the 39 joins find no room at first
    -- and get in on a SYN sent again 1, 3 or 7 s later, within the 10 s
    -- TCP timeout
    local sim = simlib.new{ seed = 112, max_inbound_streams = 2,
                            backlog = 8 }
    sim:add(40)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 15000, 100))
    local st = sim:stats()
    assert.is_true(st.backlogged >= 8)
    assert.is_true(st.syn_retries >= 30)
    assert.equal(40, #sim:node("n1"):members())
    for _, bad in ipairs{ -1, 2.5, "many", 2 ^ 21 } do
      local ok, err = pcall(simlib.new, { backlog = bad })
      assert.is_false(ok)
      assert.matches("backlog: an integer, 0 to 1048576", err)
    end
  end)

  it("gives up a connection whose SYNs find no room for 127 s, as Linux "
     .. "does", function()
    -- n1 serves one stream and keeps none waiting; n2's push/pull holds
    -- it for minutes over a 1 byte/s link. n3's SYN is sent at 1 s and
    -- again 1, 3, 7, 15, 31 and 63 s later; its connect timeout (300 s)
    -- is longer than the kernel's patience.
    local sim = simlib.new{ seed = 5, max_inbound_streams = 1, backlog = 0,
                            tcp_timeout = 300000, trace = true }
    sim:add(2)
    sim:link("n2", "n1", { bandwidth = 1 })
    sim:link("n1", "n2", { bandwidth = 1 })
    sim:run(1000)
    sim:add({ "n3" }, { join = "n1" })
    local function gave_up()
      for _, l in ipairs(sim:trace()) do
        if l:match(" n3 %[WARN%] .*cannot connect to 10%.0%.0%.1:%d+: "
                   .. "timed out") then
          return true
        end
      end
      return false
    end
    sim:run(126900) -- 127.9 s after the first SYN
    assert.is_false(gave_up())
    assert.equal(6, sim:stats("n3").sim.syn_retries)
    sim:run(200)
    assert.is_true(gave_up())
    assert.equal(6, sim:stats("n3").sim.syn_retries)
    assert.equal(1, #sim:node("n3"):members())
  end)
end)

describe("replays", function()
  local function run(seed)
    local sim = simlib.new{ seed = seed, trace = true, log = "debug",
                            loss = 0.05, latency = { 1, 9 } }
    sim:add(30, { scripts = { "examples/first-hook.lua" } })
    sim:run(10000)
    sim:node("n3"):publish("k", "v")
    sim:node("n4"):broadcast("hi")
    sim:kill("n5")
    sim:pause("n6", 2000)
    sim:run(20000)
    sim:restart("n5")
    sim:run(10000)
    return sim:trace()
  end

  it("give the same trace, line for line, for the same seed", function()
    local a, b = run(112), run(112)
    assert.is_true(#a > 10000)
    assert.are.equal(#a, #b)
    for i = 1, #a do
      if a[i] ~= b[i] then
        error(("line %d differs:\n%s\n%s"):format(i, a[i], b[i]))
      end
    end
    local c = run(113)
    local same = #a == #c
    for i = 1, math.min(#a, #c) do
      if a[i] ~= c[i] then same = false break end
    end
    assert.is_false(same)
  end)
end)

describe("hook scripts in the simulation, as in an agent", function()
  it("know themselves from the start, require modules beside them, and "
     .. "read their own environment", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local function write(name, text)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
    end
    write("tagger_util.lua", [[
      return { tag = function(s) return "<" .. s .. ">" end }
    ]])
    write("tagger.lua", [[
      local hearsay = require "hearsay"
      local util = require "tagger_util"
      local role = os.getenv("ROLE") or "none"
      local seen_self = {}
      return {
        private_data = function()
          return util.tag(hearsay.self().name .. "/" .. role)
        end,
        on_member = function(event, m)
          if event == "join" and m.name == hearsay.self().name then
            seen_self[#seen_self + 1] = m.name
            hearsay.log("info", "self joined", table.concat(seen_self, ","),
                        hearsay.time())
          end
        end,
      }
    ]])
    local sim = simlib.new{ seed = 114, trace = true }
    sim:add({ "a" }, { scripts = { dir .. "/tagger.lua" },
                       env = { ROLE = "web" } })
    sim:add({ "b" }, { scripts = { dir .. "/tagger.lua" },
                       env = { ROLE = "db" } })
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 10000, 100))
    assert.are.equal("<a/web>", sim:node("b"):member("a").private_data)
    assert.are.equal("<b/db>", sim:node("a"):member("b").private_data)
    local log = table.concat(sim:trace(), "\n")
    -- the node's own join, seen with itself known; the simulated wall
    -- clock starts at 2026-01-01
    assert.matches("a %[INFO%] script: self joined a 1767225600000", log)
    assert.are.equal(0, sim:stats("a").hooks.errors)
    os.execute("rm -rf " .. dir)
  end)
end)
