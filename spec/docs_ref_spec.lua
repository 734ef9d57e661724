-- docs_ref_spec.lua: docs/ covers what the code has. The names come from
-- the code at run time (the module tables, the hook list, the
-- configuration keys, `hearsay --help`), so a function, hook, key, command
-- or flag added without its documentation fails here; and the generated
-- configuration reference must match src/core/config_keys.c.
local core = require "hearsay.core"
local simlib = require "hearsay.sim"
local agent = require "agent"

local function read(path)
  local f = assert(io.open(path, "rb"), "missing " .. path)
  local s = f:read("a")
  f:close()
  return s
end

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

-- The function names of a table (methods, module functions), sorted.
local function functions(t)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:match("^__") then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

local api = read("docs/lua-api.md")

describe("docs/", function()
  it("has an index that links every page", function()
    local index = read("docs/README.md")
    for _, page in ipairs({ "hooks.md", "lua-api.md", "configuration.md",
                            "cli.md", "wire.md", "operations.md",
                            "layout.md" }) do
      read("docs/" .. page)
      assert.truthy(has(index, "(" .. page), "docs/README.md lacks " .. page)
    end
    assert.truthy(has(read("README.md"), "(docs/README.md)"),
                  "README.md does not link docs/")
  end)
end)

describe("docs/layout.md", function()
  it("names every folder and file of src/", function()
    local text = read("docs/layout.md")
    local p = assert(io.popen("cd src && ls -d */ *.c */*.c */*.h"))
    for path in p:lines() do
      local name = path:match("([^/]+)/?$")
      assert.truthy(has(text, "`" .. name), "docs/layout.md lacks " .. path)
    end
    p:close()
  end)
end)

describe("docs/lua-api.md", function()
  it("documents every function of the module", function()
    local n = 0
    for _, name in ipairs(functions(core)) do
      assert.truthy(has(api, "`hearsay." .. name .. "(") or
                    has(api, "`core." .. name .. "("),
                    "docs/lua-api.md lacks hearsay." .. name)
      n = n + 1
    end
    assert.is_true(n >= 40)
  end)

  it("lists every error code once, in one table", function()
    local _, tables = api:gsub("\n| code | meaning |\n", "")
    assert.are.equal(1, tables, "docs/lua-api.md has more than one error table")
    local rows = {}
    for row in api:gmatch("\n(| `E[^\n]*)") do rows[#rows + 1] = row end
    local listed = {}
    for _, row in ipairs(rows) do
      local codes = row:match("^| ([^|]*) |")
      for code in codes:gmatch("`(E%u+)`") do
        assert.is_nil(listed[code], code .. " is listed twice")
        listed[code] = true
      end
    end
    local n = 0
    for code in read("src/base/hs.h"):gmatch("X%(HS_(E%u+),") do
      assert.truthy(listed[code], "docs/lua-api.md's table lacks " .. code)
      listed[code] = nil
      n = n + 1
    end
    assert.is_true(n >= 18)
    listed.EFAIL = nil -- hs_errname's name for any other code
    assert.are.same({}, listed)
  end)

  it("documents every method of nodes and timers", function()
    local reg = debug.getregistry()
    for _, name in ipairs(functions(reg["hearsay.node"].__index)) do
      assert.truthy(has(api, "`hearsay." .. name .. "(") or
                    has(api, "`node:" .. name .. "("),
                    "docs/lua-api.md lacks node:" .. name)
    end
    for _, name in ipairs(functions(reg["hearsay.timer"].__index)) do
      assert.truthy(has(api, "`timer:" .. name .. "("),
                    "docs/lua-api.md lacks timer:" .. name)
    end
  end)

  it("documents every field of a member and of the stats", function()
    local sim = simlib.new{ seed = 1 }
    sim:add(1)
    local node = sim:node("n1")
    local fields = 0
    for k in pairs(node:self()) do
      assert.truthy(has(api, "`" .. k .. "`"), "docs/lua-api.md lacks member." .. k)
      fields = fields + 1
    end
    assert.are.equal(8, fields)
    assert.truthy(has(api, "m:totable()"))
    local stats = node:stats()
    for _, group in ipairs({ "", "hooks", "metadata" }) do
      for k in pairs(group == "" and stats or stats[group]) do
        if k ~= "sim" then
          assert.truthy(has(api, "`" .. k .. "`"),
                        "docs/lua-api.md lacks stats field " .. k)
        end
      end
    end
    sim.c:close()
  end)

  it("documents the simulation: every method of a simulation and of its "
     .. "nodes", function()
    for _, name in ipairs(functions(simlib)) do
      assert.truthy(has(api, "`simlib." .. name), "docs/lua-api.md lacks simlib." .. name)
    end
    local sim = simlib.new{ seed = 1 }
    sim:add(1)
    for _, name in ipairs(functions(getmetatable(sim))) do
      assert.truthy(has(api, "`sim:" .. name .. "("), "docs/lua-api.md lacks sim:" .. name)
    end
    for _, name in ipairs(functions(getmetatable(sim:node("n1")))) do
      assert.truthy(has(api, "`node:" .. name .. "("), "docs/lua-api.md lacks node:" .. name)
    end
    sim.c:close()
  end)
end)

describe("docs/hooks.md", function()
  local text = read("docs/hooks.md")

  it("documents every hook", function()
    local names = core.hook_names()
    assert.is_true(#names >= 12)
    for _, name in ipairs(names) do
      assert.truthy(has(text, "## `" .. name .. "("), "docs/hooks.md lacks a section on " .. name)
      assert.truthy(has(text, "| [`" .. name .. "`]"), "docs/hooks.md's table lacks " .. name)
    end
  end)

  it("has examples that load and run on simulated nodes", function()
    local n = 0
    for code in text:gmatch("<!%-%- hook%-example %-%->\n```lua\n(.-)```") do
      n = n + 1
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(code)
      f:close()
      -- names an example's allow_member lets in
      local names = { "web-1", "web-2", "db-1" }
      local sim = simlib.new{ seed = n, profile = "local" }
      local ok, err = pcall(sim.add, sim, names, { scripts = { path } })
      os.remove(path)
      assert.is_true(ok, "example " .. n .. ": " .. tostring(err))
      assert.is_true(sim:run_until(function() return sim:converged() end, 20000),
                     "example " .. n .. ": the nodes did not converge")
      local a = sim:node("web-1")
      a:publish("config/web", '{"replicas": 2}')
      a:broadcast("ping")
      sim:run(5000)
      for _, name in ipairs(names) do
        local hooks = sim:stats(name).hooks
        assert.are.equal(0, hooks.errors, "example " .. n .. " failed on " .. name)
      end
      sim.c:close()
    end
    assert.is_true(n >= 10, "docs/hooks.md lost its examples")
  end)
end)

describe("docs/configuration.md", function()
  local text = read("docs/configuration.md")

  it("documents every configuration key and alias", function()
    for _, k in ipairs(core.config_keys()) do
      assert.truthy(has(text, "| `" .. k.name .. "` |"),
                    "docs/configuration.md lacks key " .. k.name)
      if k.alias then
        assert.truthy(has(text, "`" .. k.alias .. "`"),
                      "docs/configuration.md lacks alias " .. k.alias)
      end
    end
  end)

  it("is up to date with the code (make docs)", function()
    local out, status = agent.run("lua5.4 scripts/gen-docs.lua --check")
    assert.are.equal(0, status, out)
  end)
end)

describe("docs/cli.md", function()
  local text = read("docs/cli.md")

  -- The flags a --help text lists: "  --name=..." or "  --list  ...".
  local function flags(help)
    local r = {}
    for flag in help:gmatch("\n  (%-%-[%l%-]+)[= ]") do r[#r + 1] = flag end
    return r
  end

  it("documents every command and each of its flags", function()
    local out = agent.run(agent.bin .. " --help")
    local n = 0
    for cmd in out:gmatch("\n    ([%l%-]+)%s") do
      n = n + 1
      assert.truthy(has(text, "## `hearsay " .. cmd), "docs/cli.md lacks command " .. cmd)
      local help = agent.run(agent.bin .. " " .. cmd .. " --help")
      for _, flag in ipairs(flags(help)) do
        assert.truthy(has(text, "`" .. flag), "docs/cli.md lacks " .. cmd .. " " .. flag)
      end
    end
    assert.is_true(n >= 12)
  end)

  it("documents every kv subcommand", function()
    local help = agent.run(agent.bin .. " kv --help")
    local subs = help:match("Subcommands:\n(.-)\nOptions:")
    local n = 0
    for sub in subs:gmatch("\n    (%l+) ") do
      n = n + 1
      assert.truthy(has(text, "`hearsay kv " .. sub), "docs/cli.md lacks kv " .. sub)
    end
    assert.is_true(n >= 5)
  end)

  it("documents every request of the control protocol and its variables",
     function()
    local header = read("src/agent/control.h")
    local n = 0
    for cmd in header:gmatch('{"cmd":"([%w_]+)"') do
      n = n + 1
      assert.truthy(has(text, '{"cmd":"' .. cmd .. '"'), "docs/cli.md lacks cmd " .. cmd)
    end
    assert.is_true(n >= 14)
    for var in header:gmatch('#define CONTROL_[%u_]*ENV "([%u_]+)"') do
      assert.truthy(has(text, "$" .. var), "docs/cli.md lacks $" .. var)
    end
  end)
end)

describe("docs/operations.md", function()
  it("documents every metric of the Prometheus endpoint", function()
    local text = read("docs/operations.md")
    local src = read("src/agent/stats.c")
    local n = 0
    for _, pat in ipairs({ 'COUNTER%(%s*"([%l_]+)"', 'GAUGE%(%s*"([%l_]+)"',
                           '{%s*"([%l_]+)",%s*STATS_' }) do
      for name in src:gmatch(pat) do
        n = n + 1
        assert.truthy(has(text, "`hearsay_" .. name .. "`"),
                      "docs/operations.md lacks metric hearsay_" .. name)
      end
    end
    assert.is_true(n >= 50)
  end)
end)
