-- swim_spec.lua: SWIM and Lifeguard behaviour of the protocol core, exact
-- under the simulated clock.
local core = require "hearsay.core"
local simlib = require "hearsay.sim"

local simtools = require "simtools"
local first, count = simtools.first, simtools.count

local function parse_trace(sim) return simtools.parse_trace(sim:trace()) end

describe("SWIM failure detection", function()
  it("declares a crashed node dead exactly the minimum suspicion timeout "
     .. "after suspecting it when no confirmations can come", function()
    -- 3 nodes: k = suspicion_mult - 2 = 2 > n - 2 = 1, so k = 0 and the
    -- timer starts at min = 4 * max(1, log10(3)) * 1s = 4s.
    local sim = simlib.new{ events = true, seed = 7 }
    sim:add(3)
    sim:run(5000)
    assert.is_true(sim:converged())
    sim:kill("n3")
    local killed = sim:now()
    sim:run(20000)
    for _, name in ipairs{ "n1", "n2" } do
      local ev = sim:events_of(name, "n3")
      local s, d = first(ev, "suspect"), first(ev, "dead")
      assert.is_not_nil(s, name .. " never suspected n3")
      assert.is_not_nil(d, name .. " never declared n3 dead")
      -- Whoever suspects first starts the 4s timer; a node that first
      -- hears the suspicion by gossip starts its own at that moment.
      assert.are.equal(4000, d.t - s.t)
      assert.is_true(s.t - killed <= 4000)
    end
  end)

  it("shortens the suspicion with each independent confirmation, as "
     .. "Lifeguard's formula says", function()
    -- 6 nodes: k = 2, min = 4s, max = 24s.
    local sim = simlib.new{ events = true, seed = 11, trace = true, log = "debug" }
    sim:add(6)
    sim:run(8000)
    assert.is_true(sim:converged())
    sim:kill("n6")
    sim:run(40000)
    local trace = parse_trace(sim)
    local checked, own = 0, 0
    for _, name in ipairs{ "n1", "n2", "n3", "n4", "n5" } do
      local ev = sim:events_of(name, "n6")
      local s, d = first(ev, "suspect"), first(ev, "dead")
      assert.is_not_nil(s)
      assert.is_not_nil(d)
      -- Replay the confirmations this node saw and predict the moment of
      -- death: max(start + remaining(c), time of the last confirmation).
      local deadline, self_marked = s.t + 24000, false
      for _, l in ipairs(trace) do
        if l.node == name and l.t <= d.t then
          local c = l.msg:match("^suspicion confirmed: member=n6 .* "
            .. "confirmations=(%d+)/2")
          if c then
            local left = core.suspicion_remaining(tonumber(c), 2, 0, 4000,
                                                  24000)
            deadline = math.max(s.t + left, l.t)
          end
          if l.msg:match("^marking member failed: member=n6 ") then
            self_marked = true
          end
        end
      end
      if self_marked then
        -- Its own timer fired: exactly at the predicted moment.
        assert.are.equal(deadline, d.t)
        own = own + 1
      else
        -- It heard of the death by gossip first: no later than that.
        assert.is_true(d.t <= deadline)
      end
      if d.t - s.t < 24000 then checked = checked + 1 end
    end
    assert.is_true(own > 0)
    -- Confirmations did shorten the timeout somewhere.
    assert.is_true(checked > 0)
  end)

  it("lets a frozen node refute its suspicion when it thaws", function()
    local sim = simlib.new{ events = true, seed = 3 }
    sim:add(4)
    sim:run(5000)
    sim:pause("n4", 3500) -- like SIGSTOP then SIGCONT
    sim:run(15000)
    assert.is_true(sim:converged())
    local suspected = 0
    for _, name in ipairs{ "n1", "n2", "n3" } do
      local ev = sim:events_of(name, "n4")
      assert.are.equal(0, count(ev, "dead"))
      if first(ev, "suspect") then
        suspected = suspected + 1
        local a = first(ev, "alive")
        assert.is_not_nil(a, name .. " saw no refutation")
        assert.is_true(a.incarnation >= 2)
      end
    end
    assert.is_true(suspected > 0)
    assert.is_true(sim:node("n4"):stats().refutations >= 1)
    assert.are.equal("alive", sim:node("n1"):state_of("n4"))
  end)

  it("probes every other member once per round, in shuffled order",
     function()
    local sim = simlib.new{ events = true, seed = 5, trace = true, log = "debug" }
    sim:add(5)
    sim:run(30000)
    local probes = {}
    for _, l in ipairs(parse_trace(sim)) do
      local m = l.node == "n1" and l.msg:match("^probe: member=(%S+)")
      if m then probes[#probes + 1] = m end
    end
    assert.is_true(#probes >= 20)
    -- Skip the first round (members were still arriving).
    local rounds = {}
    for i = 5, 16, 4 do
      local seen = {}
      for j = i, i + 3 do seen[probes[j]] = (seen[probes[j]] or 0) + 1 end
      for _, name in ipairs{ "n2", "n3", "n4", "n5" } do
        assert.are.equal(1, seen[name], "round at probe " .. i)
      end
      rounds[#rounds + 1] = table.concat(probes, ",", i, i + 3)
    end
    -- Shuffled at each wrap: not the same order every round.
    assert.is_false(rounds[1] == rounds[2] and rounds[2] == rounds[3])
  end)

  it("keeps a node alive through indirect probes when the direct path is "
     .. "broken", function()
    local sim = simlib.new{ events = true, seed = 9, disable_tcp_pings = true }
    sim:add(3)
    sim:run(3000)
    sim:block("n1", "n3", "udp")
    sim:block("n3", "n1", "udp")
    sim:run(30000)
    for _, name in ipairs{ "n1", "n2", "n3" } do
      assert.are.equal(0, count(sim:events_of(name), "suspect"))
    end
    assert.is_true(sim:node("n1"):stats().indirect_probes > 0)
  end)

  it("falls back to a TCP ping when UDP to a node is blocked everywhere",
     function()
    local sim = simlib.new{ events = true, seed = 9 }
    sim:add(3)
    sim:run(3000)
    for _, pair in ipairs{ { "n1", "n3" }, { "n3", "n1" }, { "n2", "n3" },
                           { "n3", "n2" } } do
      sim:block(pair[1], pair[2], "udp")
    end
    sim:run(30000)
    for _, name in ipairs{ "n1", "n2" } do
      assert.are.equal(0, count(sim:events_of(name, "n3"), "suspect"))
    end
    assert.is_true(sim:node("n1"):stats().tcp_ping_rescues > 0)
  end)

  it("sends no TCP ping to the nodes disable_tcp_pings_for_node names",
     function()
    local function run(off)
      local sim = simlib.new{ events = true, seed = 9,
                              disable_tcp_pings_for_node = off }
      sim:add(3)
      sim:run(3000)
      for _, pair in ipairs{ { "n1", "n3" }, { "n3", "n1" }, { "n2", "n3" },
                             { "n3", "n2" } } do
        sim:block(pair[1], pair[2], "udp")
      end
      sim:run(30000)
      return sim
    end
    -- another node named: n3 is still rescued by TCP
    local sim = run({ "n2" })
    assert.is_true(sim:node("n1"):stats().tcp_ping_rescues > 0)
    assert.are.equal(0, count(sim:events_of("n1", "n3"), "suspect"))
    -- n3 named: its failed probes stay failed, and it is suspected
    sim = run({ "n3" })
    for _, name in ipairs{ "n1", "n2" } do
      assert.are.equal(0, sim:node(name):stats().tcp_pings)
      assert.is_not_nil(first(sim:events_of(name, "n3"), "suspect"))
    end
  end)

  it("suspects a node whose probes fail everywhere, with nacks from the "
     .. "relays", function()
    local sim = simlib.new{ events = true, seed = 4, disable_tcp_pings = true }
    sim:add(4)
    sim:run(3000)
    sim:block("n4", "n1", "udp")
    sim:block("n4", "n2", "udp")
    sim:block("n4", "n3", "udp")
    sim:run(15000)
    assert.is_not_nil(first(sim:events_of("n1", "n4"), "suspect"))
    local st = sim:node("n1"):stats()
    assert.is_true(st.indirect_probes > 0)
    assert.is_true(st.probes_failed > 0)
  end)
end)

describe("Lifeguard awareness", function()
  it("raises the health score while our own probes fail and lowers it "
     .. "again once they succeed", function()
    local sim = simlib.new{ events = true, seed = 2, trace = true, log = "debug",
                            disable_tcp_pings = true }
    sim:add(6)
    sim:run(3000)
    assert.are.equal(0, sim:node("n1"):health())
    -- n1 hears nothing by UDP: acks and the relays' nacks are all lost,
    -- and each failed probe costs it the nacks it missed.
    for i = 2, 6 do sim:block("n" .. i, "n1", "udp") end
    local ok = sim:run_until(function()
      return sim:node("n1"):health() == 7
    end, 120000, 100)
    assert.is_true(ok, "health never reached awareness_max_multiplier-1")
    -- At score 7 a probe lasts 8 intervals: probe starts are 8s apart.
    local since = sim:now()
    sim:run(40000)
    local starts = {}
    for _, l in ipairs(parse_trace(sim)) do
      if l.node == "n1" and l.t > since and l.msg:match("^probe: ") then
        starts[#starts + 1] = l.t
      end
    end
    assert.is_true(#starts >= 3)
    for i = 2, #starts do
      assert.are.equal(8000, starts[i] - starts[i - 1])
    end
    sim:heal()
    ok = sim:run_until(function()
      return sim:node("n1"):health() == 0
    end, 120000, 100)
    assert.is_true(ok, "health never recovered")
  end)
end)

describe("membership changes", function()
  it("marks a graceful leave as left everywhere", function()
    local sim = simlib.new{ events = true, seed = 8 }
    sim:add(4)
    sim:run(5000)
    assert.is_true(sim:leave("n2", 5000))
    sim:run(3000)
    for _, name in ipairs{ "n1", "n3", "n4" } do
      assert.are.equal("left", sim:node(name):state_of("n2"))
      assert.are.equal(1, count(sim:events_of(name, "n2"), "left"))
      assert.are.equal(0, count(sim:events_of(name, "n2"), "dead"))
    end
  end)

  it("brings a crashed node back under the same name", function()
    local sim = simlib.new{ events = true, seed = 6 }
    sim:add(5)
    sim:run(5000)
    sim:kill("n5")
    sim:run(30000)
    for _, name in ipairs{ "n1", "n2", "n3", "n4" } do
      assert.are.equal("dead", sim:node(name):state_of("n5"))
    end
    sim:restart("n5")
    sim:run(5000)
    assert.is_true(sim:converged())
    -- The old incarnation was beaten by refutation.
    assert.is_true(sim:node("n1"):member("n5").incarnation >= 2)
  end)

  it("removes a dead node after gossip_to_the_dead_time", function()
    local sim = simlib.new{ events = true, seed = 12, gossip_to_the_dead_time = "10s" }
    sim:add(3)
    sim:run(4000)
    sim:kill("n3")
    local ok = sim:run_until(function()
      return sim:node("n1"):state_of("n3") == "dead"
    end, 30000)
    assert.is_true(ok)
    sim:run(9000)
    assert.are.equal("dead", sim:node("n1"):state_of("n3"))
    -- Reaped at the first probe-list wrap after the 10s (2 members to
    -- probe, so a wrap at least every 2s).
    sim:run(4000)
    assert.is_nil(sim:node("n1"):member("n3"))
  end)

  it("stops and restarts the heartbeat (pekonode's Stop/Start)", function()
    local sim = simlib.new{ events = true, seed = 10 }
    sim:add(3)
    sim:run(4000)
    sim:node("n3"):stop()
    local ok = sim:run_until(function()
      return sim:node("n1"):state_of("n3") == "dead"
    end, 60000)
    assert.is_true(ok)
    assert.is_true(sim:node("n3"):stats().dropped.paused > 0)
    sim:node("n3"):start()
    ok = sim:run_until(function() return sim:converged() end, 10000)
    assert.is_true(ok)
  end)
end)

describe("protocol versions", function()
  it("refuses to merge with a node whose delegate versions do not fit the "
     .. "cluster's", function()
    local sim = simlib.new{ events = true, seed = 13, trace = true }
    sim:add(2) -- Serf-style delegate versions 2/5/5 (the defaults)
    sim:add({ "plain" }, { delegate_protocol_min = 0,
                           delegate_protocol_max = 0,
                           delegate_protocol_version = 0 })
    sim:run(3000)
    assert.is_nil(sim:node("n1"):member("plain"))
    assert.is_nil(sim:node("plain"):member("n1"))
    local refused = false
    for _, l in ipairs(sim:trace()) do
      if l:match("delegate protocol version 0 is incompatible") then
        refused = true
      end
    end
    assert.is_true(refused)
  end)
end)

describe("name conflicts", function()
  local function alive_for(name, ip, inc)
    return core.encode{ type = "alive", Node = name, Incarnation = inc,
                        Addr = ip, Port = 7946, Vsn = "\1\5\2\2\5\5" }
  end

  it("refuses another address for a live name and reports a conflict",
     function()
    local sim = simlib.new{ events = true, seed = 1 }
    sim:add(3)
    sim:run(3000)
    sim:inject("n1", alive_for("n2", "\10\9\9\9", 50))
    assert.are.equal(1, sim:node("n1"):stats().conflicts)
    local m = sim:node("n1"):member("n2")
    assert.are.equal("10.0.0.2", m.addr)
    assert.is_true(m.incarnation < 50)
  end)

  it("lets a dead name move after dead_node_reclaim_time", function()
    for _, case in ipairs{ { reclaim = "0", moves = false },
                           { reclaim = "5s", moves = true } } do
      local sim = simlib.new{ events = true, seed = 1,
                              dead_node_reclaim_time = case.reclaim }
      sim:add(3)
      sim:run(3000)
      sim:kill("n3")
      assert.is_true(sim:run_until(function()
        return sim:node("n1"):state_of("n3") == "dead"
      end, 30000))
      sim:run(6000)
      sim:inject("n1", alive_for("n3", "\10\9\9\9", 9))
      local m = sim:node("n1"):member("n3")
      assert.are.equal(case.moves and "10.9.9.9" or "10.0.0.3", m.addr)
      assert.are.equal(case.moves and "alive" or "dead", m.state)
    end
  end)
end)

describe("protocol math", function()
  it("computes memberlist's suspicion timeouts", function()
    assert.are.equal(4000, core.suspicion_timeout(4, 1, 1000))
    assert.are.equal(4000, core.suspicion_timeout(4, 10, 1000))
    assert.are.equal(6072, core.suspicion_timeout(4, 33, 1000))
    assert.are.equal(8000, core.suspicion_timeout(4, 100, 1000))
    assert.are.equal(12000, core.suspicion_timeout(4, 1000, 1000))
    assert.are.equal(11381, core.suspicion_remaining(1, 2, 0, 4000, 24000))
    assert.are.equal(4000, core.suspicion_remaining(2, 2, 0, 4000, 24000))
    assert.are.equal(-1000, core.suspicion_remaining(2, 2, 5000, 4000,
                                                     24000))
  end)

  it("computes the retransmit limit", function()
    for n, want in pairs{ [1] = 4, [9] = 4, [10] = 8, [99] = 8, [100] = 12,
                          [999] = 12, [1000] = 16 } do
      assert.are.equal(want, core.retransmit_limit(4, n), "n=" .. n)
    end
  end)

  it("scales the push/pull interval with the cluster size", function()
    for n, mult in pairs{ [1] = 1, [32] = 1, [33] = 2, [64] = 2, [65] = 3,
                          [128] = 3, [1000] = 6 } do
      assert.are.equal(30000 * mult, core.pushpull_scale(30000, n),
                       "n=" .. n)
    end
  end)
end)
