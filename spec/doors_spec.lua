-- doors_spec.lua: the agent's doors as an attacker and an operator use
-- them: config files that try to hang the agent, flags that would echo a
-- secret, the control endpoint under silent connections, /metrics with
-- absolute-form targets, and joins that fail or retry. Real agents on
-- 127.0.23.x (the specs tagged #net).
local agent = require "agent"
local cjson = require "cjson"

local tmp = (os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec")
  .. "/doors-" .. os.time() .. "-" .. math.random(1e6)
os.execute("mkdir -p " .. tmp)

local nfiles = 0
local function temp_file(name, bytes)
  nfiles = nfiles + 1
  local path = tmp .. "/" .. nfiles .. "-" .. name
  agent.write_file(path, bytes)
  return path
end

-- Run `hearsay agent ARGS` that is meant to stop at start-up; a run that
-- is still going after `limit` seconds is killed and reported as 124.
local function agent_fails(args, limit)
  return agent.run("timeout " .. (limit or 20) .. " " .. agent.bin
    .. " agent --name x --bind 127.0.23.250:7946 --control 127.0.23.250:7374 "
    .. args)
end

describe("a config file", function()
  -- Each file ends with a key that does not exist, so that a file the
  -- agent gets through stops it with status 2 all the same: the spec
  -- never starts an agent, it only checks that nothing hangs.
  local function load(body, limit)
    local f = temp_file("c.lua", body .. "\nno_such_key = 1\n")
    return agent_fails("--config " .. agent.sh_quote(f), limit)
  end

  it("stops a loop that never ends", function()
    local out, status = load("while true do end")
    assert.are.equal(2, status, out)
    assert.matches("c%.lua:1: configuration file runs too long %(more "
      .. "than 20000000 instructions%)", out)
  end)

  it("cannot hang the agent in string.rep of an empty string", function()
    -- string.rep loops n times even when there is nothing to copy
    local out, status = load('local s = string.rep("", 1 << 50)\n'
      .. 'local t = ("x"):rep(0) .. string.rep("", 1 << 50, "")')
    assert.are.equal(2, status, out)
    assert.matches('unknown configuration key "no_such_key"', out)
  end)

  it("offers no pattern matching, whose backtracking has no bound",
     function()
    for _, call in ipairs{
      'string.find(("a"):rep(40), ("a-"):rep(12) .. "b")',
      '("a"):rep(40):match(("a-"):rep(12) .. "b")',
      'string.gsub("x", "x", "y")', 'string.gmatch("x", ".")',
      'string.dump(function() end)' } do
      local out, status = load("local r = " .. call)
      assert.are.equal(2, status, out)
      assert.matches("attempt to call a nil value", out)
    end
  end)

  it("charges table functions for the elements they shift or move",
     function()
    -- a table of 85 entries whose length is 2^40 + 1
    local huge = "local u = {1, 2, 3, 4, 5, 6, 7, 8}\n"
      .. "for k = 3, 40 do u[(1 << k) + 1] = true; u[1 << k] = true end\n"
    local t = {1, 2, 3, 4, 5, 6, 7, 8}
    for k = 3, 40 do t[(1 << k) + 1] = true; t[1 << k] = true end
    assert.are.equal(1099511627777, #t)
    for _, call in ipairs{ "table.insert(u, 1, 0)", "table.remove(u, 1)",
                           "table.move({}, 1, 1 << 50, 2)",
                           "table.sort(u)" } do
      local out, status = load(huge .. call)
      assert.are.equal(2, status, out)
      assert.matches("c%.lua:3: configuration file runs too long", out)
    end
  end)

  it("stops within a second when each instruction is slow", function()
    -- two 8 MB strings that differ in their last byte: every == reads
    -- them whole, so 20,000,000 instructions would take hours
    local out, status = load('local a = string.rep("x", 8000000)\n'
      .. 'local b = string.rep("x", 7999999) .. "y"\n'
      .. "local n = 0\n"
      .. "for _ = 1, 1e9 do if a == b then n = n + 1 end end")
    assert.are.equal(2, status, out)
    assert.matches("c%.lua:4: configuration file runs too long %(more "
      .. "than 1000 ms%)", out)
  end)

  it("still offers the string, table and math functions a file uses",
     function()
    local f = temp_file("ok.lua", 'local dc = string.format("%s-%d", "dc", 1)\n'
      .. 'name = ("web"):upper():lower() .. "-" .. dc\n'
      .. "local t = {}\n"
      .. 'table.insert(t, "127.0.23.1:7946")\n'
      .. 'table.sort(t)\n'
      .. "join = t\n"
      .. "probe_interval = math.floor(750.5)\n"
      .. 'label = table.concat({"a", "b"}, "-") .. string.rep("x", 2)\n'
      .. "no_such_key = 1\n")
    local out, status = agent_fails("--config " .. agent.sh_quote(f))
    assert.are.equal(2, status, out)
    assert.matches('unknown configuration key "no_such_key"', out)
  end)

  it("refuses a JSON key with a NUL byte in it", function()
    local f = temp_file("c.json",
      '{"name\\u0000junk": "x", "no_such_key": 1}')
    local out, status = agent_fails("--config " .. agent.sh_quote(f))
    assert.are.equal(2, status, out)
    assert.matches("expected a JSON object of configuration keys", out)
  end)
end)

describe("the agent's flags", function()
  -- Each stops at the flags (status 2), before anything listens.
  local function never_echoed(args)
    local out, status = agent_fails(args, 10)
    assert.are.equal(2, status, out)
    assert.is_nil(out:find("SECRETKEY", 1, true), out)
    return out
  end

  it("name the flag that lacks its value, never the secret after it",
     function()
    local out = never_echoed("--join --encrypt SECRETKEY")
    assert.matches("flag %-%-join needs a value %(%-%-encrypt is a flag%)",
                   out)
    out = never_echoed("--advertise --encrypt=SECRETKEY")
    assert.matches("flag %-%-advertise needs a value", out)
    out = never_echoed("--log-level --set control_token=SECRETKEY")
    assert.matches("flag %-%-log%-level needs a value", out)
    out = never_echoed("--encrypt")
    assert.matches("flag %-%-encrypt needs a value", out)
  end)

  it("never echo an unexpected argument when the arguments hold a secret",
     function()
    local out = never_echoed("--encrypt x SECRETKEY")
    assert.matches("unexpected argument %d+, after the value of %-%-encrypt",
                   out)
    out = never_echoed("--set encrypt_passphrase=x SECRETKEY")
    assert.matches("unexpected argument", out)
    out = never_echoed("--set control_token SECRETKEY")
    assert.matches("unexpected argument", out)
    -- without a secret, the argument is shown
    out = agent_fails("stray", 10)
    assert.matches('unexpected argument "stray"', out)
  end)

  it("never echo a misspelt flag's value or a --set without =", function()
    local out = never_echoed("--encrpyt=SECRETKEY")
    assert.matches("unknown or ambiguous flag %-%-encrpyt ", out)
    out = never_echoed("--set control_tokenSECRETKEY")
    assert.matches("%-%-set: expected KEY=VALUE", out)
  end)

  it("and the CLI's the same", function()
    for _, c in ipairs{
      { "members --control --token SECRETKEY",
        "flag %-%-control needs a value %(%-%-token is a flag%)" },
      { "keys --install --token SECRETKEY",
        "flag %-%-install needs a value" },
      { "members --tokn=SECRETKEY", "unknown flag %-%-tokn\n" } } do
      local out, status = agent.run(agent.bin .. " " .. c[1])
      assert.are.equal(1, status, out)
      assert.is_nil(out:find("SECRETKEY", 1, true), out)
      assert.matches(c[2], out)
    end
  end)
end)
