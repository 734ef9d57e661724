-- badinput_spec.lua: hostile and broken input is dropped, counted and
-- logged; the node keeps answering probes and its memory stays bounded.
local core = require "hearsay.core"
local simlib = require "hearsay.sim"

local function u8(...) return string.char(...) end

local ALIVE = core.encode{ type = "alive", Node = "ghost", Incarnation = 3,
                           Addr = "\10\7\7\7", Port = 7946,
                           Vsn = "\1\5\2\2\5\5" }

-- A cluster of three; n1 is the target. Returns sim and a function that
-- checks the target is still fine.
local function setup(seed)
  local sim = simlib.new{ events = true, seed = seed, trace = true, log = "debug" }
  sim:add(3)
  sim:run(4000)
  assert.is_true(sim:converged())
  local function still_fine()
    sim:run(8000)
    assert.is_true(sim:converged())
    for _, name in ipairs{ "n2", "n3" } do
      for _, e in ipairs(sim:events_of(name, "n1")) do
        assert.are_not.equal("suspect", e.event)
        assert.are_not.equal("dead", e.event)
      end
    end
    local st = sim:node("n1"):stats()
    assert.is_true(st.msgs_out.ack > 0)
  end
  return sim, still_fine
end

local function dropped(sim, name)
  local total = 0
  for _, v in pairs(sim:node(name or "n1"):stats().dropped) do
    total = total + v
  end
  return total
end

local function debug_lines(sim)
  local n = 0
  for _, l in ipairs(sim:trace()) do
    if l:match(" n1 %[DEBUG%] dropped ") then n = n + 1 end
  end
  return n
end

describe("bad input", function()
  it("drops every truncation of a real packet", function()
    local sim, still_fine = setup(1)
    local before = dropped(sim)
    local pkt = core.encode{ type = "has-crc", message = core.decode(ALIVE) }
    for len = 1, #pkt - 1 do sim:inject("n1", pkt:sub(1, len)) end
    -- every prefix is a CRC failure, a too-short frame or bad msgpack
    assert.is_true(dropped(sim) - before >= #pkt - 6)
    assert.is_nil(sim:node("n1"):member("ghost"))
    still_fine()
  end)

  it("survives thousands of random datagrams", function()
    local sim, still_fine = setup(2)
    local mem0 = core.mem_live()
    local rnd = 12345
    local function rand(n)
      rnd = (rnd * 1103515245 + 12345) % 2147483648
      return rnd % n
    end
    for _ = 1, 3000 do
      local len = rand(300)
      local t = {}
      for i = 1, len do t[i] = string.char(rand(256)) end
      -- half of them start with a valid message type
      if len > 0 and rand(2) == 0 then t[1] = string.char(rand(14)) end
      sim:inject("n1", table.concat(t))
    end
    assert.is_true(dropped(sim) > 1000)
    assert.is_true(debug_lines(sim) > 1000)
    still_fine()
    assert.is_true(core.mem_live() - mem0 < 500)
  end)

  it("rejects wrong msgpack types", function()
    local sim, still_fine = setup(3)
    local before = sim:node("n1"):stats().dropped.malformed
    for _, p in ipairs{
      u8(0, 0x81, 0xa4) .. "Node" .. u8(0xc3),          -- ping Node=true
      u8(0, 0x81, 0xa5) .. "SeqNo" .. u8(0xa1) .. "x",   -- SeqNo string
      u8(0, 0x81, 0xa5) .. "SeqNo" .. u8(0xff),          -- SeqNo -1
      u8(4, 0x81, 0xa4) .. "Addr" .. u8(0x7b),           -- Addr = 123
      u8(4, 0x81, 0xa4) .. "Port" .. u8(0xce, 1, 0, 0, 0), -- Port > 65535
      u8(2, 0x93, 1, 2, 3) .. "",                        -- array of ints?
      u8(3, 0xc1),                                       -- reserved byte
      u8(5, 0xa3) .. "abc",                              -- not a map
    } do
      sim:inject("n1", p)
    end
    assert.is_true(sim:node("n1"):stats().dropped.malformed - before >= 6)
    still_fine()
  end)

  it("refuses huge declared lengths without allocating them", function()
    local sim, still_fine = setup(4)
    local mem0 = core.mem_live()
    for _, p in ipairs{
      u8(0, 0xdf, 0xff, 0xff, 0xff, 0xff),               -- map32 of 4G
      u8(0, 0xdd, 0xff, 0xff, 0xff, 0xff),               -- array32
      u8(4, 0x81, 0xa4) .. "Node" .. u8(0xdb, 0xff, 0xff, 0xff, 0xff),
      u8(4, 0x81, 0xa4) .. "Meta" .. u8(0xc6, 0x7f, 0xff, 0xff, 0xff),
      u8(9, 0x82, 0xa4) .. "Algo" .. u8(0, 0xa3) .. "Buf"
        .. u8(0xdb, 0xff, 0xff, 0xff, 0xff),
    } do
      sim:inject("n1", p)
    end
    assert.is_true(sim:node("n1"):stats().dropped.truncated >= 4)
    assert.is_true(core.mem_live() - mem0 < 50)
    still_fine()
  end)

  it("handles compound messages whose counts lie", function()
    local sim, still_fine = setup(5)
    local st0 = sim:node("n1"):stats()
    -- 255 parts announced, two present: the length table is cut short.
    sim:inject("n1", u8(7, 255, 0, 5, 0, 5) .. "hello")
    -- two parts announced, the second longer than the packet: the first
    -- (an alive) is applied, the second counted as truncated.
    sim:inject("n1", u8(7, 2, 0, #ALIVE, 0x7f, 0xff) .. ALIVE)
    -- compounds nested past the limit
    local p = u8(0x0b, 0x80)
    for _ = 1, 10 do p = u8(7, 1, (#p >> 8) & 255, #p & 255) .. p end
    sim:inject("n1", p)
    local st = sim:node("n1"):stats()
    assert.are.equal(st0.dropped.malformed + 1, st.dropped.malformed)
    assert.are.equal(st0.dropped.truncated + 1, st.dropped.truncated)
    assert.are.equal(st0.dropped.too_big + 1, st.dropped.too_big)
    assert.are.equal("alive", sim:node("n1"):state_of("ghost"))
    still_fine()
  end)

  it("stops LZW streams that expand without bound", function()
    local sim, still_fine = setup(6)
    local mem0 = core.mem_live()
    -- 64 MiB of zeros in a few KiB: a compress message packet
    local bomb = core.lzw_compress(string.rep("\0", 8 << 20))
    assert.is_true(#bomb < 20000)
    -- a compress message whose Buf is the bomb
    local pkt = u8(9, 0x82, 0xa4) .. "Algo" .. u8(0, 0xa3) .. "Buf"
      .. u8(0xda, #bomb >> 8, #bomb & 255) .. bomb
    sim:inject("n1", pkt)
    assert.are.equal(1, sim:node("n1"):stats().dropped.too_big)
    assert.is_true(core.mem_live() - mem0 < 50)
    still_fine()
  end)

  it("refuses a push/pull that claims a billion nodes", function()
    local sim, still_fine = setup(7)
    local hdr = core.encode({ type = "push-pull", Join = true,
                              states = {} }, "stream")
    -- Nodes: 0 -> 1e9 (uint32 form)
    hdr = hdr:gsub("Nodes" .. u8(0), "Nodes" .. u8(0xce, 0x3b, 0x9a, 0xca,
                                                   0x00))
    sim:inject_stream("n1", hdr .. string.rep("\x80", 64))
    sim:run(100)
    assert.are.equal(1, sim:node("n1"):stats().dropped.too_big)
    still_fine()
  end)

  it("times out a stream that never finishes", function()
    local sim, still_fine = setup(8)
    local full = core.encode({ type = "push-pull", Join = false,
      states = { { Name = "x", Addr = "\10\1\1\1", Port = 1,
                   Vsn = "\1\5\2\2\5\5" } } }, "stream")
    for _ = 1, 5 do
      sim:inject_stream("n1", full:sub(1, #full - 3)) -- never completed
    end
    sim:run(9000)
    assert.are.equal(0, sim:node("n1"):stats().dropped.stream_timeout)
    sim:run(2000) -- tcp_timeout (10s) has passed
    assert.are.equal(5, sim:node("n1"):stats().dropped.stream_timeout)
    assert.is_nil(sim:node("n1"):member("x"))
    still_fine()
  end)

  it("refuses streams beyond max_inbound_streams", function()
    local sim = simlib.new{ events = true, seed = 9, max_inbound_streams = 4 }
    sim:add(3)
    sim:run(3000)
    for _ = 1, 10 do sim:inject_stream("n1", "\6") end
    assert.are.equal(6, sim:node("n1"):stats().dropped.stream_limit)
    sim:run(11000)
    -- the slots come back once the idle ones time out
    assert.is_true(sim:converged())
  end)

  it("answers garbage on a stream with an error and closes it", function()
    local sim, still_fine = setup(10)
    sim:inject_stream("n1", u8(0x42, 1, 2, 3), true)
    sim:inject_stream("n1", u8(0x06, 0xc1), true)
    sim:run(100)
    local d = sim:node("n1"):stats().dropped
    assert.are.equal(1, d.unknown_type)
    assert.are.equal(1, d.malformed)
    still_fine()
  end)
end)

-- ===== Growth of the member table =====

-- A push/pull listing n invented members (alive, at unreachable
-- addresses), as a stranger would send it.
local function invented_sync(n, prefix)
  local states = {}
  for i = 1, n do
    states[i] = { Name = prefix .. i, Addr = u8(10, 9, (i >> 8) & 255, i & 255),
                  Port = 7946, Incarnation = 1, State = 0, Vsn = "\1\5\2\2\5\5" }
  end
  return core.encode({ type = "push-pull", Join = false, states = states }, "stream")
end

local function invented_alive(name)
  return core.encode{ type = "alive", Node = name, Incarnation = 1,
                      Addr = "\10\9\255\1", Port = 7946, Vsn = "\1\5\2\2\5\5" }
end

-- Members a node knows, in any state.
local function known(node)
  local m = node:stats().members
  return m.alive + m.suspect + m.dead + m.left
end

describe("member table growth", function()
  local CAP, RATE = 32, 1 -- max_new_members, new_member_rate

  it("takes at most max_new_members of a stranger's 20,000, and a crash is found as the cap allows",
     function()
    local N = 8
    local sim = simlib.new{ seed = 11, profile = "lan" }
    sim:add(N)
    assert.is_true(sim:run_until(function() return sim:converged() end, 10000, 100))
    -- The stranger syncs with every node.
    local sync = invented_sync(20000, "fake")
    for i = 1, N do sim:inject_stream("n" .. i, sync, true) end
    sim:run(100)
    for i = 1, N do
      local nd = sim:node("n" .. i)
      assert.is_true(known(nd) <= N + CAP)
      assert.are.equal(20000 - (known(nd) - N), nd:stats().dropped.member_limit)
    end
    -- A real crash right after, found within the protocol's bound for a
    -- table of N + CAP members: every node probes each member it knows
    -- once per round of at most N - 1 + CAP probes, each probe interval
    -- stretched at most awareness_max_multiplier (8) times by Lifeguard
    -- (unanswering members drive it up), so within two rounds of the kill
    -- a node suspects the victim; the suspicion lasts at most
    -- suspicion_max_timeout_mult (6) * suspicion_mult (4) *
    -- log10(members) probe intervals; then the death is gossiped (5 s is
    -- ample for 8 nodes). With the 20,000 taken whole the crash goes
    -- unseen for more than an hour.
    local PI, M = 1000, 8
    local bound = 2 * (N - 1 + CAP) * PI * M
      + math.ceil(6 * 4 * math.log(N + CAP, 10) * PI) + 5000
    local victim = "n" .. N
    sim:kill(victim)
    local ok = sim:run_until(function()
      return sim:count_seeing(victim, "alive") + sim:count_seeing(victim, "suspect") == 0
    end, bound, 100)
    assert.is_true(ok)
  end)

  it("holds the stranger's gossip to new_member_rate once its push/pull used max_new_members",
     function()
    local sim = simlib.new{ seed = 12, profile = "lan" }
    sim:add(5)
    assert.is_true(sim:run_until(function() return sim:converged() end, 10000, 100))
    local n1 = sim:node("n1")
    sim:inject_stream("n1", invented_sync(20000, "fake"), true)
    sim:run(10)
    assert.are.equal(5 + CAP, known(n1))
    -- Then the refused ones by gossip from the same address, 100 a
    -- second for 10 s: the bucket refills at RATE a second.
    for i = 1, 1000 do
      sim:inject("n1", invented_alive("fake" .. (CAP + i)), "10.255.255.254:7946")
      sim:run(10)
    end
    local took = known(n1) - 5 - CAP
    assert.is_true(took <= RATE * 10 + 1, took)
    assert.is_true(took >= RATE * 10 - 1, took)
    assert.are.equal(20000 - CAP + 1000 - took, n1:stats().dropped.member_limit)
    -- Another address has a budget of its own.
    local before = known(n1)
    for i = 1, 200 do
      sim:inject("n1", invented_alive("other" .. i), "10.255.255.253:7946")
    end
    assert.are.equal(before + CAP, known(n1))
  end)

  it("lets a node joining a cluster larger than max_new_members learn all of it at once",
     function()
    local sim = simlib.new{ seed = 13, profile = "lan" }
    sim:add(200)
    assert.is_true(sim:run_until(function() return sim:converged() end, 60000, 500))
    sim:add({ "late" }) -- joins n1
    sim:run(20)
    local late = sim:node("late")
    assert.are.equal(201, known(late))
    assert.are.equal(0, late:stats().dropped.member_limit)
    assert.is_true(sim:run_until(function() return sim:converged() end, 10000, 100))
  end)
end)
