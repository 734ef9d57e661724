-- sim.lua: what hearsay.sim costs and what the protocol does at scale,
-- with memberlist's LAN settings. Run by scripts/bench-sim.
-- A false suspicion is one a node raises itself (a failed probe) about a
-- node that is running; the nodes that merely hear it are not counted.
--
--   lua5.4 scripts/bench/sim.lua [N ...]      (default: 100 1000 10000)
--
-- For each N it measures, in virtual time:
--   bootstrap   all N nodes join n1 at once; until every node sees every
--               other alive
--   broadcast   a rumor from one node: gossip rounds and time until 99.9%
--               and 100% of the others delivered it
--   detection   a node crashes: until the first suspicion, and until every
--               node declares it dead
--   loss        false suspicions per node-hour with 5% and 20% packet loss
-- and the simulation's own cost: wall time per virtual second, memory,
-- and (below 5,000 nodes) the wall time of 60 virtual seconds from a cold
-- start.
local simlib = require "hearsay.sim"

local sizes = {}
for _, a in ipairs(arg) do sizes[#sizes + 1] = assert(tonumber(a), a) end
if #sizes == 0 then sizes = { 100, 1000, 10000 } end

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local kb = 0
  for l in f:lines() do
    local v = l:match("^VmRSS:%s+(%d+)")
    if v then kb = tonumber(v) end
  end
  f:close()
  return kb
end

local function available_kb()
  local f = io.open("/proc/meminfo")
  if not f then return math.huge end
  for l in f:lines() do
    local v = l:match("^MemAvailable:%s+(%d+)")
    if v then f:close() return tonumber(v) end
  end
  f:close()
  return math.huge
end

local function wall() return os.clock() end

local GOSSIP_MS, PROBE_MS = 200, 1000 -- LAN
-- From this many nodes on, the cheaper run described in bench() below.
local BIG = tonumber(os.getenv("BENCH_SIM_BIG") or "") or 5000
-- BENCH_SIM_SEEDS=k: the nodes join k seeds (the seeds join n1), one in
-- k each, instead of all joining n1: a cheaper bootstrap to simulate at
-- 10,000 nodes (every node does not learn the whole cluster at once).
local SEEDS = math.max(1, tonumber(os.getenv("BENCH_SIM_SEEDS") or "") or 1)

-- A line on stderr now and then through a long bootstrap.
local last_progress = 0
local function progress(sim, t0)
  if wall() - last_progress < 60 then return end
  last_progress = wall()
  io.stderr:write(string.format("  virtual %.0f s, wall %.0f s, %d MB, "
    .. "%d queued\n", sim:now() / 1000, wall() - t0, rss_kb() // 1024,
    sim:queued()))
  io.stderr:flush()
end

-- Each result on stderr as soon as it is measured, so that a long run
-- cut short still tells what it saw.
local function note(fmt, ...)
  io.stderr:write("  " .. string.format(fmt, ...) .. "\n")
  io.stderr:flush()
end

-- Each N runs in a fresh simulation per scenario; returns a row.
local function bench(n)
  local row = { n = n }
  local base_rss = rss_kb()

  -- Deliveries of rumors, counted by the hooks of every node.
  local delivered, first_suspect = 0, nil
  local hooks = {
    on_message = function() delivered = delivered + 1 end,
    on_member = function(event, m)
      if event == "suspect" and m.name == "victim" and not first_suspect then
        first_suspect = true
      end
    end,
  }

  -- ===== bootstrap =====
  -- From 5,000 nodes on, packets are not compressed: LZW is a third of
  -- the simulation's work and changes no protocol decision (packets are
  -- filled before they are compressed).
  local big = n >= BIG
  row.big = big
  local opts = { seed = 1, profile = "lan" }
  if big then opts.enable_compression = false end
  local sim = simlib.new(opts)
  local t0 = wall()
  if SEEDS > 1 then
    sim:add(SEEDS, { hooks = hooks })
    local groups = {}
    for i = SEEDS + 1, n - 1 do
      local k = 1 + i % SEEDS
      groups[k] = groups[k] or {}
      groups[k][#groups[k] + 1] = "n" .. i
    end
    for k = 1, SEEDS do
      sim:add(groups[k], { hooks = hooks, join = "n" .. k })
    end
  else
    -- All join n1 at once: past its listen backlog (128 streams in
    -- service, 4,096 waiting) their SYNs are dropped and sent again a
    -- second later.
    sim:add(n - 1, { hooks = hooks })
  end
  sim:add({ "victim" }, { hooks = hooks })
  local step = big and 2000 or 500
  local ok, took = sim:run_until(function()
    if big then progress(sim, t0) end
    return sim:converged()
  end, 3600 * 1000, step)
  row.boot_ok = ok
  row.bootstrap = took
  row.boot_wall = wall() - t0
  row.rss = rss_kb() - base_rss
  note("bootstrap: %s, virtual %.1f s, wall %.1f s, %.0f KB per node",
       ok and "converged" or "NOT converged", took / 1000, row.boot_wall,
       row.rss / n)
  -- until the bootstrap's news is all gossiped (not waited for from
  -- 5,000 nodes on: hours of wall time)
  if not big then
    ok, took = sim:run_until(function() return sim:queued() == 0 end,
                             3600 * 1000, step)
    row.drained = ok and row.bootstrap + took or nil
  end

  -- ===== steady state: what a virtual second costs =====
  local w0 = wall()
  local secs = big and 20 or 60
  sim:run(secs * 1000)
  row.ratio = (wall() - w0) / secs
  note("%.3f wall s per virtual s", row.ratio)

  -- ===== broadcast =====
  delivered = 0
  local start = sim:now()
  assert(sim:node("n1"):broadcast("rumor"))
  local want999 = math.ceil((n - 1) * 0.999)
  local t999
  -- From 5,000 nodes the rumor waits behind the bootstrap's membership
  -- news (memberlist fills a packet with its own broadcasts first): half a
  -- virtual minute at most.
  ok = sim:run_until(function()
    if not t999 and delivered >= want999 then t999 = sim:now() - start end
    return delivered >= n - 1
  end, big and 30000 or 120000, 10)
  row.bcast999 = t999
  row.bcast100 = ok and sim:now() - start or nil
  note("rumor: 99.9%% at %s, 100%% at %s (virtual ms; nil: not reached)",
       tostring(t999), tostring(row.bcast100))

  -- ===== detection =====
  first_suspect = nil
  sim:kill("victim")
  local killed = sim:now()
  local t_first
  ok = sim:run_until(function()
    if big then progress(sim, t0) end
    if first_suspect and not t_first then t_first = sim:now() - killed end
    return sim:count_seeing("victim", "dead") == n - 1
  end, 600000, 100)
  row.suspect_first = t_first
  row.dead_all = ok and sim:now() - killed or nil
  note("crash: first suspicion %s, all see it dead %s (virtual ms)",
       tostring(t_first), tostring(row.dead_all))

  -- ===== false suspicions under loss =====
  row.fp = {}
  if big then
    -- The same cluster (a second bootstrap would double the run), 20
    -- virtual seconds at each loss rate.
    for _, loss in ipairs{ 0.05, 0.20 } do
      local before = sim:stats().false_raised
      sim:link{ latency = 1, loss = loss }
      sim:run(20000)
      row.fp[loss] = (sim:stats().false_raised - before) / n * 180
      note("%.0f%% loss: %.2f false suspicions per node-hour", loss * 100,
           row.fp[loss])
      sim:link{ latency = 1, loss = 0 }
      sim:run(10000)
    end
    return row
  end
  sim = nil
  collectgarbage()
  -- Fresh clusters: stable for a while, then the given loss on every link.
  for _, loss in ipairs{ 0.05, 0.20 } do
    local s = simlib.new{ seed = 2, profile = "lan" }
    s:add(n)
    s:run_until(function() return s:converged() end, 3600 * 1000, step)
    local minutes = n >= 5000 and 1 or (n >= 1000 and 2 or 10)
    local before = s:stats().false_raised
    s:link{ latency = 1, loss = loss }
    s:run(minutes * 60000)
    local fs = s:stats().false_raised - before
    row.fp[loss] = fs / n / (minutes / 60)
    s = nil
    collectgarbage()
  end
  -- The issue's yardstick: all N added at once and run for 60 virtual
  -- seconds, bootstrap included.
  do
    local c0 = wall()
    local s = simlib.new{ seed = 3, profile = "lan" }
    s:add(n)
    s:run(60000)
    row.cold60 = wall() - c0
  end
  collectgarbage()
  note("60 virtual s from a cold start: %.1f wall s", row.cold60)
  return row
end

local function fmt_ms(v)
  if not v then return "-" end
  return string.format("%.1f s", v / 1000)
end

print(string.format("hearsay.sim, LAN settings, on %s, one core",
                    io.popen("uname -m"):read("l")))
print()
io.stdout:flush()
local rows = {}
for _, n in ipairs(sizes) do
  -- About 200 bytes per member entry at the bootstrap's peak, n * n of
  -- them: skip what this machine cannot hold.
  local need = n * n * 0.2 -- kB
  if need > available_kb() * 0.9 then
    print(string.format("N=%d: skipped, needs about %.0f GB (n^2 member "
      .. "entries), %.0f GB available", n, need / 1e6,
      available_kb() / 1e6))
    rows[#rows + 1] = { n = n, skipped = need }
  else
    io.stderr:write(string.format("running N=%d ...\n", n))
    io.stderr:flush()
    rows[#rows + 1] = bench(n)
  end
end
print()

local function line(cells)
  print("| " .. table.concat(cells, " | ") .. " |")
end
line{ "N", "bootstrap (virtual)", "bootstrap (wall)", "queues empty",
      "wall s per virtual s", "memory per node", "broadcast 99.9%",
      "broadcast 100%",
      "gossip rounds (100%)", "expected rounds ~ln N/ln 4",
      "first suspicion", "all see it dead", "false susp./node-hour 5%",
      "20%" }
line{ "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:",
      "---:", "---:", "---:", "---:", "---:", "---:" }
for _, r in ipairs(rows) do
  if r.skipped then
    line{ tostring(r.n), "skipped", "", "", "", string.format(
          "~%.0f KB est.", r.skipped / r.n), "", "", "", "", "", "", "",
          "" }
  else
    line{ tostring(r.n),
          r.boot_ok and fmt_ms(r.bootstrap) or "not in 1h",
          string.format("%.1f s", r.boot_wall),
          fmt_ms(r.drained),
          string.format("%.3f", r.ratio),
          string.format("%.0f KB", r.rss / r.n),
          fmt_ms(r.bcast999), fmt_ms(r.bcast100),
          r.bcast100 and string.format("%.1f", r.bcast100 / GOSSIP_MS)
            or "-",
          string.format("%.1f", math.log(r.n) / math.log(4)),
          fmt_ms(r.suspect_first), fmt_ms(r.dead_all),
          string.format("%.2f", r.fp[0.05]),
          string.format("%.2f", r.fp[0.20]) }
  end
end
print()
local cold = {}
for _, r in ipairs(rows) do
  if r.cold60 then
    cold[#cold + 1] = string.format("%d nodes %.1f s", r.n, r.cold60)
  end
end
if #cold > 0 then
  print("60 virtual s from a cold start (all N added at once, bootstrap "
    .. "included), wall time on one core: " .. table.concat(cold, ", ")
    .. ".")
  print()
end
print(string.format("From %d nodes on: packets are not compressed, the "
  .. "queues are not waited for, a virtual second's cost is taken over 20 "
  .. "s, a rumor is followed for 30 virtual s at most, and false "
  .. "suspicions are counted for 20 virtual s at each loss rate on the "
  .. "bootstrapped cluster.", BIG))
if SEEDS > 1 then
  print(string.format("The nodes joined %d seeds (one in %d each; the seeds "
    .. "joined n1), not n1 alone (BENCH_SIM_SEEDS).", SEEDS, SEEDS))
end
print()
print(string.format("SWIM expects the first detection of a crash after "
  .. "e/(e-1) = %.2f protocol periods on average (%.1f s at a %d ms probe "
  .. "interval), and a rumor to reach everyone in O(log N) gossip rounds; "
  .. "\"all see it dead\" adds Lifeguard's suspicion timeout (between "
  .. "4 * log10(N) and 24 * log10(N) seconds, shortened by confirmations) "
  .. "and the gossip of the death.", math.exp(1) / (math.exp(1) - 1),
  math.exp(1) / (math.exp(1) - 1) * PROBE_MS / 1000, PROBE_MS))
