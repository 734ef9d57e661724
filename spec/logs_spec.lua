-- logs_spec.lua: what nodes log about trouble that repeats (a refused
-- member, a name conflict) and about the ordinary paths that only look
-- like trouble (a probe of a member already dead, a restart after a
-- graceful leave), exact under the simulated clock.
local core = require "hearsay.core"
local simlib = require "hearsay.sim"

-- The trace as {t = ms, node =, level =, msg =}.
local function lines(sim)
  local r = {}
  for _, line in ipairs(sim:trace()) do
    local t, node, level, msg = line:match("^%s*([%d%.]+) (%S+) %[(%u+)%] (.*)$")
    if t then
      r[#r + 1] = { t = math.floor(tonumber(t) * 1000 + 0.5), node = node,
                    level = level, msg = msg }
    end
  end
  return r
end

-- The lines of `node` (any if nil) at `level` (any if nil) whose message
-- matches the Lua pattern.
local function grep(sim, pattern, node, level)
  local r = {}
  for _, l in ipairs(lines(sim)) do
    if (node == nil or l.node == node) and (level == nil or l.level == level)
       and l.msg:match(pattern) then
      r[#r + 1] = l
    end
  end
  return r
end

local function alive_for(name, ip, inc)
  return core.encode{ type = "alive", Node = name, Incarnation = inc,
                      Addr = ip, Port = 7946, Vsn = "\1\5\2\2\5\5" }
end

describe("a member allow_member refuses", function()
  it("is logged once at WARN by each node that refuses it, then counted",
     function()
    local hooks = {
      allow_member = function(m)
        if m.name:match("^bad") then return false, "names starting with bad" end
        return true
      end,
    }
    local sim = simlib.new{ seed = 21, trace = true }
    sim:add(3, { hooks = hooks })
    sim:add({ "bad1" })
    sim:run(20000)
    for _, name in ipairs{ "n1", "n2", "n3" } do
      assert.is_nil(sim:node(name):member("bad1"))
      local warned = grep(sim, "^member refused: member=bad1 ", name, "WARN")
      assert.are.equal(1, #warned, name)
      assert.matches("reason=names starting with bad %(logged once per "
        .. "member; further refusals are counted in members_refused%)",
        warned[1].msg)
    end
    -- its alive came back by gossip and state syncs: counted, not logged
    local refused = 0
    for _, name in ipairs{ "n1", "n2", "n3" } do
      refused = refused + sim:node(name):stats().members_refused
    end
    assert.is_true(refused > 3, refused)
    assert.are.equal(3, #grep(sim, "^member refused:"))
  end)

  it("is logged again once it was let in and is refused anew", function()
    local refuse = true
    local sim = simlib.new{ seed = 22, trace = true }
    sim:add(2, { hooks = { allow_member = function(m)
      return not (refuse and m.name == "x"), "not now"
    end } })
    sim:add({ "x" })
    sim:run(5000)
    assert.are.equal(1, #grep(sim, "^member refused: member=x ", "n1"))
    refuse = false
    assert.is_true(sim:run_until(function()
      return sim:node("n1"):state_of("x") == "alive"
    end, 60000))
    -- a fresh alive is news again: a new incarnation from x
    refuse = true
    sim:node("x"):update_private_data()
    sim:run(2000)
    assert.are.equal(2, #grep(sim, "^member refused: member=x ", "n1",
                              "WARN"))
  end)
end)

describe("a name conflict", function()
  it("is logged once at ERROR per name, then counted", function()
    local sim = simlib.new{ seed = 23, trace = true }
    sim:add(3)
    sim:run(3000)
    sim:inject("n1", alive_for("n2", "\10\9\9\9", 50))
    sim:inject("n1", alive_for("n2", "\10\9\9\9", 51))
    sim:inject("n1", alive_for("n2", "\10\9\9\8", 52))
    assert.are.equal(3, sim:node("n1"):stats().conflicts)
    local errs = grep(sim, "^name conflict:", "n1", "ERROR")
    assert.are.equal(1, #errs)
    assert.are.equal("name conflict: member=n2 known=10.0.0.2:7946 "
      .. "claimed=10.9.9.9:7946 state=alive (logged once per name; further "
      .. "claims are counted in conflicts)", errs[1].msg)
    assert.are.equal("10.0.0.2", sim:node("n1"):member("n2").addr)
  end)

  it("about our own name says so, once", function()
    local sim = simlib.new{ seed = 24, trace = true }
    sim:add(2)
    sim:run(3000)
    for inc = 40, 45 do
      sim:inject("n1", alive_for("n1", "\10\9\9\9", inc))
    end
    assert.are.equal(6, sim:node("n1"):stats().conflicts)
    local errs = grep(sim, "^name conflict:", "n1", "ERROR")
    assert.are.equal(1, #errs)
    assert.are.equal("name conflict: another node claims our name: "
      .. "member=n1 ours=10.0.0.1:7946 claimed=10.9.9.9:7946 (logged once; "
      .. "further claims are counted in conflicts)", errs[1].msg)
    -- the claim changes nothing: we stay where we are
    assert.are.equal("10.0.0.1", sim:node("n1"):self().addr)
    assert.is_true(sim:node("n1"):self().incarnation < 40)
  end)

end)

describe("a probe whose target was declared dead meanwhile", function()
  it("ends without a suspicion, and says so only at DEBUG", function()
    -- the scenario of trace_spec: a crash on lossy links
    local sim = simlib.new{ seed = 42, trace = true, log = "debug",
                            loss = 0.05 }
    sim:add(8)
    sim:run(3000)
    assert(sim:node("n1"):publish("config/a", "1"))
    assert(sim:node("n2"):broadcast("hello"))
    sim:run(2000)
    sim:kill("n3")
    sim:run(12000)
    -- in the order of the trace: once a node logged n3 dead, it never
    -- suspects n3 again
    local dead, quiet = {}, 0
    for _, l in ipairs(lines(sim)) do
      if l.msg:match("^member dead: member=n3 ") then dead[l.node] = true end
      if l.msg:match("^probe failed, suspecting member: member=n3 ") then
        assert.is_nil(dead[l.node], l.node .. " suspected n3 after it saw "
                      .. "it dead")
      end
      if l.msg:match("^probe failed, member dead meanwhile: member=n3 ") then
        assert.are.equal("DEBUG", l.level)
        assert.is_true(dead[l.node])
        quiet = quiet + 1
      end
    end
    assert.is_true(quiet >= 1, "the scenario lost its late probe")
  end)
end)

describe("a node back after a graceful leave", function()
  it("refutes the record of its leave at INFO, with no warning", function()
    local sim = simlib.new{ seed = 5, trace = true, events = true }
    sim:add(4)
    sim:run(5000)
    assert.is_true(sim:leave("n3", 5000))
    sim:run(3000)
    assert.are.equal("left", sim:node("n1"):state_of("n3"))
    sim:restart("n3")
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 20000))
    local refuted = grep(sim, "^refuting the record of our earlier leave: ",
                         "n3", "INFO")
    assert.is_true(#refuted >= 1)
    assert.are.same({}, grep(sim, ".", "n3", "WARN"))
    assert.are.same({}, grep(sim, "^refuting", nil, "WARN"))
    assert.is_true(sim:node("n1"):member("n3").incarnation >= 2)
  end)

  it("still warns when others declared it dead", function()
    local sim = simlib.new{ seed = 6, trace = true }
    sim:add(4)
    sim:run(5000)
    sim:kill("n4")
    assert.is_true(sim:run_until(function()
      return sim:node("n1"):state_of("n4") == "dead"
    end, 30000))
    sim:restart("n4")
    assert.is_true(sim:run_until(function() return sim:converged() end,
                                 20000))
    assert.is_true(#grep(sim, "^refuting ", "n4", "WARN") >= 1)
    assert.are.same({}, grep(sim, "^refuting the record of our earlier "
                                  .. "leave", "n4"))
  end)
end)

describe("allow_merge on the node joined through", function()
  it("refuses to merge the joiner's state, and the joiner still reports "
     .. "a successful join, as memberlist's does", function()
    local sim = simlib.new{ seed = 26, trace = true }
    sim:add(1, { hooks = { allow_merge = function(ms)
      for _, m in ipairs(ms) do
        if m.name == "o" then return false, "not o" end
      end
      return true
    end } })
    sim:add({ "o" }, { join = false })
    local joined
    assert.is_true(sim:node("o"):join("n1", function(n, err)
      joined = { n = n, err = err }
    end))
    assert.is_true(sim:run_until(function() return joined ~= nil end, 5000))
    assert.are.equal(1, joined.n)
    assert.is_nil(joined.err)
    -- o merged n1's answer; n1 merged nothing of o's state sync
    assert.are.equal("alive", sim:node("o"):state_of("n1"))
    local refused = grep(sim, "^state sync from .* refused: merge refused: "
                              .. "not o$", "n1", "WARN")
    assert.are.equal(1, #refused)
    assert.are.equal(1, sim:node("n1"):stats().push_pull_errors)
  end)
end)
