-- membership-log.lua: every membership event this node sees, as one JSON
-- line in a file, for audits, dashboards or `jq`.
--
--   HEARSAY_MEMBERSHIP_LOG=/var/log/hearsay/members.jsonl \
--     bin/hearsay agent --name a --bind 127.0.0.1:7946 --script examples/membership-log.lua
--   tail -f /var/log/hearsay/members.jsonl
--
-- Each line holds, in this order: the wall-clock time (UTC, whole seconds),
-- the node's own clock in milliseconds (monotonic; virtual time in a
-- simulation), this node's name, the event (join, update, suspect, alive,
-- dead, left), and the member's name, address, state and incarnation:
--
--   {"time":"2026-11-21T11:31:06Z","clock":81234,"node":"a","event":"dead",
--    "member":"c","addr":"127.0.0.1:7948","state":"dead","incarnation":1}
--
-- The file is opened in append mode and flushed after every line, so a
-- crash loses nothing already logged and log rotation by copy-truncate
-- works. A file that cannot be opened or written (a missing directory, a
-- full disk) is reported in the node's log once, the line is dropped, and
-- the file is tried again at the next event: the node never stops for it.
local hearsay = require "hearsay"
local cjson = require "cjson"

local PATH = os.getenv("HEARSAY_MEMBERSHIP_LOG") or "hearsay-membership.jsonl"

local file         -- the open file, or nil
local failing = false -- a failure was reported and has not cleared yet

local function report(what, err)
  if not failing then
    -- io.open's message starts with the path already
    local why = tostring(err)
    if why:sub(1, #PATH + 2) == PATH .. ": " then why = why:sub(#PATH + 3) end
    hearsay.log("warn", "membership log: cannot " .. what, PATH .. ":", why,
                "(events are dropped until it works again)")
    failing = true
  end
end

-- Write one line; true when it reached the file.
local function append(line)
  if not file then
    local f, err = io.open(PATH, "a")
    if not f then
      report("open", err)
      return false
    end
    file = f
  end
  -- pcall: a closed or broken handle raises instead of returning nil
  local ok, res, err = pcall(function()
    local w, e = file:write(line, "\n")
    if not w then return nil, e end
    return file:flush()
  end)
  if not ok or not res then
    report("write", ok and err or res)
    pcall(file.close, file)
    file = nil -- reopen at the next event
    return false
  end
  if failing then
    hearsay.log("info", "membership log: writing to", PATH, "again")
    failing = false
  end
  return true
end

local function endpoint(m)
  if m.addr:find(":", 1, true) then return "[" .. m.addr .. "]:" .. m.port end
  return m.addr .. ":" .. m.port
end

-- The JSON line, with its keys in a fixed order.
local function line(event, m)
  local me = hearsay.self()
  local fields = {
    { "time", os.date("!%Y-%m-%dT%H:%M:%SZ") },
    { "clock", hearsay.now() },
    -- hearsay.self() is nil only while the node handles its own join
    { "node", me and me.name or m.name },
    { "event", event },
    { "member", m.name },
    { "addr", endpoint(m) },
    { "state", m.state },
    { "incarnation", m.incarnation },
  }
  local parts = {}
  for i, f in ipairs(fields) do
    parts[i] = cjson.encode(f[1]) .. ":" .. cjson.encode(f[2])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

return {
  on_member = function(event, member)
    append(line(event, member))
  end,
}
