-- serf_spec.lua: interop with Debian's serf agent (memberlist 0.2.2), both
-- directions, on loopback, LAN timings, compression on. #net #serf
local agent = require "agent"

local have_serf = agent.have_serf()

local function hs(name, ip, join, extra)
  local o = { name = name, bind = ip .. ":7946", control = ip .. ":7374",
              profile = "lan", join = join }
  for k, v in pairs(extra or {}) do o[k] = v end
  return agent.hearsay(o)
end

local function serf(name, ip, join)
  return agent.serf{ name = name, bind = ip .. ":7946",
                     rpc = ip .. ":7373", join = join }
end

local function sees(a, name, status)
  return agent.wait(function() return a:status_of(name) == status end, 30)
end

local stats = agent.stats

describe("interop with serf #net #serf", function()
  teardown(function() agent.cleanup() end)

  it("has the serf agent installed", function()
    assert.is_true(have_serf, "serf is not installed: "
      .. "run scripts/install-deps.sh")
  end)

  if not have_serf then return end

  local s1, h1, h2, s2

  it("joins a serf agent, and both list each other alive", function()
    s1 = serf("s1", "127.0.2.1")
    assert.is_true(sees(s1, "s1", "alive"), s1:log())
    h1 = hs("h1", "127.0.2.2", { "127.0.2.1:7946" })
    assert.is_true(sees(s1, "h1", "alive"), s1:log() .. h1:log())
    assert.is_true(sees(h1, "s1", "alive"), h1:log())
    -- serf's tags (private data 0xff + a msgpack map) reach us intact
    local m = h1:members().s1
    assert.are.equal("ff80", m.private_data_hex)
    assert.are.same({}, m.tags)
    assert.are.equal(5, m.delegate.version)
    -- compression is serf's default: we read and wrote compressed
    -- traffic; serf's gossip packets to us carry a CRC (once it has had
    -- something to gossip)
    local st
    assert.is_true(agent.wait(function()
      st = stats(h1)
      return st.msgs_in.compress > 0 and st.msgs_out.compress > 0
        and st.msgs_in["has-crc"] > 0
    end, 15), require("cjson").encode(st and st.msgs_in or {}))
  end)

  it("is joined by a serf agent, and both list each other alive",
     function()
    h2 = hs("h2", "127.0.2.3")
    assert.is_true(sees(h2, "h2", "alive"))
    s2 = serf("s2", "127.0.2.4", { "127.0.2.3:7946" })
    assert.is_true(sees(h2, "s2", "alive"), h2:log() .. s2:log())
    assert.is_true(sees(s2, "h2", "alive"), s2:log())
  end)

  it("detects a SIGKILLed serf agent as dead", function()
    s1:signal("KILL")
    assert.is_true(sees(h1, "s1", "dead"), h1:log())
  end)

  it("is detected as failed by serf when SIGKILLed", function()
    h2:signal("KILL")
    assert.is_true(sees(s2, "h2", "failed"), s2:log())
  end)

  it("sees a serf leave as left, and leaves so that serf sees it gone",
     function()
    local h3 = hs("h3", "127.0.2.5")
    local s3 = serf("s3", "127.0.2.6", { "127.0.2.5:7946" })
    serf("s4", "127.0.2.7", { "127.0.2.5:7946" })
    assert.is_true(sees(h3, "s3", "alive"))
    assert.is_true(sees(h3, "s4", "alive"))
    assert.is_true(sees(s3, "s4", "alive"))
    local out, status = agent.run("serf leave -rpc-addr=127.0.2.7:7373")
    assert.are.equal(0, status, out)
    assert.is_true(sees(h3, "s4", "left"), h3:log())
    -- our graceful leave: serf marks a memberlist-level leave "failed"
    -- (only its own leave intent makes "left")
    out, status = h3:cli("leave")
    assert.are.equal(0, status, out)
    assert.are.equal(0, h3:wait_exit(15))
    assert.is_true(agent.wait(function()
      local st = s3:status_of("h3")
      return st == "failed" or st == "left"
    end, 30), s3:log())
    s3:stop()
  end)

  it("exercises indirect probes and suspicion with a frozen serf agent, "
     .. "which refutes when it thaws", function()
    local s5 = serf("s5", "127.0.2.8")
    local h5 = hs("h5", "127.0.2.9", { "127.0.2.8:7946" })
    local s6 = serf("s6", "127.0.2.10", { "127.0.2.8:7946" })
    assert.is_true(agent.wait(function()
      return h5:status_of("s6") == "alive" and s6:status_of("h5") == "alive"
        and s5:status_of("h5") == "alive"
    end, 30))
    s6:signal("STOP")
    -- suspicion lasts 4s in a 3-node LAN cluster: thaw as soon as we see it
    assert.is_true(agent.wait(function()
      return h5:status_of("s6") == "suspect"
    end, 20), h5:log())
    s6:signal("CONT")
    assert.is_true(agent.wait(function()
      return h5:status_of("s6") == "alive" and s5:status_of("s6") == "alive"
    end, 20), h5:log())
    assert.is_true(h5:members().s6.incarnation >= 2)
    assert.matches("member alive again: member=s6", h5:log())
    local st = stats(h5)
    -- Whoever suspected s6 first had its probe fail and asked the only
    -- other member for an indirect probe: we asked s5, or s5 asked us.
    assert.is_true(st.indirect_probes > 0 or st.msgs_in["indirect-ping"] > 0)
  end)
end)

describe("cluster metadata beside serf #net #serf", function()
  after_each(function() agent.cleanup() end)
  if not have_serf then return end

  it("spreads between hearsay nodes and leaves serf unharmed", function()
    local s7 = serf("s7", "127.0.2.20")
    local h7 = hs("h7", "127.0.2.21", { "127.0.2.20:7946" })
    local h8 = hs("h8", "127.0.2.22", { "127.0.2.20:7946" })
    local s8 = serf("s8", "127.0.2.23", { "127.0.2.21:7946" })
    local all = { "s7", "s8", "h7", "h8" }
    local function whole()
      for _, a in ipairs{ s7, s8, h7, h8 } do
        for _, n in ipairs(all) do
          if a:status_of(n) ~= "alive" then return false end
        end
      end
      return true
    end
    assert.is_true(agent.wait(whole, 30), s7:log())
    -- h7 and h8 joined through s7, so its push/pull answer told them it
    -- runs serf: from then on they send it none of our metadata
    for _, h in ipairs{ h7, h8 } do
      assert.is_true(agent.wait(function()
        return h:log():match("first=s7") or h:log():match("member=s7")
      end, 10), h:log())
    end
    local s7_before = #s7:log()
    -- a small value (gossiped) and a large one (announced, then fetched)
    assert.are.equal(0, select(2, h7:cli("kv", "put", "app/x", "1")))
    local big = string.rep("0123456789abcdef", 16 * 1024) -- 256 KiB
    local file = os.tmpname()
    local f = assert(io.open(file, "wb"))
    f:write(big)
    f:close()
    local out, status = agent.run(string.format(
      "%s kv put --control %s app/big - < %s", agent.bin, h8.control, file))
    os.remove(file)
    assert.are.equal(0, status, out)
    assert.is_true(agent.wait(function()
      local v = h8:cli("kv", "get", "app/x")
      local b = h7:cli("kv", "get", "app/big")
      return v == "1\n" and b == big .. "\n"
    end, 30), h7:log())
    -- serf ignored all of it: still running, and the cluster still whole
    -- after a couple of push/pulls with it (LAN: every 30 s)
    agent.sleep(2)
    assert.is_true(s7:running() and s8:running())
    assert.is_true(whole())
    for _, s in ipairs{ s7, s8 } do
      assert.not_matches("panic", s:log())
      assert.not_matches("Failed to decode", s:log())
    end
    local later = s7:log():sub(s7_before + 1)
    assert.not_matches("unknown type", later)
    assert.not_matches("bad type prefix", later)
  end)
end)
