-- hearsay.sim: a deterministic simulated network for specs, many nodes
-- in one process under a virtual clock. The protocol core and the hooks
-- are the real ones; only the network and the clock are simulated
-- (src/io/sim.c implements the core's io in memory).
--
--   local sim = require("hearsay.sim").new{ seed = 42, profile = "lan" }
--   sim:add(5, { scripts = { "my_hooks.lua" } })  -- n1..n5, joining n1
--   sim:run(5000)                                  -- 5 virtual seconds
--   assert(sim:converged())
--   sim:node("n3"):publish("config", "v1")         -- the hearsay API
local core = require "hearsay.core"

local M = {}

local Sim = {}
Sim.__index = Sim

-- Options of new() that belong to the simulation itself; the link keys
-- set the default link; every other key is a configuration key applied
-- to all nodes (probe_interval = "500ms").
local SIM_OPTS = { seed = true, log = true, print = true, trace = true,
                   events = true, backlog = true }
local LINK_OPTS = { latency = true, jitter = true, loss = true,
                    duplicate = true, reorder = true, reorder_ms = true,
                    bandwidth = true }

local function copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

-- new{ seed = 1, profile = "lan", latency = 1, loss = 0, ...,
--      trace = false, events = false, print = false, log = "info",
--      backlog = 4096, <any configuration key> }
function M.new(opts)
  opts = opts or {}
  local simopts, link, defaults = {}, nil, {}
  for k, v in pairs(opts) do
    if SIM_OPTS[k] then
      simopts[k] = v
    elseif LINK_OPTS[k] then
      link = link or {}
      link[k] = v
    else
      defaults[k] = v
    end
  end
  local c = assert(core.sim(simopts))
  if link then c:link(link) end
  local self = setmetatable({ c = c, defaults = defaults,
                              seed = opts.seed or 1, seeds = {},
                              nodes = {} }, Sim)
  -- The seeds made lately, for hearsay.busted to name when a test fails.
  M.made = M.made or {}
  if #M.made >= 16 then table.remove(M.made, 1) end
  M.made[#M.made + 1] = self.seed
  return self
end

-- sim:add(n | {names}, opts) -> array of names. opts: hooks (a table of
-- hooks, or a list of them), scripts (hook script files, loaded for each
-- node and again at each restart), join (false, a name, or a list of
-- names; default: the first node of the simulation), and any
-- configuration key.
function Sim:add(what, opts)
  opts = opts or {}
  local names = {}
  if type(what) == "number" then
    local base = self.c:count()
    for i = 1, what do names[i] = "n" .. (base + i) end
  else
    names = what
  end
  for _, name in ipairs(names) do
    local cfg = copy(self.defaults)
    for k, v in pairs(opts) do
      if k ~= "join" then cfg[k] = v end
    end
    cfg.name = name
    local idx = assert(self.c:add(cfg))
    local join = opts.join
    if join == nil and idx > 1 then join = self.c:name(1) end
    if join then
      local seeds = type(join) == "table" and join or { join }
      self.seeds[name] = seeds
      self.c:join(name, table.unpack(seeds))
    end
  end
  return names
end

function Sim:run(ms) self.c:run(ms) end
-- The level of the log lines kept by trace = true (or printed by print =
-- true) from now on: "debug", "info", "warn", "error" or "off".
function Sim:log_level(level) self.c:log_level(level) end
function Sim:now() return self.c:now() end

-- Run until pred() holds, checking every `step` ms (default 10); returns
-- true and the virtual time it took, or false after max_ms.
function Sim:run_until(pred, max_ms, step)
  step = step or 10
  local start = self.c:now()
  while true do
    if pred() then return true, self.c:now() - start end
    if self.c:now() - start >= max_ms then return false, max_ms end
    self.c:run(math.min(step, max_ms - (self.c:now() - start)))
  end
end

function Sim:names()
  local r = {}
  for i = 1, self.c:count() do r[i] = self.c:name(i) end
  return r
end

function Sim:count() return self.c:count() end

-- ===== Faults =====

-- Crash a node: no goodbye, its sockets vanish.
function Sim:kill(name) self.c:kill(name) end
-- Freeze a node for ms (a stopped or very slow process): what reaches it
-- waits, its timers fire late.
function Sim:pause(name, ms) self.c:pause(name, ms) end
function Sim:paused(name) return self.c:paused(name) end
-- A slow process: everything it receives reaches it ms late, while its
-- timers keep time (its probes time out before it reads their acks).
-- 0 makes it normal again.
function Sim:slow(name, ms) self.c:slow(name, ms) end
-- A graceful leave (memberlist's Leave).
function Sim:leave(name, timeout) return self.c:leave(name, timeout) end
-- Is the node running (not killed)?
function Sim:alive(name) return self.c:alive(name) end

-- Restart a killed (or running) node with a fresh state; its scripts
-- are loaded again, and it joins the nodes it joined first.
function Sim:restart(name)
  assert(self.c:restart(name))
  local seeds = self.seeds[name]
  if seeds then self.c:join(name, table.unpack(seeds)) end
end

-- Nodes of group a and group b can no longer reach each other (nor
-- anyone outside both lists).
function Sim:partition(a, b)
  for _, x in ipairs(a) do self.c:group(x, 1) end
  for _, x in ipairs(b or {}) do self.c:group(x, 2) end
end

-- Undo every partition and block.
function Sim:heal() self.c:heal() end

-- Block the link from a to b one way: "all" (default), "udp" (packets
-- only: streams still pass, as a firewall dropping UDP) or "none".
function Sim:block(a, b, what) self.c:block(a, b, what) end

-- sim:link{...} sets the default link of every pair; sim:link(a, b,
-- {...}) the link from a to b only (nil: back to the default). Keys:
-- latency (ms, or {min, max} uniform, or {mean =, sd =} normal), jitter,
-- loss, duplicate, reorder (probabilities), reorder_ms, bandwidth
-- (bytes per second).
function Sim:link(a, b, spec)
  if type(a) == "table" then
    self.c:link(a)
  else
    self.c:link_between(a, b, spec)
  end
end

-- Deliver raw bytes to a node as a datagram (from "ip:port"), or as a
-- stream that stays open unless close is true.
function Sim:inject(name, bytes, from) self.c:inject(name, bytes, from) end
function Sim:inject_stream(name, bytes, close)
  return self.c:inject_stream(name, bytes, close)
end

-- ===== Observation =====

-- Membership events ({t, node, event, member, incarnation}) when the
-- simulation was made with events = true.
function Sim:events() return self.c:events() or {} end
-- Log lines ("<seconds> <node> [<level>] <message>") when made with
-- trace = true: the same seed and calls give the same lines.
function Sim:trace() return self.c:trace() or {} end
-- sim:stats() -> the network's totals: packets, bytes, lost, blocked,
-- duplicated, reordered, streams, backlogged, syn_retries; suspicions
-- (each node that hears one counts it) and raised (from a node's own
-- failed probe);
-- deaths; and false_suspicions, false_raised, false_deaths: those about
-- a node that was running, not frozen. sim:stats(name) -> that node's
-- counters (hearsay.stats()) and its share of those under .sim.
function Sim:stats(name) return self.c:stats(name) end
function Sim:addr(name) return self.c:addr(name) end

-- True when every running node sees exactly the running nodes (itself
-- included) as alive.
function Sim:converged() return self.c:converged() end

-- Broadcasts waiting in the queues of all running nodes (0: the cluster
-- has nothing left to gossip).
function Sim:queued() return self.c:queued() end

-- How many running nodes see `member` in `state` ("alive", "suspect",
-- "dead", "left").
function Sim:count_seeing(member, state)
  return self.c:count_seeing(member, state)
end

-- Membership events seen by node `name` about `member` (any if nil).
function Sim:events_of(name, member)
  local r = {}
  for _, e in ipairs(self:events()) do
    if e.node == name and (member == nil or e.member == member) then
      r[#r + 1] = e
    end
  end
  return r
end

-- ===== Nodes =====

-- A simulated node: every function of the hearsay API as a method
-- (members, member, self, publish, read, delete, keys, broadcast, send,
-- every, after, join, leave, stop, start, health, stats, ...), plus
-- state_of, nkeys and clock. The same object survives restarts.
local Node = {}

function Node.__index(node, k)
  local own = Node[k]
  if own ~= nil then return own end
  local api = node.api
  local f = api[k]
  if type(f) ~= "function" then return nil end
  return function(self, ...)
    if self == node then return f(api, ...) end
    return f(self, ...)
  end
end

function Sim:node(name)
  local n = self.nodes[name]
  if n then return n end
  n = setmetatable({ sim = self, name = name, api = self.c:node(name) },
                   Node)
  self.nodes[name] = n
  return n
end

-- The node's counters, with the network's view of it under .sim.
function Node:stats() return self.sim.c:stats(self.name) end

-- The state in which this node sees `member`, or nil.
function Node:state_of(member)
  local m = self.sim.c:member(self.name, member)
  return m and m.state
end

-- The number of live metadata keys (starting with prefix).
function Node:nkeys(prefix) return self.sim.c:keys(self.name, prefix) end

-- Shift this node's wall clock by ms (its metadata versions follow).
function Node:clock(ms) self.sim.c:clock(self.name, ms) end

return M
