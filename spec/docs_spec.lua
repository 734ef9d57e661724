-- docs_spec.lua: the README documents every configuration key, CLI command
-- and agent flag, and the example configurations work.
local core = require "hearsay.core"
local agent = require "agent"

local function readme()
  local f = assert(io.open("README.md"))
  local s = f:read("a")
  f:close()
  return s
end

describe("the README", function()
  local text = readme()

  it("documents every configuration key", function()
    for _, k in ipairs(core.config_keys()) do
      assert.truthy(text:find("| `" .. k.name .. "` |", 1, true),
                    "README lacks config key " .. k.name)
      if k.alias then
        assert.truthy(text:find("`" .. k.alias .. "`", 1, true),
                      "README lacks alias " .. k.alias)
      end
    end
  end)

  it("documents every CLI command", function()
    local out = agent.run(agent.bin .. " --help")
    local n = 0
    for cmd in out:gmatch("\n    (%l+)%s") do
      assert.truthy(text:find("hearsay " .. cmd, 1, true),
                    "README lacks command " .. cmd)
      n = n + 1
    end
    assert.is_true(n >= 8)
  end)

  it("documents every agent flag", function()
    local out = agent.run(agent.bin .. " agent --help")
    local n = 0
    for flag in out:gmatch("\n  (%-%-[%l%-]+)[= ]") do
      if flag ~= "--help" then
        assert.truthy(text:find("`" .. flag .. "`", 1, true),
                      "README lacks flag " .. flag)
        n = n + 1
      end
    end
    assert.is_true(n >= 10)
  end)
end)

describe("the example configurations #net", function()
  teardown(function() agent.cleanup() end)

  it("start agents that form a cluster", function()
    -- the files' own addresses, moved to the spec's loopback range
    local a = agent.hearsay{ name = "example-1", bind = "127.0.1.51:7946",
      control = "127.0.1.51:7374", args = { "--config", "examples/agent.lua" } }
    local b = agent.hearsay{ name = "example-2", bind = "127.0.1.52:7946",
      control = "127.0.1.52:7374",
      args = { "--config", "examples/agent.json", "--join", "127.0.1.51:7946" } }
    assert.is_true(agent.wait(function()
      return a:status_of("example-2") == "alive"
    end, 15), a:log() .. b:log())
    assert.matches("Profile: lan", a:log())
    -- its script (named relative to the config file) runs
    assert.is_true(agent.wait(function()
      return a:log():match("script: event join example%-2") ~= nil
    end, 10), a:log())
  end)
end)

describe("the README's example specs", function()
  it("run as written", function()
    local text = readme()
    local n = 0
    for code in text:gmatch("<!%-%- readme%-example%-spec %-%->\n```lua\n(.-)```") do
      n = n + 1
      local path = "spec/.readme_example_" .. n .. "_spec.lua"
      local f = assert(io.open(path, "w"))
      f:write(code)
      f:close()
      local out, status = agent.run("busted " .. path)
      os.remove(path)
      assert.are.equal(0, status, out)
      assert.matches("1 success / 0 failures / 0 errors", out)
    end
    -- the hearsay.node one and the simulation one
    assert.is_true(n >= 2, "the README lost an example spec")
  end)
end)

describe("the first hook example #net", function()
  teardown(function() agent.cleanup() end)

  it("loads in an agent and greets a new member", function()
    local a = agent.hearsay{ name = "first-a", bind = "127.0.1.53:7946",
      control = "127.0.1.53:7374", profile = "local",
      args = { "--script", "examples/first-hook.lua" } }
    local b = agent.hearsay{ name = "first-b", bind = "127.0.1.54:7946",
      control = "127.0.1.54:7374", profile = "local",
      args = { "--script", "examples/first-hook.lua" },
      join = { "127.0.1.53:7946" } }
    assert.is_true(agent.wait(function()
      return b:log():match("message from first%-a welcome, first%-b") ~= nil
    end, 15), a:log() .. b:log())
    assert.matches("event join first%-b 127%.0%.1%.54 alive", a:log())
    assert.are.equal("role=web", b:members()["first-a"].private_data)
  end)
end)
