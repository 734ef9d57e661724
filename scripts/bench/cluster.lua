-- cluster.lua: N real agents on loopback, as processes, with memberlist's
-- LAN settings. Run by scripts/bench-cluster.
--
--   lua5.4 scripts/bench/cluster.lua [N ...]     (default: 10 50 100)
--
-- For each N: all but the first join the first at once; then a broadcast,
-- a metadata write, a crash (SIGKILL) and a graceful leave (SIGTERM), each
-- timed until every remaining agent has logged it; then, at rest, each
-- agent's memory, CPU, and packets and bytes sent per second. The agents'
-- logs carry millisecond timestamps, so every time is read from them.
-- Writes build/bench/cluster-N.csv (convergence over time) and, with
-- gnuplot installed, build/bench/cluster.png.
local sizes = {}
for _, a in ipairs(arg) do sizes[#sizes + 1] = assert(tonumber(a), a) end
if #sizes == 0 then sizes = { 10, 50, 100 } end

local BIN = "./bin/hearsay"
local OUT = "build/bench"
local HOOKS = "scripts/bench/cluster-hooks.lua"
local SUBNET = "127.0.20."
os.execute("mkdir -p " .. OUT)

local function sh(cmd)
  local f = io.popen(cmd)
  local out = f:read("a")
  f:close()
  return out
end

local function now_ms() return tonumber(sh("date +%s%3N")) end

local function sleep(s) os.execute("sleep " .. s) end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- "2026-11-21T11:30:06.431Z" -> ms since 1970 (UTC, by the calendar).
local function ts_ms(s)
  local y, mo, d, h, mi, se, ms =
    s:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y, mo = y - 1, mo + 12 end
  local days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (mo - 3) + 2)
    // 5 + tonumber(d) - 719469
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000
    + tonumber(se) * 1000 + tonumber(ms)
end

-- Times (ms) of the log lines matching pattern, with the first capture.
local function lines(log, pattern)
  local r = {}
  for line in log:gmatch("[^\n]+") do
    local cap = line:match(pattern)
    if cap then r[#r + 1] = { t = ts_ms(line), cap = cap } end
  end
  return r
end

local Cluster = {}
Cluster.__index = Cluster

function Cluster.start(n)
  local c = setmetatable({ n = n, agents = {} }, Cluster)
  local dir = OUT .. "/cluster-" .. n
  os.execute("rm -rf " .. dir .. " && mkdir -p " .. dir)
  c.dir = dir
  for i = 1, n do
    local ip = SUBNET .. i
    c.agents[i] = { name = "b" .. i, ip = ip, log = dir .. "/b" .. i .. ".log",
                    control = ip .. ":7374" }
  end
  return c
end

function Cluster:spawn(i)
  local a = self.agents[i]
  local join = i > 1 and (" --join " .. SUBNET .. "1:7946") or ""
  local cmd = string.format(
    "%s agent --name %s --bind %s:7946 --control %s --profile lan "
    .. "--log-level info --script %s%s > %s 2>&1 & echo $!",
    BIN, a.name, a.ip, a.control, HOOKS, join, a.log)
  a.pid = tonumber(sh(cmd))
end

-- `hearsay CMD ARGS`: --control goes right after the command, as flags
-- come before the arguments.
function Cluster:cli(i, args)
  local cmd, rest = args:match("^(%S+)(.*)$")
  return sh(string.format("%s %s --control %s%s 2>&1", BIN, cmd,
                          self.agents[i].control, rest))
end

function Cluster:stop_all()
  for _, a in ipairs(self.agents) do
    if a.pid then os.execute("kill -9 " .. a.pid .. " 2>/dev/null") end
  end
  sleep(0.5)
end

-- Wait (polling the logs) until pred() holds or timeout_s passes.
local function wait(pred, timeout_s)
  local deadline = os.time() + timeout_s
  while os.time() <= deadline do
    if pred() then return true end
    sleep(0.2)
  end
  return pred()
end

-- Every agent but `skip` has logged a line matching pattern: the time of
-- the last of them (ms), or nil.
function Cluster:all_logged(pattern, skip)
  local last = 0
  for i, a in ipairs(self.agents) do
    if not skip[i] then
      local l = lines(read(a.log), pattern)
      if #l == 0 then return nil end
      last = math.max(last, l[1].t)
    end
  end
  return last
end

function Cluster:bench()
  local n = self.n
  local row = { n = n }
  self:spawn(1)
  assert(wait(function() return self:cli(1, "members"):match("b1") end,
              10), "the seed did not start")
  -- all the others at once
  local t0 = now_ms()
  for i = 2, n do self:spawn(i) end
  -- converged: every agent has logged a join of every other
  local want = n - 1
  local function joins(i)
    local seen, t = {}, {}
    for _, l in ipairs(lines(read(self.agents[i].log),
                             "member joined: member=(%S+)")) do
      if not seen[l.cap] and l.cap ~= self.agents[i].name then
        seen[l.cap] = true
        t[#t + 1] = l.t
      end
    end
    table.sort(t)
    return t
  end
  local ok = wait(function()
    for i = 1, n do
      if #joins(i) < want then return false end
    end
    return true
  end, 120)
  row.converged = ok
  -- convergence over time, from the logs
  local curves, last = {}, 0
  for i = 1, n do
    curves[i] = joins(i)
    if #curves[i] >= want then last = math.max(last, curves[i][want]) end
  end
  row.converge_ms = ok and last - t0 or nil
  local csv = assert(io.open(OUT .. "/cluster-" .. n .. ".csv", "w"))
  csv:write("ms,agents_seeing_all,members_seen_avg\n")
  local step = 50
  for t = 0, (ok and last - t0 or 120000) + step, step do
    local complete, seen = 0, 0
    for i = 1, n do
      local k = 0
      for _, jt in ipairs(curves[i]) do
        if jt - t0 <= t then k = k + 1 end
      end
      seen = seen + k + 1 -- itself
      if k >= want then complete = complete + 1 end
    end
    csv:write(string.format("%d,%d,%.2f\n", t, complete, seen / n))
  end
  csv:close()
  sleep(3)

  -- a broadcast (from b1, started by a kv write it sees as its own)
  local skip = {}
  local tb = now_ms()
  self:cli(1, "kv put bench/broadcast go-" .. n)
  local bpat = "script: bench: message go%-" .. n
  wait(function() return self:all_logged(bpat, { [1] = true }) end, 30)
  local tbl = self:all_logged(bpat, { [1] = true })
  -- from the moment b1 sent it
  local sent = lines(read(self.agents[1].log),
                     "script: bench: broadcast (go%-" .. n .. ")")[1]
  row.broadcast_ms = tbl and tbl - (sent and sent.t or tb) or nil

  -- a metadata write from the last agent
  local tm = now_ms()
  self:cli(n, "kv put bench/meta m-" .. n)
  wait(function() return self:all_logged("script: bench: meta m%-" .. n, skip)
  end, 30)
  local tml = self:all_logged("script: bench: meta m%-" .. n, skip)
  -- from the moment the writer stored it
  local put = lines(read(self.agents[n].log),
                    "metadata published: key=(bench/meta)")[1]
  row.meta_ms = tml and tml - (put and put.t or tm) or nil

  -- at rest: memory, CPU, traffic
  sleep(5)
  local function cpu_ticks(pid)
    local st = read("/proc/" .. pid .. "/stat")
    local fields = {}
    for f in (st:match("%) (.*)") or ""):gmatch("%S+") do
      fields[#fields + 1] = f
    end
    return (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
  end
  local function traffic(i)
    local ok2, doc = pcall(function()
      local cjson = require "cjson"
      local d = cjson.decode(self:cli(i, "stats --format json"))
      return d.stats or d
    end)
    if not ok2 then return 0, 0 end
    return doc.packets_out or 0, doc.bytes_out or 0
  end
  local c0, p0, b0 = {}, {}, {}
  for i, a in ipairs(self.agents) do
    c0[i] = cpu_ticks(a.pid)
    p0[i], b0[i] = traffic(i)
  end
  local w0 = now_ms()
  sleep(10)
  local secs = (now_ms() - w0) / 1000
  local rss, cpu, pk, by = 0, 0, 0, 0
  for i, a in ipairs(self.agents) do
    rss = rss + (tonumber(read("/proc/" .. a.pid .. "/status")
      :match("VmRSS:%s+(%d+)")) or 0)
    cpu = cpu + (cpu_ticks(a.pid) - c0[i])
    local p, b = traffic(i)
    pk = pk + (p - p0[i])
    by = by + (b - b0[i])
  end
  local hz = tonumber(sh("getconf CLK_TCK")) or 100
  row.rss_kb = rss / n
  row.cpu_pct = cpu / hz / secs / n * 100
  row.pps = pk / secs / n
  row.bps = by / secs / n

  -- a crash: SIGKILL b2
  local victim = 2
  skip = { [victim] = true }
  local tk = now_ms()
  os.execute("kill -9 " .. self.agents[victim].pid)
  self.agents[victim].pid = nil
  local pat = "member dead: member=b" .. victim .. " "
  wait(function() return self:all_logged(pat, skip) end, 120)
  local tkl = self:all_logged(pat, skip)
  row.crash_ms = tkl and tkl - tk or nil

  -- a graceful leave: SIGTERM b3
  local leaver = 3
  local skip2 = { [victim] = true, [leaver] = true }
  local tl = now_ms()
  os.execute("kill -TERM " .. self.agents[leaver].pid)
  pat = "member left: member=b" .. leaver .. " "
  wait(function() return self:all_logged(pat, skip2) end, 60)
  local tll = self:all_logged(pat, skip2)
  row.leave_ms = tll and tll - tl or nil
  return row
end

local function fmt(ms)
  return ms and string.format("%.2f s", ms / 1000) or "-"
end

print(string.format("hearsay agents on loopback, LAN settings, %s, %s cores",
                    sh("uname -m"):gsub("%s+$", ""),
                    sh("nproc"):gsub("%s+$", "")))
print()
io.stdout:flush()
local rows = {}
for _, n in ipairs(sizes) do
  io.stderr:write(string.format("running %d agents ...\n", n))
  local c = Cluster.start(n)
  local ok, row = pcall(c.bench, c)
  c:stop_all()
  if not ok then
    io.stderr:write("N=" .. n .. ": " .. tostring(row) .. "\n")
    row = { n = n }
  end
  rows[#rows + 1] = row
end

local function line(cells) print("| " .. table.concat(cells, " | ") .. " |") end
line{ "agents", "join (all see all)", "broadcast to all", "metadata to all",
      "crash seen by all", "leave seen by all", "RSS per agent",
      "CPU per agent", "packets/s per agent", "bytes/s per agent" }
line{ "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:",
      "---:", "---:" }
for _, r in ipairs(rows) do
  line{ tostring(r.n), fmt(r.converge_ms), fmt(r.broadcast_ms),
        fmt(r.meta_ms), fmt(r.crash_ms), fmt(r.leave_ms),
        r.rss_kb and string.format("%.1f MB", r.rss_kb / 1024) or "-",
        r.cpu_pct and string.format("%.2f%%", r.cpu_pct) or "-",
        r.pps and string.format("%.1f", r.pps) or "-",
        r.bps and string.format("%.0f", r.bps) or "-" }
end
print()
print("CSV: " .. OUT .. "/cluster-N.csv (ms since the joins began, agents "
      .. "that see every other, members seen on average)")

-- The plot, if gnuplot is there.
if sh("command -v gnuplot"):match("gnuplot") then
  local plots = {}
  for _, r in ipairs(rows) do
    plots[#plots + 1] = string.format(
      "'%s/cluster-%d.csv' using ($1/1000):($3/%d*100) with lines "
      .. "title 'N=%d'", OUT, r.n, r.n, r.n)
  end
  local gp = assert(io.popen("gnuplot", "w"))
  gp:write(string.format([[
set terminal png size 900,500
set output '%s/cluster.png'
set datafile separator ','
set xlabel 'seconds since all agents began to join'
set ylabel 'members seen, %% of the cluster (average over agents)'
set yrange [0:105]
set key bottom right
set grid
plot %s
]], OUT, table.concat(plots, ", ")))
  gp:close()
  print("plot: " .. OUT .. "/cluster.png")
else
  print("plot: install gnuplot (scripts/install-deps.sh bench) for "
        .. OUT .. "/cluster.png")
end
