-- kv_spec.lua: the cluster metadata store across real agents, through
-- the CLI: convergence, partitions, validation, restarts, big values and
-- watches. #net
local agent = require "agent"
local cjson = require "cjson"

local q = agent.sh_quote

local ip, hs = agent.subnet("127.0.6")

local read = agent.read_file

local write = agent.write_file

-- The entry at key on agent a as JSON (nil if it has none).
local function entry(a, key)
  local out, status = a:cli("kv", "get", "--format", "json", key)
  if status ~= 0 then return nil end
  return cjson.decode(out)
end

local function value(a, key)
  local e = entry(a, key)
  return e and e.value
end

-- Start n agents joined to the first, and wait until all see all.
local function cluster(n, base, extra)
  local g = {}
  for i = 1, n do
    local o = {}
    for k, v in pairs(extra and extra(i) or {}) do o[k] = v end
    if i > 1 then o.join = { ip(base + 1) .. ":7946" } end
    g[i] = hs("n" .. i, base + i, o)
  end
  assert.is_true(agent.wait(function()
    for i = 1, n do
      local ms = g[i]:members()
      if not ms then return false end
      for j = 1, n do
        if not ms["n" .. j] or ms["n" .. j].status ~= "alive" then
          return false
        end
      end
    end
    return true
  end, 20), g[1]:log())
  return g
end

-- Wait until pred(agent, i) holds on every agent of g.
local function everywhere(g, pred, timeout)
  return agent.wait(function()
    for i, a in ipairs(g) do
      if not pred(a, i) then return false end
    end
    return true
  end, timeout or 20)
end

local stats = agent.stats

local function all_entries(a)
  local out, status = a:cli("kv", "list", "--format", "json")
  assert(status == 0, out)
  return cjson.decode(out).entries
end

describe("cluster metadata in five agents #net", function()
  local g
  before_each(function() g = cluster(5, 10) end)
  after_each(function() agent.cleanup() end)

  it("reads on every agent a key put on one", function()
    local out, status = g[3]:cli("kv", "put", "app/limit", "10")
    assert.are.equal(0, status, out)
    assert.matches("Success! Data written to: app/limit", out)
    assert.is_true(everywhere(g, function(a)
      return value(a, "app/limit") == "10"
    end), g[1]:log())
    for _, a in ipairs(g) do
      local e = entry(a, "app/limit")
      assert.are.equal("n3", e.origin)
      local text = a:cli("kv", "get", "app/limit")
      assert.are.equal("10\n", text)
    end
    -- a delete spreads too
    out, status = g[5]:cli("kv", "delete", "app/limit")
    assert.are.equal(0, status, out)
    assert.is_true(everywhere(g, function(a)
      return entry(a, "app/limit") == nil
    end))
    out, status = g[1]:cli("kv", "get", "app/limit")
    assert.are.equal(1, status)
    assert.matches("No key exists at: app/limit", out)
  end)

  it("ends with one value on all five after concurrent writes to a key",
     function()
    for round = 1, 3 do
      local cmds = {}
      for i, a in ipairs(g) do
        cmds[i] = string.format("%s kv put --control %s race %s >/dev/null &",
          agent.bin, a.control, q("r" .. round .. "-from-n" .. i))
      end
      local _, status = agent.run("(" .. table.concat(cmds, " ")
                                  .. " wait)")
      assert.are.equal(0, status)
      assert.is_true(agent.wait(function()
        local seen = {}
        for i, a in ipairs(g) do
          local e = entry(a, "race")
          if not e or not e.value:match("^r" .. round .. "%-") then
            return false
          end
          seen[i] = e.value
        end
        for i = 2, #seen do
          if seen[i] ~= seen[1] then return false end
        end
        return true
      end, 20), "no agreement in round " .. round)
      -- the winner is the same entry, version and origin, everywhere
      local first = entry(g[1], "race")
      for i = 2, 5 do
        local e = entry(g[i], "race")
        assert.are.same({ first.value, first.origin },
                        { e.value, e.origin })
        assert.are.equal(first.value, "r" .. round .. "-from-" .. e.origin)
      end
    end
  end)

  it("heals a partition with writes on both sides, losing no winner",
     function()
    -- n4 and n5 drop out of the cluster, each on its own
    for i = 4, 5 do
      local out, status = g[i]:cli("pause")
      assert.are.equal(0, status, out)
    end
    assert.is_true(agent.wait(function()
      local ms = g[1]:members()
      return ms.n4.status ~= "alive" and ms.n5.status ~= "alive"
    end, 20))
    -- writes on every side of the partition
    assert.are.equal(0, select(2, g[1]:cli("kv", "put", "p/shared",
                                            "from n1")))
    assert.are.equal(0, select(2, g[2]:cli("kv", "put", "p/majority", "2")))
    agent.sleep(0.1)
    assert.are.equal(0, select(2, g[4]:cli("kv", "put", "p/shared",
                                            "from n4")))
    assert.are.equal(0, select(2, g[4]:cli("kv", "put", "p/n4", "4")))
    assert.are.equal(0, select(2, g[5]:cli("kv", "put", "p/n5", "5")))
    assert.are.equal(0, select(2, g[5]:cli("kv", "put", "p/majority",
                                            "from n5")))
    agent.sleep(0.1)
    assert.are.equal(0, select(2, g[3]:cli("kv", "put", "p/n5", "from n3")))
    -- each side sees only its own writes
    assert.is_true(everywhere({ g[1], g[2], g[3] }, function(a)
      return value(a, "p/shared") == "from n1" and value(a, "p/n5")
        == "from n3"
    end))
    assert.is_nil(value(g[1], "p/n4"))
    assert.are.equal("from n4", value(g[4], "p/shared"))
    assert.is_nil(value(g[4], "p/majority"))
    -- heal
    for i = 4, 5 do
      assert.are.equal(0, select(2, g[i]:cli("resume")))
    end
    local want = { ["p/shared"] = "from n4", ["p/majority"] = "from n5",
                   ["p/n4"] = "4", ["p/n5"] = "from n3" }
    assert.is_true(everywhere(g, function(a)
      for k, v in pairs(want) do
        if value(a, k) ~= v then return false end
      end
      return true
    end, 30), cjson.encode(all_entries(g[1])) .. "\n"
              .. cjson.encode(all_entries(g[4])))
    -- and the members are whole again
    assert.is_true(everywhere(g, function(a)
      local ms = a:members()
      for j = 1, 5 do
        if ms["n" .. j].status ~= "alive" then return false end
      end
      return true
    end, 30))
  end)

  it("spreads a 512 KiB binary value to every agent", function()
    local bytes = {}
    local seed = 7
    for i = 1, 512 * 1024 do
      seed = (seed * 1103515245 + 12345) % 2147483648
      bytes[i] = string.char(seed >> 16 & 0xff)
    end
    local blob = table.concat(bytes)
    assert.are.equal(512 * 1024, #blob)
    assert.truthy(blob:find("\0", 1, true))
    local file = os.tmpname()
    write(file, blob)
    local out, status = agent.run(string.format(
      "%s kv put --control %s big - < %s", agent.bin, g[2].control, file))
    assert.are.equal(0, status, out)
    local got = os.tmpname()
    assert.is_true(everywhere(g, function(a)
      local _, st = agent.run(string.format("%s kv get --control %s big > %s",
        agent.bin, a.control, got))
      return st == 0 and read(got) == blob
    end, 30), g[1]:log():sub(-3000))
    os.remove(file)
    os.remove(got)
    -- too big for a packet: announced by gossip, fetched over streams
    local fetches = 0
    for i = 1, 5 do
      local m = stats(g[i]).metadata
      assert.are.equal(0, m.fetch_errors)
      if i ~= 2 then fetches = fetches + m.fetches end
    end
    assert.is_true(fetches >= 1)
  end)

  it("streams changes to kv watch as they arrive", function()
    local text = agent.spawn("watch", { agent.bin, "kv", "watch",
                                        "--control", g[4].control, "cfg/" })
    local json = agent.spawn("watch-json", { agent.bin, "kv", "watch",
      "--format", "json", "--control", g[4].control })
    agent.sleep(0.3)
    g[1]:cli("kv", "put", "cfg/a", "one")
    g[1]:cli("kv", "put", "other", "x")
    -- a watch shows what its agent applies: a put overtaken by a delete
    -- before it arrived would never show, so let it arrive first
    assert.is_true(agent.wait(function()
      return value(g[4], "cfg/a") == "one" and value(g[2], "cfg/a") == "one"
        and value(g[4], "other") == "x"
    end, 20))
    g[2]:cli("kv", "delete", "cfg/a")
    assert.is_true(agent.wait(function()
      return text:log():match("delete cfg/a") ~= nil
        and json:log():match('"event":"delete"') ~= nil
    end, 20), text:log() .. json:log())
    assert.are.equal("put cfg/a one\ndelete cfg/a\n", text:log())
    local events = {}
    for line in json:log():gmatch("[^\n]+") do
      events[#events + 1] = cjson.decode(line)
    end
    assert.are.equal(3, #events)
    -- the two puts from n1 may arrive in either order; the delete is last
    table.sort(events, function(x, y)
      if (x.event == "delete") ~= (y.event == "delete") then
        return y.event == "delete"
      end
      return x.key < y.key
    end)
    assert.are.same({ "put", "cfg/a", "one", "n1", false },
      { events[1].event, events[1].key, events[1].value, events[1].origin,
        events[1]["local"] })
    assert.are.same({ "put", "other", "x" },
      { events[2].event, events[2].key, events[2].value })
    assert.are.same({ "delete", "cfg/a", "n2" },
      { events[3].event, events[3].key, events[3].origin })
    assert.is_nil(events[3].value)
    -- a watch ends when its agent goes away
    g[4]:signal("TERM")
    assert.are.equal(0, g[4]:wait_exit(10))
    assert.is_true(agent.wait(function() return not text:running() end, 10))
  end)
end)

describe("the config-center example #net", function()
  after_each(function() agent.cleanup() end)

  it("refuses an invalid document by the CLI and by gossip", function()
    -- n1..n3 run the example; n4 runs no script at all
    local g = cluster(4, 30, function(i)
      if i <= 3 then return { args = { "--script",
                                       "examples/config-center.lua" } } end
    end)
    local good = '{"name": "web", "version": 3, "replicas": 2}'
    local out, status = g[1]:cli("kv", "put", "config/web", good)
    assert.are.equal(0, status, out)
    assert.is_true(everywhere(g, function(a)
      return value(a, "config/web") == good
    end))
    for i = 1, 3 do
      assert.is_true(agent.wait(function()
        return g[i]:log():match("config config/web created by n1") ~= nil
      end, 20), g[i]:log())
    end
    -- by the CLI: the reason, exit 1, and nothing changed anywhere
    out, status = g[2]:cli("kv", "put", "config/web",
                           '{"name": "web", "version": 0}')
    assert.are.equal(1, status)
    assert.matches("version must be a positive integer", out)
    out, status = g[3]:cli("kv", "put", "config/db", "not json")
    assert.are.equal(1, status)
    assert.matches("not JSON", out)
    -- by gossip: n4 has no hook, so it takes what the others refuse
    out, status = g[4]:cli("kv", "put", "config/web",
                           '{"name": "web", "version": 4, "color": "red"}')
    assert.are.equal(0, status, out)
    -- n4 tells the write to three nodes at most (its transmit limit), a
    -- probe's piggyback may use one of them on a node already told, and
    -- a node that refuses it does not pass it on: the one left out hears
    -- it at a push/pull with n4 (every 15 s, with a random peer).
    for i = 1, 3 do
      assert.is_true(agent.wait(function()
        return g[i]:log():match("refused.-config/web.-unknown field color")
          ~= nil
      end, 60), g[i]:log())
    end
    agent.sleep(2) -- a few anti-entropy rounds: still refused
    for i = 1, 3 do
      assert.are.equal(good, value(g[i], "config/web"))
    end
    -- a valid write from n4 goes everywhere, with the change logged
    local v5 = '{"name": "web", "version": 5}'
    out, status = g[4]:cli("kv", "put", "config/web", v5)
    assert.are.equal(0, status, out)
    assert.is_true(everywhere(g, function(a)
      return value(a, "config/web") == v5
    end))
    assert.is_true(agent.wait(function()
      return g[2]:log():match("config config/web updated by n4") ~= nil
    end, 20), g[2]:log())
  end)
end)

describe("data dirs #net", function()
  after_each(function() agent.cleanup() end)

  it("keep the store and the members when every agent restarts",
     function()
    local dirs = {}
    for i = 1, 3 do
      dirs[i] = os.tmpname()
      os.remove(dirs[i])
    end
    local function dir(i) return { args = { "--data-dir", dirs[i] } } end
    local g = cluster(3, 40, dir)
    assert.are.equal(0, select(2, g[1]:cli("kv", "put", "keep/a", "alpha")))
    assert.are.equal(0, select(2, g[2]:cli("kv", "put", "keep/b", "beta")))
    assert.are.equal(0, select(2, g[3]:cli("kv", "put", "keep/gone", "x")))
    assert.are.equal(0, select(2, g[3]:cli("kv", "delete", "keep/gone")))
    assert.is_true(everywhere(g, function(a)
      return value(a, "keep/a") == "alpha" and value(a, "keep/b") == "beta"
        and entry(a, "keep/gone") == nil
    end))
    local before = all_entries(g[1])
    -- all stop at once
    for i = 1, 3 do g[i]:signal("TERM") end
    for i = 1, 3 do assert.are.equal(0, g[i]:wait_exit(15)) end
    for i = 1, 3 do
      assert.truthy(read(dirs[i] .. "/hearsay.members"), dirs[i])
    end
    -- and start again, with no --join: the members come from the snapshot
    local h = {}
    for i = 1, 3 do h[i] = hs("n" .. i, 40 + i, dir(i)) end
    for i = 1, 3 do
      assert.is_true(agent.wait(function()
        return select(2, h[i]:cli("version")) == 0
      end, 10))
      assert.are.same(before, all_entries(h[i]))
    end
    assert.is_true(everywhere(h, function(a)
      local ms = a:members()
      for j = 1, 3 do
        if not ms["n" .. j] or ms["n" .. j].status ~= "alive" then
          return false
        end
      end
      return true
    end, 20), h[1]:log())
    for i = 1, 3 do os.execute("rm -rf " .. q(dirs[i])) end
  end)
  -- The log, snapshots, a torn log, a full disk and the snapshots of
  -- earlier releases: spec/durable_spec.lua.
end)
