-- hearsay.sim: a deterministic simulated network for specs, many nodes
-- in one process under a virtual clock. The protocol core is the real one
-- (src/sim.c implements its io in memory).
--
--   local sim = require("hearsay.sim").new{ seed = 42, profile = "lan" }
--   sim:add(5)                      -- n1..n5, each joining n1
--   sim:run(5000)                   -- 5 virtual seconds
--   assert(sim:converged())
local core = require "hearsay.core"

local M = {}

local Sim = {}
Sim.__index = Sim

local Node = {}
Node.__index = Node

-- Options of new() that belong to the simulation itself; every other key
-- is a configuration key applied to all nodes (probe_interval = "500ms").
local SIM_OPTS = { seed = true, latency = true, jitter = true, loss = true,
                   log = true, print = true, trace = true, events = true }

local function copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

function M.new(opts)
  opts = opts or {}
  local simopts, defaults = {}, {}
  for k, v in pairs(opts) do
    if SIM_OPTS[k] then simopts[k] = v else defaults[k] = v end
  end
  if simopts.events == nil then simopts.events = true end
  local c = assert(core.sim(simopts))
  return setmetatable({ c = c, defaults = defaults, seed = opts.seed or 1,
                        seeds = {} }, Sim)
end

-- sim:add(n | {names}, opts) -> array of names. Each new node joins the
-- first node of the simulation unless opts.join == false (or a name or a
-- list of names to join).
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
function Sim:now() return self.c:now() end

-- Run until pred() holds, checking every `step` ms; returns true and the
-- virtual time it took, or false after max_ms.
function Sim:run_until(pred, max_ms, step)
  step = step or 10
  local start = self.c:now()
  while true do
    if pred() then return true, self.c:now() - start end
    if self.c:now() - start >= max_ms then return false, max_ms end
    self.c:run(step)
  end
end

function Sim:names()
  local r = {}
  for i = 1, self.c:count() do r[i] = self.c:name(i) end
  return r
end

function Sim:kill(name) self.c:kill(name) end
function Sim:pause(name, ms) self.c:pause(name, ms) end
function Sim:leave(name, timeout) return self.c:leave(name, timeout) end
function Sim:alive(name) return self.c:alive(name) end
function Sim:heal() self.c:heal() end
function Sim:block(a, b, what) self.c:block(a, b, what) end
function Sim:inject(name, bytes, from) self.c:inject(name, bytes, from) end
function Sim:inject_stream(name, bytes, close)
  return self.c:inject_stream(name, bytes, close)
end
function Sim:events() return self.c:events() or {} end
function Sim:trace() return self.c:trace() or {} end
function Sim:stats(name) return self.c:stats(name) end
function Sim:addr(name) return self.c:addr(name) end

-- Restart a killed (or running) node with a fresh state; it joins the
-- nodes it joined first.
function Sim:restart(name)
  assert(self.c:restart(name))
  local seeds = self.seeds[name]
  if seeds then self.c:join(name, table.unpack(seeds)) end
end

-- Nodes of group a and group b can no longer reach each other.
function Sim:partition(a, b)
  for _, x in ipairs(a) do self.c:group(x, 1) end
  for _, x in ipairs(b) do self.c:group(x, 2) end
end

function Sim:node(name)
  return setmetatable({ sim = self, name = name }, Node)
end

-- True when every running node sees exactly the running nodes as alive.
function Sim:converged()
  local live = {}
  local n = 0
  for _, name in ipairs(self:names()) do
    if self.c:alive(name) then live[name] = true; n = n + 1 end
  end
  for name in pairs(live) do
    local seen = 0
    for _, m in ipairs(self.c:members(name)) do
      if m.state == "alive" then
        if not live[m.name] then return false end
        seen = seen + 1
      end
    end
    if seen ~= n then return false end
  end
  return true
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

function Node:members()
  return self.sim.c:members(self.name)
end

function Node:member(name)
  return self.sim.c:member(self.name, name)
end

function Node:stats() return self.sim.c:stats(self.name) end
function Node:health() return self.sim.c:health(self.name) end
function Node:stop() self.sim.c:stop(self.name) end
function Node:start() self.sim.c:start(self.name) end
function Node:leave(timeout) return self.sim.c:leave(self.name, timeout) end
function Node:join(...) return self.sim.c:join(self.name, ...) end

-- Cluster metadata on this node.
function Node:publish(key, value) return self.sim.c:publish(self.name, key, value) end
function Node:delete(key) return self.sim.c:publish(self.name, key, nil) end
function Node:read(key) return self.sim.c:read(self.name, key) end
function Node:nkeys(prefix) return self.sim.c:keys(self.name, prefix) end
-- Shift this node's wall clock by ms (its metadata versions follow).
function Node:clock(ms) self.sim.c:clock(self.name, ms) end

-- The state in which this node sees `member`, or nil.
function Node:state_of(member)
  local m = self:member(member)
  return m and m.state
end

return M
