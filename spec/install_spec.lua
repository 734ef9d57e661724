-- install_spec.lua: `make install` into a temporary DESTDIR, used from
-- outside the repository as an installed hearsay is: lua5.4 requires it,
-- hearsay-test (and plain busted, with the .busted it writes) runs a
-- project's own spec of cluster logic, the agent runs, the systemd unit
-- and the sample config say what docs/operations.md says, and `make
-- uninstall` leaves no file behind. The #net part starts the installed
-- agent with the installed sample config, on 127.0.40.x.
local core = require "hearsay.core"
local agent = require "agent"

local q = agent.sh_quote
local REPO = io.popen("pwd"):read("l")

-- The build under test: bin/ and lib/, or another (make asan gives
-- HEARSAY_BIN and busted's --cpath), which is installed as it is.
local LIBDIR = package.searchpath("hearsay.core", package.cpath)
  :match("^(.*)/hearsay/core%.so$")
local DEFAULT_BUILD = agent.bin == "./bin/hearsay" and LIBDIR == "./lib"

-- Commands run as a user would: no make of ours around them, no module
-- path of this process.
local CLEAN = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u LUA_PATH "
  .. "-u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "

local function abs(path)
  if path:sub(1, 1) == "/" then return path end
  return REPO .. "/" .. path:gsub("^%./", "")
end

local function make(target, destdir)
  local cmd = CLEAN .. "make --no-print-directory -C " .. q(REPO) .. " "
  if DEFAULT_BUILD then
    cmd = cmd .. target
  else
    cmd = cmd .. (target == "install" and "install-files" or target)
      .. " BIN=" .. q(abs(agent.bin:match("^(.*)/[^/]*$")))
      .. " LIBDIR=" .. q(abs(LIBDIR))
  end
  return agent.run(cmd .. " DESTDIR=" .. q(destdir) .. " PREFIX=/usr/local")
end

local function tmpdir()
  local base = os.getenv("HEARSAY_SPEC_TMP") or "/tmp"
  os.execute("mkdir -p " .. q(base))
  local d = io.popen("mktemp -d " .. q(base) .. "/install-XXXXXX"):read("l")
  assert(d and d ~= "", "mktemp failed")
  return d
end

local function install()
  local tmp = tmpdir()
  local out, status = make("install", tmp)
  assert.are.equal(0, status, out)
  return tmp, tmp .. "/usr/local"
end

-- Every file (not directory) under dir, sorted, relative to it.
local function files(dir)
  local out = agent.run("cd " .. q(dir) .. " && find . ! -type d | sort")
  local r = {}
  for line in out:gmatch("[^\n]+") do r[#r + 1] = line:gsub("^%./", "") end
  return r
end

-- lua5.4 and the installed modules, as LUA_PATH and LUA_CPATH name them.
local function lua_env(prefix)
  local share = prefix .. "/share/lua/5.4"
  return CLEAN .. "LUA_PATH=" .. q(share .. "/?.lua;" .. share
    .. "/?/init.lua;;") .. " LUA_CPATH=" .. q(prefix
    .. "/lib/lua/5.4/?.so;;") .. " "
end

local PROJECT_SPEC = [[
local simlib = require "hearsay.sim"

-- The cluster logic of a project: the node that sees the most members.
local function busiest(sim)
  local best, most = nil, -1
  for _, name in ipairs(sim:names()) do
    local n = #sim:node(name):members("alive")
    if n > most then best, most = name, n end
  end
  return best, most
end

describe("my cluster logic", function()
  it("runs under Lua 5.4", function()
    assert.are.equal("Lua 5.4", _VERSION)
  end)

  it("sees every node once the cluster converges", function()
    local sim = simlib.new{ seed = 11 }
    sim:add(5)
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 30000))
    local _, most = busiest(sim)
    assert.are.equal(5, most)
  end)
end)
]]

local FAILING_SPEC = [[
local simlib = require "hearsay.sim"
describe("a failing test", function()
  it("names its seed", function()
    local sim = simlib.new{ seed = 4242 }
    sim:add(2)
    assert.is_true(false)
  end)
end)
]]

describe("make install", function()
  local tmp, prefix

  setup(function() tmp, prefix = install() end)
  teardown(function() os.execute("rm -rf " .. q(tmp)) end)

  it("installs the agent, hearsay-test, the Lua modules, the docs, the "
     .. "examples, a sample config and the systemd unit", function()
    local have = {}
    for _, f in ipairs(files(tmp)) do have[f] = true end
    for _, f in ipairs{
      "usr/local/bin/hearsay", "usr/local/bin/hearsay-test",
      "usr/local/share/lua/5.4/hearsay/init.lua",
      "usr/local/share/lua/5.4/hearsay/sim.lua",
      "usr/local/share/lua/5.4/hearsay/busted.lua",
      "usr/local/lib/lua/5.4/hearsay/core.so",
      "usr/local/share/doc/hearsay/README.md",
      "usr/local/share/doc/hearsay/docs/operations.md",
      "usr/local/share/doc/hearsay/examples/first-hook.lua",
      "usr/local/share/doc/hearsay/hearsay.lua",
      "usr/local/lib/systemd/system/hearsay.service",
      "usr/local/lib/sysusers.d/hearsay.conf",
      "etc/hearsay/hearsay.lua",
    } do
      assert.truthy(have[f], "not installed: " .. f)
    end
    for _, f in ipairs{ "hearsay", "hearsay-test" } do
      local _, status = agent.run("test -x " .. q(prefix .. "/bin/" .. f))
      assert.are.equal(0, status, f .. " is not executable")
    end
  end)

  it("lets lua5.4 require hearsay from outside the repository", function()
    local out, status = agent.run("cd " .. q(tmp) .. " && " .. lua_env(prefix)
      .. "lua5.4 -e " .. q('local h = require "hearsay" '
      .. 'require "hearsay.sim" '
      .. 'io.write(h.version, " ", package.searchpath("hearsay.core", '
      .. 'package.cpath))'))
    assert.are.equal(0, status, out)
    assert.are.equal(core.version .. " " .. prefix
                     .. "/lib/lua/5.4/hearsay/core.so", out)
  end)

  it("runs a project's spec of its cluster logic with hearsay-test, "
     .. "under Lua 5.4 with the hearsay.busted helper", function()
    local proj = tmp .. "/project"
    os.execute("mkdir -p " .. q(proj .. "/spec"))
    agent.write_file(proj .. "/spec/cluster_spec.lua", PROJECT_SPEC)
    agent.write_file(proj .. "/failing.lua", FAILING_SPEC)
    local cd = "cd " .. q(proj) .. " && " .. CLEAN
    local test = q(prefix .. "/bin/hearsay-test")

    local out, status = agent.run(cd .. test)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("2 successes / 0 failures / 0 errors", 1, true),
                  out)

    -- the helper names the seed of a failing test's simulation
    out, status = agent.run(cd .. test .. " failing.lua")
    assert.are_not.equal(0, status, out)
    assert.truthy(out:find("ran seed 4242", 1, true), out)

    -- --init writes a .busted that hearsay-test and Debian's busted
    -- (Lua 5.1, which starts itself again under lua5.4) both follow
    out, status = agent.run(cd .. test .. " --init")
    assert.are.equal(0, status, out)
    assert.truthy(agent.read_file(proj .. "/.busted"):find(
      'helper = "hearsay.busted"', 1, true))
    out, status = agent.run(cd .. test)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("2 successes", 1, true), out)
    out, status = agent.run("cd " .. q(proj) .. " && " .. lua_env(prefix)
                            .. "busted")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("2 successes", 1, true), out)
    out, status = agent.run(cd .. test .. " --init")
    assert.are_not.equal(0, status, out)
    assert.truthy(out:find("exists already", 1, true), out)
  end)

  it("has an agent binary that runs", function()
    local bin = q(prefix .. "/bin/hearsay")
    local out, status = agent.run("cd " .. q(tmp) .. " && " .. bin
                                  .. " version")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("hearsay v" .. core.version, 1, true), out)
    out, status = agent.run(bin .. " agent --help")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("Usage: hearsay agent", 1, true), out)
  end)

  it("has a systemd unit that reloads on SIGHUP, leaves on SIGTERM and "
     .. "restarts on failure", function()
    local unit = agent.read_file(prefix .. "/lib/systemd/system/hearsay.service")
    for _, line in ipairs{
      "ExecStart=/usr/local/bin/hearsay agent --config /etc/hearsay/hearsay.lua",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "KillSignal=SIGTERM",
      "Restart=on-failure",
      "RestartPreventExitStatus=2",
      "DynamicUser=yes",
      "User=hearsay",
      "StateDirectory=hearsay",
      "WantedBy=multi-user.target",
    } do
      assert.truthy(unit:find("\n" .. line .. "\n", 1, true),
                    "the unit lacks " .. line)
    end
    assert.is_nil(unit:find("@", 1, true), "a placeholder is left")
    -- systemd's own check, where there is one: no unknown key
    local _, have = agent.run("command -v systemd-analyze")
    if have == 0 then
      local copy = tmp .. "/hearsay.service"
      agent.write_file(copy, (unit:gsub("/usr/local/bin/hearsay",
                                        prefix .. "/bin/hearsay")))
      local out, status = agent.run("systemd-analyze verify " .. q(copy))
      assert.are.equal(0, status, out)
      assert.is_nil(out:find("Unknown", 1, true), out)
    end
    assert.truthy(agent.read_file(prefix .. "/lib/sysusers.d/hearsay.conf")
                  :find("\nu hearsay - ", 1, true))
  end)

  it("has a sample config of valid keys, with the data dir under "
     .. "/var/lib/hearsay", function()
    local env = {}
    local chunk = assert(loadfile(tmp .. "/etc/hearsay/hearsay.lua", "t", env))
    chunk()
    assert.are.equal("/var/lib/hearsay", env.data_dir)
    local cfg = core.config(env)
    assert.are.equal("/var/lib/hearsay", cfg.data_dir)
    assert.are.equal("127.0.0.1:7374", cfg.control)
  end)
end)

describe("make uninstall", function()
  it("removes every file make install put there", function()
    local tmp = install()
    local out, status = make("uninstall", tmp)
    assert.are.equal(0, status, out)
    assert.are.same({}, files(tmp))
    os.execute("rm -rf " .. q(tmp))
  end)

  it("keeps a config changed since, and make install keeps it too",
     function()
    local tmp = install()
    local conf = tmp .. "/etc/hearsay/hearsay.lua"
    agent.write_file(conf, 'name = "mine"\n')
    local out, status = make("install", tmp)
    assert.are.equal(0, status, out)
    assert.are.equal('name = "mine"\n', agent.read_file(conf))
    out, status = make("uninstall", tmp)
    assert.are.equal(0, status, out)
    assert.are.same({ "etc/hearsay/hearsay.lua" }, files(tmp))
    os.execute("rm -rf " .. q(tmp))
  end)
end)

describe("an installed agent #net", function()
  local ip = agent.subnet("127.0.40")
  local tmp, prefix

  setup(function() tmp, prefix = install() end)
  teardown(function()
    agent.cleanup()
    os.execute("rm -rf " .. q(tmp))
  end)

  it("runs the sample config, finds the Lua modules of its PREFIX, and "
     .. "leaves on SIGTERM", function()
    -- a module installed beside hearsay's, and a script elsewhere that
    -- requires it: found through PREFIX/bin/../share/lua/5.4
    agent.write_file(prefix .. "/share/lua/5.4/hearsay_probe.lua",
                     'return { word = "found" }\n')
    os.execute("mkdir -p " .. q(tmp .. "/scripts"))
    agent.write_file(tmp .. "/scripts/probe.lua",
                     'print("probe " .. require("hearsay_probe").word)\n'
                     .. "return {}\n")
    local control = ip(1) .. ":7374"
    local p = agent.spawn("installed", {
      "env", "-C", tmp, "-u", "LUA_PATH", "-u", "LUA_PATH_5_4",
      prefix .. "/bin/hearsay", "agent",
      "--config", tmp .. "/etc/hearsay/hearsay.lua",
      "--name", "installed", "--bind", ip(1) .. ":7946",
      "--control", control, "--profile", "local",
      "--set", "data_dir=" .. tmp .. "/data",
      "--script", tmp .. "/scripts/probe.lua",
    })
    p:wait_ready("==> hearsay agent running!")
    assert.is_true(p:running(), p:log())
    assert.truthy(p:log():find("probe found", 1, true), p:log())

    local out, status = agent.run(q(prefix .. "/bin/hearsay")
      .. " members --control " .. control)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("installed%s+" .. ip(1):gsub("%.", "%%.")
                           .. ":7946%s+alive"), out)

    p:signal("TERM")
    assert.are.equal(0, p:wait_exit(15), p:log())
    assert.truthy(p:log():find("Gracefully shutting down", 1, true), p:log())
  end)
end)
