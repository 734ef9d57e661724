-- run_spec.lua: starting and stopping. The agent checks its config, its
-- scripts, its data dir and its keyring file before it takes a port, and
-- a fatal start-up error is one line, the last; `make run`'s cluster
-- (scripts/local-cluster.sh) stops cleanly on SIGINT or SIGTERM, and
-- stops when an agent cannot start. Real agents on 127.0.41.x (the specs
-- tagged #net).
local agent = require "agent"

local ip = agent.subnet("127.0.41")
local sh = agent.sh_quote

local tmp = (os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec")
  .. "/run-" .. os.time() .. "-" .. math.random(1e6)
os.execute("mkdir -p " .. sh(tmp))

local nfiles = 0
local function temp_path(name)
  nfiles = nfiles + 1
  return tmp .. "/" .. nfiles .. "-" .. name
end
local function temp_file(name, bytes)
  local path = temp_path(name)
  agent.write_file(path, bytes)
  return path
end

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- Start an agent meant to stop at start-up; its exit status and its log.
local function fails(name, i, args, env)
  local p = agent.hearsay{ name = name, bind = ip(i) .. ":7946",
                           control = ip(i) .. ":7374", args = args,
                           env = env, profile = "local" }
  local status = p:wait_exit(20)
  return status, p:log()
end

-- The log ends with `want` (one "hearsay: " line, nothing after it).
local function ends_with_fatal(log, want)
  local ls = lines(log)
  assert.are.equal("hearsay: " .. want, ls[#ls], log)
  local n = 0
  for _, l in ipairs(ls) do
    if l:find("^hearsay: ") then n = n + 1 end
  end
  assert.are.equal(1, n, log)
end

-- The files in a directory (nil when it does not exist).
local function ls_dir(dir)
  local out, status = agent.run("ls -A " .. sh(dir))
  if status ~= 0 then return nil end
  return out
end

describe("start-up #net", function()
  local blocker -- holds 127.0.41.1:7946 (and its control port)

  setup(function()
    blocker = agent.hearsay{ name = "blocker", bind = ip(1) .. ":7946",
                             control = ip(1) .. ":7374", profile = "local" }
    assert.is_true(blocker:running(), blocker:log())
  end)
  teardown(function()
    agent.cleanup()
    os.execute("rm -rf " .. sh(tmp))
  end)

  -- An agent on the blocker's address: what it says shows what it
  -- checked before it tried to bind.
  local function on_taken_port(name, args)
    return fails(name, 1, args)
  end

  it("loads its scripts before binding: a bad one is the error, with "
     .. "status 2", function()
    local bad = temp_file("bad.lua", 'local x = 1\nerror("boom")\n')
    local status, log = on_taken_port("s1", { "--script", bad })
    assert.are.equal(2, status, log)
    ends_with_fatal(log, bad .. ":2: boom")
    assert.is_nil(log:find("address already in use", 1, true), log)

    local missing = tmp .. "/no-such.lua"
    status, log = on_taken_port("s2", { "--script", missing })
    assert.are.equal(2, status, log)
    ends_with_fatal(log, "cannot open " .. missing
      .. ": No such file or directory")
  end)

  it("names the file whose top level never ends", function()
    local loop = temp_file("loop.lua", "while true do end\n")
    local status, log = on_taken_port("s3", { "--script", loop,
      "--set", "script_budget=10000" })
    assert.are.equal(2, status, log)
    -- The instructions run out, or on a busy machine the time: either
    -- way the file is named.
    local ls = lines(log)
    local last = ls[#ls]
    assert.are.equal("hearsay: " .. loop .. ": ", last:sub(1, #loop + 11), log)
    assert.truthy(last:find("budget exceeded (script_budget)", 1, true), log)
    assert.are.equal(" (the script's top level never ended)",
                     last:sub(-#" (the script's top level never ended)"), log)
  end)

  it("runs a script's top level once", function()
    local mark = temp_path("mark")
    local script = temp_file("once.lua", [[
local hearsay = require "hearsay"
local f = assert(io.open(os.getenv("RUN_SPEC_MARK"), "a"))
f:write("top level\n")
f:close()
hearsay.after(0, function() hearsay.log("info", "timer fired") end)
return {}
]])
    -- The port taken: the script ran, once, and nothing after the error.
    local status, log = fails("s4", 1, { "--script", script },
                              { RUN_SPEC_MARK = mark })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "cannot bind UDP " .. ip(1)
      .. ":7946: address already in use")
    assert.are.equal("top level\n", agent.read_file(mark))
    assert.is_nil(log:find("timer fired", 1, true), log)

    -- A free port: once again, and its timer runs once the node runs.
    os.remove(mark)
    local p = agent.hearsay{ name = "s5", bind = ip(5) .. ":7946",
                             control = ip(5) .. ":7374", profile = "local",
                             args = { "--script", script },
                             env = { RUN_SPEC_MARK = mark } }
    assert.is_true(agent.wait(function()
      return p:log():find("timer fired", 1, true)
    end, 10), p:log())
    assert.are.equal("top level\n", agent.read_file(mark))
    local ls = lines(p:log())
    assert.are.equal("==> Starting hearsay agent...", ls[1])
    p:stop()
  end)

  it("checks that the data dir is writable before binding, with "
     .. "status 1", function()
    local file = temp_file("a-file", "")
    local dir = file .. "/data"
    local status, log = on_taken_port("d1", { "--data-dir", dir })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "data_dir " .. dir .. ": Not a directory")

    status, log = on_taken_port("d2", { "--data-dir", file })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "data_dir " .. file
      .. " is not a writable directory")
  end)

  it("checks the keyring file before binding, with status 2", function()
    local kr = temp_file("keyring.json", "not json")
    local status, log = on_taken_port("k1", { "--keyring-file", kr })
    assert.are.equal(2, status, log)
    ends_with_fatal(log, "keyring file " .. kr
      .. ": not a JSON array of base64 keys")
  end)

  it("stops at a bad config before anything else, with status 2",
     function()
    local status, log = on_taken_port("c1", { "--set", "no_such_key=1" })
    assert.are.equal(2, status, log)
    ends_with_fatal(log, 'unknown configuration key "no_such_key"')
    assert.is_nil(log:find("Starting", 1, true), log)
  end)

  it("stops at a taken port with one line, and leaves the data dir "
     .. "untouched", function()
    local dir = temp_path("data")
    local status, log = on_taken_port("p1", { "--data-dir", dir })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "cannot bind UDP " .. ip(1)
      .. ":7946: address already in use")
    assert.are.equal("", ls_dir(dir))

    -- The control port taken: the gossip port was free.
    status, log = fails("p2", 2, { "--data-dir", dir,
                                   "--control", ip(1) .. ":7374" })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "control: cannot listen on " .. ip(1)
      .. ":7374: address already in use")
    assert.are.equal("", ls_dir(dir))

    -- The metrics port taken.
    status, log = fails("p3", 3, { "--data-dir", dir,
                                   "--metrics", ip(1) .. ":7374" })
    assert.are.equal(1, status, log)
    ends_with_fatal(log, "metrics: cannot listen on " .. ip(1)
      .. ":7374: address already in use")
    assert.are.equal("", ls_dir(dir))
  end)
end)

-- ===== make run: scripts/local-cluster.sh =====

-- The agents left on an address of the cluster's (pids), by their
-- command line. pgrep hangs with the sanitizers preloaded (make asan).
local function agents_on(addr)
  local out = agent.run("env -u LD_PRELOAD pgrep -f "
    .. sh("hearsay agent .*--bind " .. addr:gsub("%.", "\\.") .. ":"))
  local pids = {}
  for pid in out:gmatch("%d+") do pids[#pids + 1] = pid end
  return pids
end

-- Start the cluster script on `addr` (7946.., control 7374..). `session`:
-- in a session of its own, whose process group a signal can reach (as
-- a terminal's Ctrl-C reaches the foreground job).
local function cluster(addr, session)
  local argv = { "env", "--default-signal=INT,TERM",
                 "HEARSAY_BIN=" .. agent.bin,
                 "HEARSAY_CLUSTER_ADDR=" .. addr,
                 "HEARSAY_PROFILE=local",
                 "scripts/local-cluster.sh", "3" }
  if session then table.insert(argv, 1, "setsid") end
  return agent.spawn("cluster-" .. addr, argv)
end

local function wait_up(p)
  assert.is_true(agent.wait(function()
    return p:log():find("==> 3 agents on", 1, true) or not p:running()
  end, 30), p:log())
  assert.is_true(p:running(), p:log())
end

-- Every agent left gracefully, its lines kept, and none is left.
local function stopped_cleanly(p, addr)
  local status = p:wait_exit(30)
  local log = p:log()
  assert.are.equal(0, status, log)
  for i = 1, 3 do
    assert.truthy(log:find("[agent" .. i .. "] ==> Gracefully shutting down",
                           1, true), log)
    assert.truthy(log:find("%[agent" .. i .. "%] [^\n]*graceful leave"),
                  log)
  end
  assert.truthy(log:find("==> all agents stopped\n$"), log)
  assert.are.same({}, agents_on(addr))
end

describe("make run's cluster #net", function()
  local used = {}
  after_each(function()
    agent.cleanup()
    -- A failed spec must not leave agents behind either.
    for _, addr in ipairs(used) do
      for _, pid in ipairs(agents_on(addr)) do
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
      end
    end
  end)

  it("stops on SIGINT to its process group (Ctrl-C): every agent leaves "
     .. "and its lines are printed", function()
    local addr = ip(11)
    used[#used + 1] = addr
    local p = cluster(addr, true)
    wait_up(p)
    assert.truthy(p:log():find("==> 3 agents on " .. addr
      .. ":7946-7948, control ports 7374-7376", 1, true), p:log())
    os.execute("kill -INT -" .. p.pid) -- the process group
    stopped_cleanly(p, addr)
  end)

  it("stops on SIGTERM to the script alone", function()
    local addr = ip(12)
    used[#used + 1] = addr
    local p = cluster(addr, false)
    wait_up(p)
    local out
    assert.is_true(agent.wait(function()
      local status
      out, status = agent.run(agent.bin .. " members --control " .. addr
        .. ":7374")
      local alive = 0
      for _ in out:gmatch("agent%d[^\n]*alive") do alive = alive + 1 end
      return status == 0 and alive == 3
    end, 10), out)
    p:signal("TERM")
    stopped_cleanly(p, addr)
  end)

  it("says so and exits 1 when an agent cannot start", function()
    local addr = ip(13)
    used[#used + 1] = addr
    -- agent2's gossip port is taken.
    local b = agent.hearsay{ name = "holder", bind = addr .. ":7947",
                             control = ip(14) .. ":7374", profile = "local" }
    assert.is_true(b:running(), b:log())
    local p = cluster(addr, false)
    local status = p:wait_exit(30)
    local log = p:log()
    assert.are.equal(1, status, log)
    assert.truthy(log:find("[agent2] hearsay: cannot bind UDP " .. addr
      .. ":7947: address already in use", 1, true), log)
    assert.truthy(log:find("==> agent2 did not start (exit status 1)", 1,
                           true), log)
    assert.is_nil(log:find("agents on", 1, true), log)
    assert.is_nil(log:find("[agent3]", 1, true), log)
    assert.truthy(log:find("[agent1] ==> Gracefully shutting down", 1, true),
                  log)
    -- agent1 is gone; the holder is not the cluster's.
    for _, pid in ipairs(agents_on(addr)) do
      assert.are.equal(tostring(b.pid), pid, log)
    end
    assert.is_true(b:running())
  end)
end)
