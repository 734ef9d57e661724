-- metadata_spec.lua: the cluster metadata store: convergence, partitions,
-- clocks, tombstones, large values, joins, anti-entropy cost. Simulated
-- (exact, virtual time) and in-process on loopback (the Lua API, hooks).
local simlib = require "hearsay.sim"
local hearsay = require "hearsay"

local function all_read(sim, names, key, value)
  for _, n in ipairs(names) do
    if sim:node(n):read(key) ~= value then return false end
  end
  return true
end

describe("cluster metadata (simulated)", function()
  it("spreads a write on one node to every node", function()
    local sim = simlib.new{ seed = 21 }
    local names = sim:add(10)
    sim:run(3000)
    assert.is_true(sim:node("n3"):publish("config/app", "v1"))
    local ok, took = sim:run_until(function()
      return all_read(sim, names, "config/app", "v1")
    end, 5000)
    assert.is_true(ok)
    assert.is_true(took < 2000) -- gossip, not the 30s anti-entropy
    local _, info = sim:node("n7"):read("config/app")
    assert.are.equal("n3", info.origin)
    local _, info3 = sim:node("n3"):read("config/app")
    assert.are.equal(info3.version, info.version)
  end)

  it("converges on one value when nodes write a key at once", function()
    local sim = simlib.new{ seed = 22 }
    local names = sim:add(5)
    sim:run(3000)
    -- the same instant, the same clock: the higher origin name wins
    sim:node("n1"):publish("k", "from n1")
    sim:node("n4"):publish("k", "from n4")
    sim:node("n2"):publish("k", "from n2")
    sim:run(5000)
    assert.is_true(all_read(sim, names, "k", "from n4"))
    -- a later write wins over earlier ones, wherever it is made
    sim:run(10)
    sim:node("n1"):publish("k", "later")
    sim:run(3000)
    assert.is_true(all_read(sim, names, "k", "later"))
  end)

  it("heals a partition with writes on both sides into one value per key",
     function()
    local sim = simlib.new{ seed = 23, profile = "local" }
    local names = sim:add(6)
    sim:run(3000)
    sim:partition({ "n1", "n2", "n3" }, { "n4", "n5", "n6" })
    sim:run(1000)
    sim:node("n1"):publish("shared", "left early")
    sim:node("n2"):publish("only-left", "L")
    sim:run(500)
    sim:node("n5"):publish("shared", "right later") -- the winner
    sim:node("n6"):publish("only-right", "R")
    sim:run(20000)
    assert.is_nil(sim:node("n1"):read("only-right"))
    sim:heal()
    local ok = sim:run_until(function()
      return all_read(sim, names, "shared", "right later")
        and all_read(sim, names, "only-left", "L")
        and all_read(sim, names, "only-right", "R")
    end, 120000, 100)
    assert.is_true(ok)
  end)

  it("puts off a version from a clock far ahead until ours catches up",
     function()
    local sim = simlib.new{ seed = 24, profile = "local",
                            metadata_max_skew = "1m" }
    local names = sim:add(3)
    sim:run(2000)
    sim:node("n2"):clock(10 * 60 * 1000) -- ten minutes fast
    sim:node("n2"):publish("k", "from the future")
    sim:run(5000)
    assert.is_nil(sim:node("n1"):read("k"))
    assert.is_true(sim:stats("n1").metadata.refused_future > 0)
    -- a write made here meanwhile is kept
    sim:node("n1"):publish("k2", "now")
    sim:run(2000)
    assert.are.equal("now", sim:node("n2"):read("k2"))
    -- nine minutes on, n2 is less than a minute ahead: accepted
    sim:run(9 * 60 * 1000 + 30000)
    assert.is_true(all_read(sim, names, "k", "from the future"))
    -- and a write made after that wins over it (the clock moved on)
    sim:node("n3"):publish("k", "after")
    sim:run(3000)
    assert.is_true(all_read(sim, names, "k", "after"))
  end)

  it("deletes with tombstones, collected after metadata_tombstone_ttl",
     function()
    local sim = simlib.new{ seed = 25, profile = "local",
                            metadata_tombstone_ttl = "30s" }
    local names = sim:add(4)
    sim:run(2000)
    sim:node("n1"):publish("gone", "soon")
    assert.is_true(sim:run_until(function()
      return all_read(sim, names, "gone", "soon")
    end, 20000))
    sim:node("n3"):delete("gone")
    -- gossip, or at worst the next anti-entropy round (local: 15s)
    assert.is_true(sim:run_until(function()
      return all_read(sim, names, "gone", nil)
    end, 20000))
    assert.are.equal(1, sim:stats("n1").metadata.tombstones)
    sim:run(45000)
    for _, n in ipairs(names) do
      assert.are.equal(0, sim:stats(n).metadata.tombstones)
      assert.is_nil(sim:node(n):read("gone"))
    end
  end)

  it("announces a value too large for a packet and lets nodes fetch it",
     function()
    local sim = simlib.new{ seed = 26 }
    local names = sim:add(8)
    sim:run(3000)
    local big = string.rep("0123456789abcdef", 32 * 1024) -- 512 KiB
    assert.is_true(sim:node("n2"):publish("big", big))
    local ok = sim:run_until(function()
      return all_read(sim, names, "big", big)
    end, 10000)
    assert.is_true(ok)
    local fetches = 0
    for _, n in ipairs(names) do
      fetches = fetches + sim:stats(n).metadata.fetches
    end
    assert.is_true(fetches >= 7)
  end)

  it("gives a joining node the whole store, and syncs in-sync nodes with a "
     .. "digest only", function()
    local sim = simlib.new{ seed = 27, profile = "local" }
    sim:add(2)
    for i = 1, 10000 do
      sim:node("n1"):publish(string.format("key/%05d", i), "value " .. i)
    end
    local ok = sim:run_until(function()
      return sim:node("n2"):nkeys() == 10000
    end, 120000, 100)
    assert.is_true(ok)
    sim:run(30000) -- nothing left in flight: no gossip can help n3
    -- a new node gets them all at join: its join push/pull (from an
    -- empty store) and the sync stream it leads to, within a second
    sim:add({ "n3" })
    local took
    ok, took = sim:run_until(function()
      return sim:node("n3"):nkeys() == 10000
    end, 30000, 10)
    assert.is_true(ok)
    assert.is_true(took < 1000, tostring(took))
    -- in sync: measure what the push/pull rounds of a minute cost
    sim:run(60000)
    local before, b_pp = sim:stats("n1").metadata, sim:stats("n1")
    sim:run(60000)
    local after, a_pp = sim:stats("n1").metadata, sim:stats("n1")
    local digest = after.digest_bytes_out - before.digest_bytes_out
    local synced = after.sync_bytes_out - before.sync_bytes_out
    local rounds = (a_pp.push_pulls_out + a_pp.push_pulls_in)
      - (b_pp.push_pulls_out + b_pp.push_pulls_in)
    print(string.format("\n  in-sync anti-entropy, 10000 keys: %d push/pulls "
      .. "in 60s, %d bytes of digest each, %d bytes of entries", rounds,
      rounds > 0 and digest // rounds or 0, synced))
    assert.is_true(rounds > 0)
    assert.are.equal(0, synced)
    -- 256 buckets of 8 bytes, whatever the store's size
    assert.is_true(digest // rounds <= 2100)
  end)
end)

describe("cluster metadata at scale (simulated)", function()
  -- n2 lacks `missing` keys that n1 holds among `keys`; returns the bytes
  -- of store sections, sync requests and answers of the push/pull that
  -- repairs them (both ways, both nodes).
  local function repair(keys, missing)
    local sim = simlib.new{ seed = 28, profile = "local",
                            push_pull_interval = "10m" }
    sim:add({ "n1" })
    for i = 1, keys - missing do
      sim:node("n1"):publish(string.format("key/%06d", i), "value " .. i)
    end
    sim:add({ "n2" }) -- its join brings the whole store
    assert.is_true(sim:run_until(function()
      return sim:node("n2"):nkeys() == keys - missing and sim:queued() == 0
    end, 120000, 100))
    -- the last ones: their gossip to n2 is lost
    sim:block("n1", "n2", "udp")
    for i = keys - missing + 1, keys do
      sim:node("n1"):publish(string.format("key/%06d", i), "value " .. i)
    end
    assert.is_true(sim:run_until(function() return sim:queued() == 0 end,
                                 60000, 100)) -- n1 gave up gossiping them
    sim:run(5000)
    sim:heal()
    sim:run(1000)
    assert.are.equal(keys - missing, sim:node("n2"):nkeys())
    local function bytes()
      local t = 0
      for _, n in ipairs({ "n1", "n2" }) do
        local m = sim:stats(n).metadata
        t = t + m.sync_bytes_out + m.digest_bytes_out
      end
      return t
    end
    local before = bytes()
    sim:node("n2"):join(sim:addr("n1")) -- a push/pull n2 leads
    assert.is_true(sim:run_until(function()
      return sim:node("n2"):nkeys() == keys
    end, 10000, 10))
    sim:run(5000)
    return bytes() - before
  end

  it("repairs what differs at a cost that does not grow with the store",
     function()
    local small, large = repair(2000, 100), repair(20000, 100)
    print(string.format("\n  repair of 100 missing keys: %d bytes among "
      .. "2,000 keys, %d among 20,000", small, large))
    -- the hash tree is one level deeper; before it, every bucket that
    -- differed was listed whole, ten times the bytes for ten times the keys
    assert.is_true(large < 2 * small, large .. " vs " .. small)
  end)

  it("lists keys in order, by prefix, among many", function()
    local sim = simlib.new{ seed = 29, profile = "local" }
    sim:add({ "n1" })
    local node = sim:node("n1")
    local want = {}
    for i = 1, 3000 do
      local k = string.format("%s/%d", ({ "app", "apps", "ap" })[i % 3 + 1],
                              (i * 7919) % 10007)
      node:publish(k, "v")
      if k:sub(1, 4) == "app/" then want[#want + 1] = k end
    end
    node:publish("app", "the prefix alone is not under it")
    node:delete(want[1])
    table.remove(want, 1)
    table.sort(want)
    assert.are.same(want, node:keys("app/"))
    assert.are.equal(#want, node:nkeys("app/"))
    local all = node:keys()
    assert.are.equal(3000, #all)
    for i = 2, #all do assert.is_true(all[i - 1] < all[i]) end
  end)
end)

describe("deleted keys and the tombstone horizon (simulated)", function()
  local function reads(sim, names, key, value)
    for _, n in ipairs(names) do
      if sim:node(n):read(key) ~= value then return false end
    end
    return true
  end

  it("keeps a key deleted when a node that missed the delete comes back "
     .. "after its tombstone was collected", function()
    local sim = simlib.new{ seed = 31, profile = "local",
                            metadata_tombstone_ttl = "30s" }
    local names = sim:add(4)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 20000, 100))
    sim:node("n1"):publish("doomed", "old")
    sim:node("n1"):publish("kept", "old too")
    assert.is_true(sim:run_until(function()
      return reads(sim, names, "doomed", "old")
        and reads(sim, names, "kept", "old too")
    end, 20000))
    sim:run(20000) -- a push/pull or two: every store complete
    -- n4 stops; the key is deleted; the tombstone goes everywhere else
    sim:pause("n4", 120000)
    sim:run(1000)
    sim:node("n2"):delete("doomed")
    sim:run(90000)
    for _, n in ipairs({ "n1", "n2", "n3" }) do
      local m = sim:stats(n).metadata
      assert.are.equal(0, m.tombstones, n)
      assert.are.equal(1, m.tombstones_collected, n)
      assert.is_nil(sim:node(n):read("doomed"))
    end
    -- n4 wakes with its old copy; it does not bring the key back
    assert.is_true(sim:run_until(function() return not sim:paused("n4") end,
                                 60000, 100))
    assert.is_true(sim:run_until(function()
      return sim:converged() and reads(sim, names, "doomed", nil)
    end, 120000, 100))
    sim:run(60000) -- and it stays so through the push/pulls that follow
    assert.is_true(reads(sim, names, "doomed", nil))
    assert.is_true(reads(sim, names, "kept", "old too"))
    assert.are.equal(1, sim:stats("n4").metadata.dropped_horizon)
    for _, n in ipairs({ "n1", "n2", "n3" }) do
      assert.is_true(sim:stats(n).metadata.horizon > 0, n)
    end
    -- a fresh node and a restarted one get the old key that was kept
    sim:add({ "n5" })
    sim:restart("n3")
    assert.is_true(sim:run_until(function()
      return reads(sim, { "n3", "n5" }, "kept", "old too")
    end, 30000))
    assert.is_nil(sim:node("n5"):read("doomed"))
    assert.are.equal(0, sim:stats("n5").metadata.refused_horizon)
  end)

  it("never refuses an old key to a new node that collected a newer "
     .. "tombstone before its first sync ended", function()
    -- Short TTL, a slow link: n4's first sync takes a minute, while the
    -- delete of `x` reaches it by gossip in a second and is collected at
    -- its next tick. `kept` is older than that tombstone, and live.
    local sim = simlib.new{ seed = 33, profile = "local",
                            metadata_tombstone_ttl = "2s",
                            push_pull_interval = "10m", tcp_timeout = "60s" }
    sim:add({ "n1" })
    sim:node("n1"):publish("kept", "old and live")
    sim:run(10)
    sim:node("n1"):publish("x", "deleted soon")
    for i = 1, 2000 do
      sim:node("n1"):publish(string.format("fill/%05d", i), "some value")
    end
    sim:add({ "n2", "n3" })
    assert.is_true(sim:run_until(function()
      return sim:node("n2"):nkeys() == 2002 and sim:node("n3"):nkeys() == 2002
        and sim:queued() == 0
    end, 120000, 100))
    sim:add({ "n4" })
    sim:link("n1", "n4", { latency = 1, bandwidth = 1000 })
    sim:run(1000)
    sim:node("n2"):delete("x")
    local corner = false
    assert.is_true(sim:run_until(function()
      local m = sim:stats("n4").metadata
      if m.tombstones_collected > 0 and not sim:node("n4"):read("kept") then
        corner = true
      end
      return sim:node("n4"):nkeys() == 2001
    end, 300000, 100))
    assert.is_true(corner) -- the tombstone went first
    assert.is_true(reads(sim, { "n1", "n2", "n3", "n4" }, "kept",
                         "old and live"))
    assert.are.equal(0, sim:stats("n4").metadata.refused_horizon)
    -- once synced, its horizon counts
    assert.is_true(sim:stats("n4").metadata.horizon > 0)
  end)
end)

describe("cluster metadata from Lua #net", function()
  local nodes = {}
  after_each(function()
    for _, n in ipairs(nodes) do n:close() end
    nodes = {}
  end)

  local function node(name, opts)
    opts = opts or {}
    opts.name = name
    opts.bind = "127.0.8." .. (#nodes + 1) .. ":7946"
    opts.profile = "local"
    opts.log_level = "off"
    if #nodes > 0 then opts.join = { nodes[1]:address() } end
    local n = assert(hearsay.node(opts))
    nodes[#nodes + 1] = n
    return n
  end

  it("publishes, reads, deletes and lists keys", function()
    local a = node("a")
    local b = node("b")
    assert.is_true(hearsay.run_until(function() return b:member("a") end,
                                     5000))
    assert.is_true(a:publish("app/x", "1"))
    assert.is_true(a:publish("app/y", "2"))
    assert.is_true(a:publish("other", "3"))
    assert.is_true(hearsay.run_until(function()
      return b:read("other") == "3"
    end, 3000))
    local v, info = b:read("app/x")
    assert.are.equal("1", v)
    assert.are.equal("a", info.origin)
    assert.is_true(info.version > 0)
    assert.are.same({ "app/x", "app/y" }, b:keys("app/"))
    assert.are.same({ "app/x", "app/y", "other" }, b:keys())
    assert.is_true(b:delete("app/x"))
    assert.is_true(hearsay.run_until(function()
      return a:read("app/x") == nil
    end, 3000))
    assert.are.same({ "app/y" }, a:keys("app/"))
    -- pekonode's single blob: publish(value) and read()
    assert.is_true(a:publish("the whole config"))
    assert.is_true(hearsay.run_until(function()
      return b:read() == "the whole config"
    end, 3000))
    -- bad input
    assert.has_error(function() a:publish({}, "x") end)
    local ok, msg, code = a:publish(string.rep("k", 300), "x")
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.matches("256 bytes", msg)
  end)

  it("validates every write, local and remote, and tells on_metadata",
     function()
    local applied = {}
    local hooks = {
      validate_metadata = function(_, value)
        if value and value:match("^bad") then return false, "bad value" end
        return true
      end,
      on_metadata = function(key, value, old, origin)
        applied[#applied + 1] = table.concat({ key, tostring(value),
          tostring(old), origin }, ",")
      end,
    }
    local a = node("a", { hooks = hooks })
    local loose = node("loose") -- no hook: it writes anything
    assert.is_true(hearsay.run_until(function() return a:member("loose") end,
                                     5000))
    local ok, msg, code = a:publish("k", "bad one")
    assert.is_nil(ok)
    assert.are.equal("EREFUSED", code)
    assert.matches("bad value", msg)
    assert.is_true(a:publish("k", "good"))
    assert.is_true(loose:publish("k2", "bad remote"))
    assert.is_true(loose:publish("k3", "fine remote"))
    assert.is_true(hearsay.run_until(function() return a:read("k3") end,
                                     3000))
    hearsay.run(500)
    assert.is_nil(a:read("k2")) -- refused, not stored
    assert.is_true(a:stats().metadata.refused_remote >= 1)
    assert.are.same({ "k,good,nil,a", "k3,fine remote,nil,loose" }, applied)
    assert.is_true(a:publish("k", "better"))
    assert.are.equal("k,better,good,a", applied[3])
  end)

  it("lets a hook write other keys, never the one it was called for",
     function()
    local seen = {}
    local hooks = {
      on_metadata = function(key, value)
        if key:match("^derived/") or value == nil then return end
        local ok, msg, code = hearsay.publish(key, "again")
        seen[#seen + 1] = { ok, code, msg }
        assert(hearsay.publish("derived/" .. key, value:upper()))
      end,
      validate_metadata = function(key)
        if key == "v" then
          local ok, _, code = hearsay.delete("v")
          seen[#seen + 1] = { ok, code }
        end
        return true
      end,
    }
    local a = node("a", { hooks = hooks })
    local b = node("b")
    assert.is_true(hearsay.run_until(function() return b:member("a") end,
                                     5000))
    assert.is_true(a:publish("x", "low"))
    assert.are.equal("low", a:read("x"))
    assert.are.equal("LOW", a:read("derived/x"))
    assert.is_nil(seen[1][1])
    assert.are.equal("EBUSY", seen[1][2])
    assert.matches("cannot write the key it was called for", seen[1][3])
    -- the same from a write that came by gossip
    assert.is_true(b:publish("y", "far"))
    assert.is_true(hearsay.run_until(function()
      return b:read("derived/y") == "FAR"
    end, 3000))
    assert.are.equal("far", a:read("y"))
    assert.are.equal("EBUSY", seen[2][2])
    assert.is_true(a:publish("v", "kept"))
    assert.are.same({ nil, "EBUSY" }, { seen[3][1], seen[3][2] })
    assert.are.equal("kept", a:read("v"))
  end)
end)

describe("a node back from a snapshot older than the tombstone TTL #net",
         function()
  local agent = require "agent"
  local cjson = require "cjson"
  local ip, hs = agent.subnet("127.0.21")
  after_each(function() agent.cleanup() end)

  local function value(a, key)
    local out, status = a:cli("kv", "get", "--format", "json", key)
    if status ~= 0 then return nil end
    return cjson.decode(out).value
  end

  it("brings nothing deleted meanwhile back, on either node", function()
    local dirs = {}
    for i = 1, 2 do
      dirs[i] = os.tmpname()
      os.remove(dirs[i])
    end
    -- a short TTL; push/pulls often (collection runs every 10 s)
    local set = { metadata_tombstone_ttl = "1s", push_pull_interval = "2s" }
    local a = hs("a", 1, { args = { "--data-dir", dirs[1] }, set = set })
    local function start_b()
      return hs("b", 2, { args = { "--data-dir", dirs[2] }, set = set,
                          join = { ip(1) .. ":7946" } })
    end
    local b = start_b()
    assert.are.equal(0, select(2, a:cli("kv", "put", "doomed", "old")))
    assert.are.equal(0, select(2, a:cli("kv", "put", "kept", "old too")))
    assert.is_true(agent.wait(function()
      return value(b, "doomed") == "old" and value(b, "kept") == "old too"
    end, 10), b:log())
    -- a few push/pulls in sync, then b stops with both keys on disk
    local pp = a:stats().push_pulls_out + a:stats().push_pulls_in
    assert.is_true(agent.wait(function()
      local s = a:stats()
      return s.push_pulls_out + s.push_pulls_in >= pp + 2
    end, 15))
    b:signal("TERM")
    assert.are.equal(0, b:wait_exit(10))
    -- the key is deleted and the tombstone collected while b is away
    assert.are.equal(0, select(2, a:cli("kv", "delete", "doomed")))
    assert.is_true(agent.wait(function()
      return a:stats().metadata.tombstones_collected == 1
    end, 20), a:log())
    -- b comes back with its old copy: it drops it, a never takes it
    b = start_b()
    assert.is_true(agent.wait(function()
      local s = b:stats()
      return s.push_pulls_out + s.push_pulls_in >= 3
    end, 15), b:log())
    for _, n in ipairs({ a, b }) do
      assert.is_nil(value(n, "doomed"))
      assert.are.equal("old too", value(n, "kept"))
    end
    assert.are.equal(1, b:stats().metadata.dropped_horizon)
    for i = 1, 2 do os.execute("rm -rf " .. agent.sh_quote(dirs[i])) end
  end)
end)
