-- trace_spec.lua: the simulation's debug trace for one fixed scenario is
-- kept in spec/golden/sim-trace.txt, byte for byte. A change that moves
-- code without changing behaviour leaves it alone; a change that alters
-- what the protocol does shows up here as the first line that differs.
-- After an intended change of behaviour, write the new trace with
--   HEARSAY_GOLDEN_WRITE=1 busted spec/trace_spec.lua
-- and say in the commit why it changed.
local simlib = require "hearsay.sim"
local agent = require "agent"

local GOLDEN = "spec/golden/sim-trace.txt"

-- Eight nodes on lossy links: a join, a metadata write, a user message, a
-- crash, a graceful leave.
local function scenario()
  local sim = simlib.new{ seed = 42, trace = true, log = "debug",
                          loss = 0.05 }
  sim:add(8)
  sim:run(3000)
  assert(sim:node("n1"):publish("config/a", "1"))
  assert(sim:node("n2"):broadcast("hello"))
  sim:run(2000)
  sim:kill("n3")
  sim:run(12000)
  sim:leave("n4")
  sim:run(3000)
  return table.concat(sim:trace(), "\n") .. "\n"
end

describe("the simulation's trace", function()
  it("is byte-identical to the golden trace for seed 42", function()
    local got = scenario()
    if os.getenv("HEARSAY_GOLDEN_WRITE") then agent.write_file(GOLDEN, got) end
    local want = assert(agent.read_file(GOLDEN), GOLDEN .. " is missing")
    if got == want then return end
    local n, a, b = 0
    local gi, wi = got:gmatch("[^\n]*\n"), want:gmatch("[^\n]*\n")
    repeat
      n, a, b = n + 1, gi(), wi()
    until a ~= b
    local out = os.tmpname()
    agent.write_file(out, got)
    error(("trace differs from %s at line %d:\n  want: %s  got:  %s"
      .. "(the whole trace is in %s)"):format(GOLDEN, n, b or "(end)\n",
      a or "(end)\n", out))
  end)

  it("is the same when run twice in one process", function()
    assert.are.equal(scenario(), scenario())
  end)
end)
