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
    assert.is_true(agent.wait(function()
      return all_see(others, "a3", "dead")
    end, 30), agents[1]:log())
    assert.matches("member suspect: member=a3", agents[1]:log()
      .. agents[2]:log() .. agents[4]:log() .. agents[5]:log())
    assert.matches("member dead: member=a3", agents[1]:log())
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
    assert.is_true(agent.wait(function()
      return all_see(others, "a4", "left")
    end, 15))
    assert.matches("member left: member=a4", agents[1]:log())
  end)

  it("leaves gracefully on SIGTERM and exits 0", function()
    agents[5]:signal("TERM")
    assert.are.equal(0, agents[5]:wait_exit(15))
    assert.is_true(agent.wait(function()
      return all_see({ agents[1], agents[2] }, "a5", "left")
    end, 15))
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
    local out, status = agents[1]:cli("members", "--status", "left")
    assert.are.equal(0, status, out)
    assert.matches("a4%s+127%.0%.1%.4:7946%s+left", out)
    assert.not_matches("a1%s", out)
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
    local a = start(20)
    assert.is_true(agent.wait(function()
      return a:status_of("a20") == "alive"
    end, 10))
    local out, status = agent.run(agent.bin .. " agent --name y --bind "
      .. addr(20) .. " --control 127.0.1.21:7374")
    assert.are.equal(1, status)
    assert.matches("address already in use", out)
  end)
end)
