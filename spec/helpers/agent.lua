-- agent.lua: start real hearsay and serf agents on loopback for specs,
-- talk to them with their CLIs, and make sure none is left behind.
local cjson = require "cjson"

local M = {}

local started = {}
local spawned = 0
-- Each busted process keeps its agents' files in a directory of its own:
-- spec files run side by side, and their agents must never share a pid
-- file or a log.
-- It is made at the first start.
local base = os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec"
local tmp
local function run_dir()
  if not tmp then
    os.execute("mkdir -p " .. base)
    tmp = io.popen("mktemp -d " .. base .. "/run-XXXXXX"):read("l")
    assert(tmp and tmp ~= "", "mktemp failed under " .. base)
  end
  return tmp
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Write a whole file (raises if it cannot).
local function write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

M.read_file = read_file
M.write_file = write_file

-- Run a command; returns stdout, exit status.
function M.run(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"__status=$?\"")
  local out = f:read("a")
  f:close()
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  return out:gsub("__status=%d+%s*$", ""), status
end

function M.sleep(s)
  os.execute("sleep " .. s)
end

-- Poll pred every 0.1s until it holds or `timeout` seconds pass.
function M.wait(pred, timeout)
  local deadline = os.time() + timeout
  repeat
    local ok, v = pcall(pred)
    if ok and v then return true end
    M.sleep(0.1)
  until os.time() > deadline
  local ok, v = pcall(pred)
  return ok and v or false
end

local Proc = {}
Proc.__index = Proc

-- Start `argv` (array) in the background with its own log file.
local function spawn(label, argv, env)
  spawned = spawned + 1
  local dir = run_dir() .. "/" .. label .. "-" .. spawned
  os.execute("mkdir -p " .. dir)
  local words = {}
  for i, a in ipairs(argv) do words[i] = sh_quote(a) end
  local envs = ""
  for k, v in pairs(env or {}) do envs = envs .. k .. "=" .. sh_quote(v) .. " " end
  local cmd = string.format(
    "(%s%s > %s/log 2>&1 & echo $! > %s/pid; wait $!; echo $? > %s/exit) "
    .. "> /dev/null 2>&1 &", envs, table.concat(words, " "), dir, dir, dir)
  os.execute(cmd)
  local p = setmetatable({ label = label, dir = dir }, Proc)
  assert(M.wait(function()
    p.pid = tonumber(read_file(dir .. "/pid") or "")
    return p.pid
  end, 5), "could not start " .. label)
  started[#started + 1] = p
  return p
end

function Proc:log() return read_file(self.dir .. "/log") or "" end

function Proc:running()
  return read_file(self.dir .. "/exit") == nil
end

function Proc:signal(sig)
  if self:running() then os.execute("kill -" .. sig .. " " .. self.pid
    .. " 2>/dev/null") end
end

-- Wait for the process to end; returns its exit status or nil.
function Proc:wait_exit(timeout)
  local status
  M.wait(function()
    status = tonumber(read_file(self.dir .. "/exit") or "")
    return status
  end, timeout or 10)
  return status
end

function Proc:stop()
  if self:running() then
    self:signal("CONT")
    self:signal("KILL")
    self:wait_exit(5)
  end
end

-- Wait (at most 15s) until the process has printed `banner`, that is, it
-- listens, or it has exited (a spec may start one meant to fail). An agent
-- started next can then join it at once, even on a loaded machine.
function Proc:wait_ready(banner)
  M.wait(function()
    return not self:running() or (self:log() or ""):find(banner, 1, true)
  end, 15)
end

-- ===== hearsay =====

M.bin = os.getenv("HEARSAY_BIN") or "./bin/hearsay"

-- opts: name, bind, control, join (list), profile, log, set (table of
-- key=value), args (extra list), env, wrap (argv run before the agent's)
function M.hearsay(opts)
  local argv = { M.bin, "agent", "--name", opts.name, "--bind", opts.bind,
                 "--control", opts.control,
                 "--log-level", opts.log or "debug" }
  if opts.profile then
    argv[#argv + 1] = "--profile"
    argv[#argv + 1] = opts.profile
  end
  for _, j in ipairs(opts.join or {}) do
    argv[#argv + 1] = "--join"
    argv[#argv + 1] = j
  end
  for k, v in pairs(opts.set or {}) do
    argv[#argv + 1] = "--set"
    argv[#argv + 1] = k .. "=" .. tostring(v)
  end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  if opts.wrap then -- a command that runs the agent (nsenter ...)
    local w = {}
    for _, a in ipairs(opts.wrap) do w[#w + 1] = a end
    for _, a in ipairs(argv) do w[#w + 1] = a end
    argv = w
  end
  local p = spawn("hearsay-" .. opts.name, argv, opts.env)
  p.kind = "hearsay"
  p.name = opts.name
  p.control = opts.control
  p.bind = opts.bind
  p:wait_ready("==> hearsay agent running!")
  return p
end

-- Start any command in the background (its output in p:log()); it is
-- killed at cleanup like the agents.
function M.spawn(label, argv, env)
  return spawn(label, argv, env)
end

M.sh_quote = sh_quote

-- Run the hearsay CLI against this agent: stdout, status. --control goes
-- right after the command (flags come before the arguments; kv takes
-- them before its subcommand too).
function Proc:cli(cmd, ...)
  local words = { M.bin, sh_quote(cmd), "--control", sh_quote(self.control) }
  for _, a in ipairs{ ... } do words[#words + 1] = sh_quote(a) end
  return M.run(table.concat(words, " "))
end

-- Members as a table keyed by name (hearsay or serf).
function Proc:members()
  local out, status
  if self.kind == "serf" then
    out, status = M.run(string.format("serf members -rpc-addr=%s "
      .. "-format=json", self.rpc))
  else
    out, status = self:cli("members", "--format", "json")
  end
  if status ~= 0 then return nil, out end
  local ok, doc = pcall(cjson.decode, out)
  if not ok then return nil, out end
  local list = doc.members or doc
  local r = {}
  for _, m in ipairs(list) do r[m.name] = m end
  return r
end

-- The agent's counters (hearsay stats --format json).
function Proc:stats()
  local out, status = self:cli("stats", "--format", "json")
  assert(status == 0, out)
  local doc = cjson.decode(out)
  return doc.stats or doc
end

function M.stats(p) return p:stats() end

-- For specs that keep their agents on one /24 of loopback: ip(i), and
-- hs(name, i, extra) that starts a hearsay agent on <prefix>.<i>:7946
-- (control endpoint :7374, the local profile; extra: more options).
function M.subnet(prefix)
  local function ip(i) return prefix .. "." .. i end
  local function hs(name, i, extra)
    local o = { name = name, bind = ip(i) .. ":7946",
                control = ip(i) .. ":7374", profile = "local" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return M.hearsay(o)
  end
  return ip, hs
end

-- The status of `name` as this agent sees it (nil if unknown).
function Proc:status_of(name)
  local ms = self:members()
  return ms and ms[name] and ms[name].status
end

-- ===== serf =====

function M.serf(opts)
  local argv = { "serf", "agent", "-node=" .. opts.name,
                 "-bind=" .. opts.bind, "-rpc-addr=" .. opts.rpc,
                 "-log-level=" .. (opts.log or "debug") }
  if opts.profile then argv[#argv + 1] = "-profile=" .. opts.profile end
  for _, j in ipairs(opts.join or {}) do argv[#argv + 1] = "-join=" .. j end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local p = spawn("serf-" .. opts.name, argv)
  p.kind = "serf"
  p.name = opts.name
  p.rpc = opts.rpc
  p.bind = opts.bind
  p:wait_ready("==> Serf agent running!")
  return p
end

function M.have_serf()
  local _, status = M.run("command -v serf")
  return status == 0
end

-- Kill every process started so far (spec teardown).
function M.cleanup()
  for _, p in ipairs(started) do p:stop() end
  for _, p in ipairs(started) do os.execute("rm -rf " .. sh_quote(p.dir)) end
  if tmp then os.execute("rmdir " .. sh_quote(tmp) .. " 2>/dev/null") end
  started = {}
end

return M
