-- environment_spec.lua: a hook script meets one environment wherever it
-- runs. One probe script (spec/fixtures/scripts/env_probe.lua) reports
-- what it can reach (globals, libraries, require, files, metatables,
-- memory, budget); an agent, a simulated node and an in-process node must
-- give the same report. #net for the agent and the in-process node.
local hearsay = require "hearsay"
local simlib = require "hearsay.sim"
local agent = require "agent"

local PROBE = "spec/fixtures/scripts/env_probe.lua"
local MEMORY = "16MiB"

local _, hs = agent.subnet("127.0.31")

local function from_sim()
  local sim = simlib.new{ seed = 3 }
  sim:add(1, { scripts = { PROBE }, script_memory = MEMORY })
  sim:run(1000)
  return (sim:node("n1"):read("env/report"))
end

-- What every place must report (the simulation's, checked on its own).
local function check(report)
  assert.is_string(report)
  for _, want in ipairs{
    "\nglobals=_G,_VERSION,assert,collectgarbage,coroutine,error,"
      .. "getmetatable,io,ipairs,math,next,os,pairs,pcall,print,rawequal,"
      .. "rawget,rawlen,rawset,require,select,setmetatable,string,table,"
      .. "tonumber,tostring,type,utf8,xpcall\n",
    "\nkeys.os=clock,date,difftime,getenv,remove,rename,time,tmpname\n",
    "\nkeys.io=lines,open,read,stderr,stdout,type,write\n",
    "\nrequire.debug=module 'debug' not found\n",
    "\nrequire.package=module 'package' not found\n",
    "\nrequire.lpeg_like_c_module=module 'lfs' not found\n",
    "\nrequire.cjson=function\n",
    "\nrequire.hearsay_sim=not found\n",
    "\nrequire.again=true\n",
    "\nmodule=execute:nil debug:nil load:nil package:nil "
      .. "require:function\n",
    "\ngetmetatable.file=false\n",
    "\nsetmetatable.gc=setmetatable: a metatable with __gc is not allowed",
    "\nio.read=\"\"\n", "\nio.lines=0\n",
    "\nio.open.dir=/: is a directory\n",
    "\nprint=function\n", "\n_ENV_is_G=false\n", "\nmodule_global=nil\n",
    "\nmemory=not enough memory\n",
    "\nbudget_stops=1",
  } do
    assert.truthy(("\n" .. report):find(want, 1, true),
                  want .. " not in:\n" .. report)
  end
  for _, name in ipairs{ "os", "io", "string", "coroutine", "_G" } do
    assert.truthy(report:find("require." .. name .. "=true", 1, true))
  end
end

describe("the scripts' environment", function()
  it("in a simulated node: the sandbox, its require, the memory cap of "
     .. "a call and the budget", function()
    check(from_sim())
  end)

  it("is the same in every simulated node, run after run", function()
    assert.are.equal(from_sim(), from_sim())
  end)
end)

describe("the scripts' environment #net", function()
  after_each(function() agent.cleanup() end)

  it("is the same in an agent, a simulated node and an in-process node",
     function()
    local want = from_sim()
    check(want)

    local a = hs("env1", 1, { args = { "--script", PROBE },
                              set = { script_memory = MEMORY } })
    local got
    assert.is_true(agent.wait(function()
      local out, status = a:cli("kv", "get", "env/report")
      if status == 0 then got = out:gsub("\n$", "") end
      return got ~= nil
    end, 10), a:log())
    assert.are.equal(want, got)

    local n = assert(hearsay.node{ name = "env2", scripts = { PROBE },
                                   script_memory = MEMORY })
    local report
    assert.is_true(hearsay.run_until(function()
      report = n:read("env/report")
      return report ~= nil
    end, 5000))
    n:close()
    assert.are.equal(want, report)
  end)
end)
