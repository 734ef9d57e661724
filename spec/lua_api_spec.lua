-- lua_api_spec.lua: the `hearsay` API and the hooks, on nodes started in
-- this process on loopback sockets. #net
local hearsay = require "hearsay"

local nodes = {}
local port = 7946

-- Start a node on its own loopback address.
local function node(name, opts)
  opts = opts or {}
  opts.name = name
  opts.bind = opts.bind or ("127.0.5." .. (#nodes + 1) .. ":" .. port)
  opts.profile = opts.profile or "local"
  opts.log_level = opts.log_level or "off" -- the hooks' errors are expected
  local n = assert(hearsay.node(opts))
  nodes[#nodes + 1] = n
  return n
end

local function close_all()
  for _, n in ipairs(nodes) do n:close() end
  nodes = {}
end

local function sees(n, name, state)
  local m = n:member(name)
  return m ~= nil and m.state == (state or "alive")
end

describe("the hearsay API #net", function()
  after_each(close_all)

  it("starts nodes that join each other and list members", function()
    local a = node("a")
    local b = node("b", { join = { a:address() } })
    assert.is_true(hearsay.run_until(function()
      return sees(a, "b") and sees(b, "a")
    end, 5000))
    local me = a:self()
    assert.are.equal("a", me.name)
    assert.are.equal("alive", me.state)
    assert.are.equal(1, me.incarnation)
    assert.are.equal("127.0.5.1", me.addr)
    assert.are.equal(7946, me.port)
    assert.are.equal(5, me.protocol.max)
    assert.are.equal(2, me.protocol.cur)
    assert.are.equal(5, me.delegate.cur)
    assert.are.equal(2, #a:members())
    assert.are.equal(2, #a:members("alive"))
    assert.are.equal(0, #a:members({ "dead", "left" }))
    assert.are.equal(1, #a:members(function(m) return m.name == "b" end))
    assert.is_nil(a:member("nobody"))
    assert.are.equal(0, a:health())
    assert.is_true(a:stats().push_pulls_in > 0)
    assert.is_true(a:now() > 0)
  end)

  it("gives members as read-only copies", function()
    local a = node("a")
    local m = a:self()
    assert.has_error(function() m.name = "b" end)
    assert.has_error(function() m.extra = 1 end)
    local keys = {}
    for k in pairs(m) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "addr", "delegate", "incarnation", "name", "port",
                      "private_data", "protocol", "state" }, keys)
    assert.matches("member a %(alive%)", tostring(m))
  end)

  it("raises on wrong argument types and returns nil, message, code on "
     .. "runtime failures", function()
    local a = node("a")
    assert.has_error(function() a:member({}) end)
    assert.has_error(function() a:broadcast({}) end)
    assert.has_error(function() a:every("soon", print) end)
    assert.has_error(function() a:members(7) end)
    assert.has_error(function() a:log("loud", "x") end)
    local ok, msg, code = a:send("nobody", "hi")
    assert.is_nil(ok)
    assert.are.equal("ENOTFOUND", code)
    assert.matches("no such member", msg)
    ok, msg, code = a:broadcast(string.rep("x", 5000))
    assert.is_nil(ok)
    assert.matches("ETOOBIG: ", msg)
    assert.are.equal("ETOOBIG", code)
    -- a join is asynchronous: its failure comes to the callback
    local result
    assert.is_true(a:join("no-such-host.invalid:7946", function(n, err)
      result = { n, err }
    end))
    assert.is_true(hearsay.run_until(function() return result end, 10000))
    assert.are.equal(0, result[1])
    assert.matches("cannot resolve", result[2])
  end)

  it("delivers a broadcast once to every node, with its sender", function()
    local got = {}
    local function hooks(name)
      return { on_message = function(from, payload)
        got[#got + 1] = name .. "<" .. tostring(from) .. ":" .. payload
      end }
    end
    -- lan timings: each node passes a rumor on 4 times (local: 2)
    local a = node("a", { hooks = hooks("a"), profile = "lan" })
    for i = 2, 5 do node("n" .. i, { hooks = hooks("n" .. i), profile = "lan",
                                      join = { a:address() } }) end
    assert.is_true(hearsay.run_until(function()
      return #a:members("alive") == 5
    end, 5000))
    assert.is_true(nodes[3]:broadcast("hello"))
    hearsay.run(1500)
    -- Each node got it at most once, from n3; gossip is best-effort, so
    -- with a handful of retransmits a node may (rarely) miss it.
    local count = {}
    for _, g in ipairs(got) do
      assert.matches("^%w+<n3:hello$", g)
      count[g] = (count[g] or 0) + 1
      assert.are.equal(1, count[g], g)
    end
    assert.is_true(#got >= 3, table.concat(got, " "))
    assert.is_nil(count["n3<n3:hello"]) -- not delivered to its sender
  end)

  it("sends to one member, by UDP or over a stream", function()
    local got = {}
    local a = node("a")
    local b = node("b", { join = { a:address() }, hooks = {
      on_message = function(from, payload) got[#got + 1] = from .. ":"
        .. #payload end } })
    assert.is_true(hearsay.run_until(function() return sees(a, "b") end,
                                     5000))
    assert.is_true(a:send("b", "small"))
    assert.is_true(a:send("b", string.rep("y", 100000), { reliable = true }))
    assert.is_true(hearsay.run_until(function() return #got == 2 end, 5000))
    table.sort(got)
    assert.are.same({ "a:100000", "a:5" }, got)
    assert.is_not_nil(b)
  end)

  it("runs timers: after once, every until cancelled", function()
    local a = node("a")
    local once, ticks = 0, 0
    local t1 = a:after(50, function() once = once + 1 end)
    local t2
    t2 = a:every(20, function()
      ticks = ticks + 1
      if ticks == 5 then t2:cancel() end
    end)
    assert.is_true(t1:active())
    hearsay.run(400)
    assert.are.equal(1, once)
    assert.are.equal(5, ticks)
    assert.is_false(t1:active())
    assert.is_false(t2:active())
    assert.is_false(t2:cancel())
  end)

  it("announces private data, and again after update_private_data",
     function()
    local role = "web"
    local a = node("a", { hooks = { private_data = function() return role end } })
    local updates = {}
    local b = node("b", { join = { a:address() }, hooks = {
      on_member = function(ev, m)
        if ev == "update" then updates[#updates + 1] = m.private_data end
      end } })
    assert.is_true(hearsay.run_until(function() return sees(b, "a") end,
                                     5000))
    assert.are.equal("web", b:member("a").private_data)
    role = "db"
    assert.is_true(a:update_private_data())
    assert.is_true(hearsay.run_until(function() return #updates == 1 end,
                                     5000))
    assert.are.same({ "db" }, updates)
    assert.are.equal(2, b:member("a").incarnation)
    -- too long: refused, the old value stays
    role = string.rep("z", 600)
    local ok, msg = a:update_private_data()
    assert.is_nil(ok)
    assert.matches("previous value stays", msg)
    assert.are.equal("db", a:self().private_data)
  end)

  it("vetoes members with allow_member", function()
    local a = node("a", { hooks = {
      allow_member = function(m) return m.name ~= "intruder", "not you" end,
    } })
    node("friend", { join = { a:address() } })
    node("intruder", { join = { a:address() } })
    hearsay.run(2000)
    assert.is_true(sees(a, "friend"))
    assert.is_nil(a:member("intruder"))
    assert.is_true(a:stats().members_refused > 0)
  end)

  it("refuses a join that would merge unwanted members with allow_merge",
     function()
    local a = node("a")
    local joined
    local o = node("o", { hooks = {
      allow_merge = function(ms)
        for _, m in ipairs(ms) do
          if m.name == "a" then return false, "not that cluster" end
        end
        return true
      end } })
    assert.is_true(o:join(a:address(), function(n, err)
      joined = { n, err }
    end))
    assert.is_true(hearsay.run_until(function() return joined end, 5000))
    assert.are.equal(0, joined[1])
    assert.matches("not that cluster", joined[2])
    -- (a, which has no such hook, took o in: gossip from a may still make
    -- o learn of a later; allow_member is the hook that keeps members out)
  end)

  it("calls the ping hooks and the push/pull state hooks", function()
    local pings, merged = {}, {}
    local a = node("a", { hooks = {
      ack_payload = function() return "from-a" end,
      local_state = function(join) return "state-a:" .. tostring(join) end,
    } })
    local b = node("b", { join = { a:address() }, hooks = {
      on_ping = function(m, rtt, payload)
        pings[#pings + 1] = { m.name, rtt, payload }
      end,
      merge_remote_state = function(state, join)
        merged[#merged + 1] = state .. "/" .. tostring(join)
      end,
    } })
    assert.is_true(hearsay.run_until(function() return #pings > 0 end, 5000))
    assert.are.equal("a", pings[1][1])
    assert.is_true(pings[1][2] >= 0)
    assert.are.equal("from-a", pings[1][3])
    assert.are.equal("state-a:true/true", merged[1])
    assert.is_not_nil(b)
  end)

  it("stops a runaway hook and keeps the node working", function()
    local calls = 0
    local a = node("a", { script_budget = 200000, hooks = {
      on_message = function()
        calls = calls + 1
        while true do pcall(function() while true do end end) end
      end } })
    local b = node("b", { join = { a:address() } })
    assert.is_true(hearsay.run_until(function() return sees(b, "a") end,
                                     5000))
    for _ = 1, 3 do b:send("a", "loop!") end
    hearsay.run(3000)
    local st = a:stats()
    assert.are.equal(3, calls)
    assert.are.equal(3, st.hooks.budget_stops)
    -- nobody suspected anybody meanwhile
    assert.are.equal(0, b:stats().suspicions)
    assert.is_true(sees(b, "a"))
  end)

  it("counts a failing hook and applies its default", function()
    local a = node("a", { hooks = {
      private_data = function() error("no data today") end,
      allow_member = function() error("confused") end,
    } })
    node("b", { join = { a:address() } })
    hearsay.run(1500)
    -- a failing veto refuses; a failing private_data gives nothing
    assert.is_nil(a:member("b"))
    assert.are.equal("", a:self().private_data)
    assert.is_true(a:stats().hooks.errors >= 2)
  end)

  it("combines several hook tables", function()
    local seen = {}
    local a = node("a", { hooks = {
      { on_member = function(ev, m) seen[#seen + 1] = "1:" .. ev .. m.name end,
        private_data = function() return nil end },
      { on_member = function(ev, m) seen[#seen + 1] = "2:" .. ev .. m.name end,
        private_data = function() return "second" end,
        allow_member = function() return true end },
      { allow_member = function(m) return m.name ~= "b" end },
    } })
    node("b", { join = { a:address() } })
    hearsay.run(1000)
    assert.are.same({ "1:joina", "2:joina" }, seen) -- b was refused
    assert.are.equal("second", a:self().private_data)
  end)

  it("refuses unknown hooks and non-functions", function()
    assert.has_error(function()
      hearsay.node{ name = "x", hooks = { on_joinn = function() end } }
    end, "hooks: unknown hook 'on_joinn' (hooks are on_member, "
      .. "private_data, validate_metadata, on_metadata, allow_member, "
      .. "allow_merge, on_conflict, on_message, ack_payload, on_ping, "
      .. "local_state, merge_remote_state)")
    assert.has_error(function()
      hearsay.node{ name = "x", hooks = { on_member = 3 } }
    end, "hooks: hook 'on_member' is a number, not a function")
  end)

  it("lets a node leave, and pause and resume its heartbeat", function()
    local a = node("a")
    local b = node("b", { join = { a:address() } })
    local c = node("c", { join = { a:address() } })
    assert.is_true(hearsay.run_until(function()
      return #a:members("alive") == 3
    end, 5000))
    assert.is_true(c:stop())
    assert.is_true(hearsay.run_until(function()
      return not sees(a, "c")
    end, 10000))
    assert.is_true(c:start())
    assert.is_true(hearsay.run_until(function() return sees(a, "c") end,
                                     10000))
    assert.is_true(b:leave())
    assert.is_true(hearsay.run_until(function()
      return sees(a, "b", "left")
    end, 5000))
  end)
end)
