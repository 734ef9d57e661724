-- cluster_spec.lua: real hearsay agents (processes) on loopback: join,
-- crash detection, restart, graceful leave, pause/resume, the CLI. #net
local agent = require "agent"

local function addr(i) return "127.0.1." .. i .. ":7946" end
local function control(i) return "127.0.1." .. i .. ":7374" end

local function start(i, extra)
  local opts = { name = "a" .. i, bind = addr(i), control = control(i),
                 profile = "local", join = i > 1 and { addr(1) } or nil }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return agent.hearsay(opts)
end

-- Every agent in `agents` sees `name` with `status`.
local function all_see(agents, name, status)
  for _, a in ipairs(agents) do
    if a:status_of(name) ~= status then return false end
  end
  return true
end

-- Wait until every agent has logged `pattern`. (Each one in its own
-- time: with local timings a dead or left member is removed 15s after, so
-- the agents need not all show it at one moment.)
local function each_logged(agents, pattern, timeout)
  return agent.wait(function()
    for _, a in ipairs(agents) do
      if not a:log():match(pattern) then return false end
    end
    return true
  end, timeout)
end

describe("a cluster of hearsay agents #net", function()
  local agents = {}

  teardown(function() agent.cleanup() end)

  it("converges: five agents see each other alive", function()
    for i = 1, 5 do agents[i] = start(i) end
    local ok = agent.wait(function()
      for i = 1, 5 do
        for j = 1, 5 do
          if agents[i]:status_of("a" .. j) ~= "alive" then return false end
        end
      end
      return true
    end, 20)
    assert.is_true(ok, agents[5]:log())
    local ms = agents[2]:members()
    assert.are.equal("127.0.1.3:7946", ms.a3.addr)
    assert.are.equal(7946, ms.a3.port)
    assert.are.equal(1, ms.a3.incarnation)
  end)

  it("marks a SIGKILLed agent dead everywhere", function()
    agents[3]:signal("KILL")
    local others = { agents[1], agents[2], agents[4], agents[5] }
    -- at worst a node waits out the whole suspicion (18s with local
    -- timings) when the news of the death does not reach it
    assert.is_true(each_logged(others, "member dead: member=a3 ", 40),
                   agents[1]:log())
    assert.matches("member suspect: member=a3", agents[1]:log()
      .. agents[2]:log() .. agents[4]:log() .. agents[5]:log())
  end)

  it("brings a restarted agent back under the same name", function()
    agents[3] = start(3)
    assert.is_true(agent.wait(function()
      return all_see(agents, "a3", "alive")
    end, 20), agents[3]:log())
    -- the old incarnation was refuted
    assert.is_true(agents[1]:members().a3.incarnation >= 2)
  end)

  it("shows `hearsay leave` as left everywhere", function()
    local out, status = agents[4]:cli("leave")
    assert.are.equal(0, status, out)
    assert.matches("Graceful leave complete", out)
    assert.are.equal(0, agents[4]:wait_exit(15))
    local others = { agents[1], agents[2], agents[3], agents[5] }
    assert.is_true(each_logged(others, "member left: member=a4 ", 30))
    assert.are.equal("left", agents[1]:status_of("a4"))
  end)

  it("leaves gracefully on SIGTERM and exits 0", function()
    agents[5]:signal("TERM")
    assert.are.equal(0, agents[5]:wait_exit(15))
    assert.is_true(each_logged({ agents[1], agents[2] },
                               "member left: member=a5 ", 30))
  end)

  it("stops and restarts the heartbeat with pause and resume", function()
    local out, status = agents[2]:cli("pause")
    assert.are.equal(0, status, out)
    assert.matches("Heartbeat paused", out)
    assert.is_true(agent.wait(function()
      local s = agents[1]:status_of("a2")
      return s == "suspect" or s == "dead"
    end, 20))
    out, status = agents[2]:cli("resume")
    assert.are.equal(0, status, out)
    assert.is_true(agent.wait(function()
      return all_see({ agents[1], agents[3] }, "a2", "alive")
    end, 20))
    assert.matches("heartbeat stopped", agents[2]:log())
    assert.matches("heartbeat started", agents[2]:log())
  end)

  it("filters members by status and prints them as text", function()
    local out, status = agents[1]:cli("members", "--status", "alive")
    assert.are.equal(0, status, out)
    assert.matches("a1%s+127%.0%.1%.1:7946%s+alive", out)
    assert.not_matches("a4%s", out) -- left (or already removed)
    out, status = agents[1]:cli("members", "--status", "bogus")
    assert.are.equal(1, status)
    assert.matches("unknown status", out)
  end)

  it("answers version and stats", function()
    local out, status = agents[1]:cli("version")
    assert.are.equal(0, status)
    assert.matches("hearsay v%d+%.%d+%.%d+", out)
    assert.matches("agent: a1", out)
    out, status = agents[1]:cli("stats", "--format", "json")
    assert.are.equal(0, status, out)
    local st = require("cjson").decode(out)
    assert.is_true((st.stats or st).probes > 0)
  end)

  it("logs joins, suspicions, deaths, leaves and state syncs at INFO "
     .. "with a timestamp", function()
    local log = agents[1]:log()
    for _, what in ipairs{ "member joined: member=a2",
                           "member dead: member=a3",
                           "member left: member=a4",
                           "state sync" } do
      assert.matches("%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z %[INFO%] .*" .. what
        :gsub("%-", "%%-"), log)
    end
  end)
end)

describe("the hearsay CLI #net", function()
  teardown(function() agent.cleanup() end)

  it("reports a missing agent clearly", function()
    local out, status = agent.run(agent.bin
      .. " members --control 127.0.1.250:7374")
    assert.are.equal(1, status)
    assert.matches("Error connecting to hearsay agent at "
      .. "127%.0%.1%.250:7374", out)
  end)

  it("refuses bad flags and config with status 2", function()
    local out, status = agent.run(agent.bin
      .. " agent --name x --bind 127.0.1.251:7946 --set probe_intervall=1s")
    assert.are.equal(2, status)
    assert.matches("unknown configuration key", out)
    out, status = agent.run(agent.bin
      .. " agent --name x --bind 127.0.1.251:7946 --profile moon")
    assert.are.equal(2, status)
    assert.matches("moon", out)
  end)

  it("reports a port already in use", function()
    local a = start(20, { join = {} }) -- alone: a --join that fails exits
    assert.is_true(agent.wait(function()
      return a:status_of("a20") == "alive"
    end, 10))
    local out, status = agent.run(agent.bin .. " agent --name y --bind "
      .. addr(20) .. " --control 127.0.1.21:7374")
    assert.are.equal(1, status)
    assert.matches("address already in use", out)
  end)
end)

describe("agents on the tcp transport #net", function()
  teardown(function() agent.cleanup() end)

  it("form a cluster with every message over TCP", function()
    local as = {}
    for i = 1, 3 do
      as[i] = agent.hearsay{ name = "t" .. i, bind = "127.0.1." .. (30 + i)
        .. ":7946", control = "127.0.1." .. (30 + i) .. ":7374",
        profile = "local", args = { "--transport", "tcp" },
        join = i > 1 and { "127.0.1.31:7946" } or nil }
    end
    assert.is_true(agent.wait(function()
      for i = 1, 3 do
        for j = 1, 3 do
          if as[i]:status_of("t" .. j) ~= "alive" then return false end
        end
      end
      return true
    end, 20))
    local out = as[1]:cli("stats", "--format", "json")
    local st = require("cjson").decode(out)
    st = st.stats or st
    -- every packet went through the transport's TCP frames
    assert.is_true(st.transport.frames_out > 0)
    assert.are.equal(st.packets_out, st.transport.frames_out)
    -- and failure detection works over it
    as[3]:signal("KILL")
    assert.is_true(agent.wait(function()
      return as[1]:status_of("t3") == "dead"
    end, 30))
  end)
end)

describe("joining by host name #net", function()
  teardown(function() agent.cleanup() end)

  it("resolves a host name given to --join and to hearsay join", function()
    -- "localhost" resolves to 127.0.0.1 on every Debian machine
    local seed = agent.hearsay{ name = "l1", bind = "127.0.0.1:17946",
      control = "127.0.1.41:7374", profile = "local" }
    local b = agent.hearsay{ name = "l2", bind = "127.0.1.42:7946",
      control = "127.0.1.42:7374", profile = "local",
      join = { "localhost:17946" } }
    assert.is_true(agent.wait(function()
      return seed:status_of("l2") == "alive"
    end, 15), b:log())
    local c = agent.hearsay{ name = "l3", bind = "127.0.1.43:7946",
      control = "127.0.1.43:7374", profile = "local" }
    local out, status = c:cli("join", "localhost:17946")
    assert.are.equal(0, status, out)
    assert.matches("Successfully joined cluster by contacting 1 node", out)
    out, status = c:cli("join", "no-such-host.invalid:7946")
    assert.are.equal(1, status)
    assert.matches("Error joining the cluster", out)
  end)
end)
