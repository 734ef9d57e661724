-- growth.lua: what the member table's growth limits (max_new_members,
-- new_member_rate) cost a legitimate cluster and what they spare it
-- under attack, in virtual time, with and without them (0 = no limit,
-- memberlist's behaviour).
--
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./lib/?.so;;" \
--     lua5.4 scripts/bench/growth.lua [N [SEEDS]]     (default 1000 6)
--
-- bootstrap  N nodes join n1 at once (as scripts/bench-sim): until every
--            node sees every other alive, per seed
-- attack     8 nodes; a stranger's push/pull listing 20,000 invented
--            members reaches each, and a node crashes right after: until
--            no node sees it alive or suspect (at most an hour)
local core = require "hearsay.core"
local simlib = require "hearsay.sim"

local N = tonumber(arg[1] or "") or 1000
local SEEDS = tonumber(arg[2] or "") or 6

local function bootstrap(seed, cap)
  local sim = simlib.new{ seed = seed, profile = "lan", max_new_members = cap }
  sim:add(N - 1)
  sim:add({ "victim" })
  local ok, took = sim:run_until(function() return sim:converged() end,
                                 3600 * 1000, 100)
  local refused = 0
  for i = 1, N - 1 do
    refused = refused + sim:node("n" .. i):stats().dropped.member_limit
  end
  return ok and took or nil, refused
end

local function invented(n)
  local states = {}
  for i = 1, n do
    states[i] = { Name = "fake" .. i,
                  Addr = string.char(10, 9, (i >> 8) & 255, i & 255),
                  Port = 7946, Incarnation = 1, State = 0,
                  Vsn = "\1\5\2\2\5\5" }
  end
  return core.encode({ type = "push-pull", Join = false, states = states },
                     "stream")
end

local function attack(seed, cap, sync)
  local sim = simlib.new{ seed = seed, profile = "lan", max_new_members = cap }
  sim:add(8)
  sim:run_until(function() return sim:converged() end, 10000, 100)
  for i = 1, 8 do sim:inject_stream("n" .. i, sync, true) end
  sim:run(100)
  sim:kill("n8")
  local ok, took = sim:run_until(function()
    return sim:count_seeing("n8", "alive") + sim:count_seeing("n8", "suspect")
      == 0
  end, 3600 * 1000, 100)
  return ok and took or nil
end

local function s(ms) return ms and string.format("%.1f s", ms / 1000) or "> 1 h" end

print(string.format("| seed | bootstrap of %d, no limit | with the limits (refused) |", N))
print("| ---: | ---: | ---: |")
local sum0, sum1 = 0, 0
for seed = 1, SEEDS do
  local t0 = bootstrap(seed, 0)
  local t1, refused = bootstrap(seed, 32)
  sum0, sum1 = sum0 + (t0 or 0), sum1 + (t1 or 0)
  print(string.format("| %d | %s | %s (%d) |", seed, s(t0), s(t1), refused))
  io.stdout:flush()
end
print(string.format("| mean | %s | %s |", s(sum0 / SEEDS), s(sum1 / SEEDS)))
print()
local sync = invented(20000)
print("| seed | crash found in 8 nodes after 20,000 invented, no limit | with the limits |")
print("| ---: | ---: | ---: |")
for seed = 11, 13 do
  print(string.format("| %d | %s | %s |", seed, s(attack(seed, 0, sync)),
                      s(attack(seed, 32, sync))))
  io.stdout:flush()
end
