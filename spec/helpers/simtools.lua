-- simtools.lua: small helpers for specs of simulated clusters.
local M = {}

-- {"n<from>", ..., "n<to>"}
function M.names(from, to)
  local r = {}
  for i = from, to do r[#r + 1] = "n" .. i end
  return r
end

-- The first event of a kind in a list of membership events, or nil.
function M.first(events, kind)
  for _, e in ipairs(events) do
    if e.event == kind then return e end
  end
end

-- How many events of a kind.
function M.count(events, kind)
  local n = 0
  for _, e in ipairs(events) do
    if e.event == kind then n = n + 1 end
  end
  return n
end

-- A simulation's trace lines ("<seconds> <node> [LEVEL] message") as
-- {t = ms, node =, msg =}.
function M.parse_trace(lines)
  local r = {}
  for _, line in ipairs(lines) do
    local t, node, msg = line:match("^%s*([%d%.]+) (%S+) %[%u+%] (.*)$")
    if t then
      r[#r + 1] = { t = math.floor(tonumber(t) * 1000 + 0.5), node = node,
                    msg = msg }
    end
  end
  return r
end

return M
