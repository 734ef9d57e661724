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

  it("charges pattern matching for its backtracking, and offers no "
     .. "string.dump", function()
    for _, call in ipairs{
      'string.find(("a"):rep(40), ("a-"):rep(12) .. "b")',
      '("a"):rep(40):match(("a-"):rep(12) .. "b")',
      'string.gsub(("a"):rep(40), ("a-"):rep(12) .. "b", "")',
      'string.gmatch(("a"):rep(40), ("a-"):rep(12) .. "b")()' } do
      local out, status = load("local r = " .. call)
      assert.are.equal(2, status, out)
      assert.matches("c%.lua:1: configuration file runs too long", out)
    end
    local out, status = load("local r = string.dump(function() end)")
    assert.are.equal(2, status, out)
    assert.matches("attempt to call a nil value", out)
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
                           "table.move({}, 1, 1 << 50, 2)" } do
      local out, status = load(huge .. call)
      assert.are.equal(2, status, out)
      assert.matches("c%.lua:3: configuration file runs too long", out)
    end
    -- sort refuses that one itself; a million numbers cost about 20
    -- million comparisons, more than the budget left after filling them
    -- (a fill that stays well inside the 1 s deadline, even under the
    -- sanitizers on a loaded machine)
    local out, status = load(huge .. "table.sort(u)")
    assert.are.equal(2, status, out)
    assert.matches("array too big", out)
    -- (on a machine too busy to fill them within the 1 s deadline, the
    -- fill itself is stopped by the deadline: try again, three times)
    for _ = 1, 3 do
      out, status = load("local t = {}\nfor i = 1, 1000000 do t[i] = -i end\n"
        .. "table.sort(t)")
      if not out:find("c.lua:2: configuration file runs too long (more "
                      .. "than 1000 ms)", 1, true) then break end
    end
    assert.are.equal(2, status, out)
    assert.matches("c%.lua:3: configuration file runs too long %(more "
      .. "than %d+ instructions%)", out)
  end)

  it("stops within a second when each instruction is slow", function()
    -- two 8 MB strings that differ in their last byte: every == reads
    -- them whole, so 20,000,000 instructions would take hours
    -- (a machine too busy to build the strings within the deadline stops
    -- at line 1 or 2: try again, three times)
    local out, status
    for _ = 1, 3 do
      out, status = load('local a = string.rep("x", 8000000)\n'
        .. 'local b = string.rep("x", 7999999) .. "y"\n'
        .. "local n = 0\n"
        .. "for _ = 1, 1e9 do if a == b then n = n + 1 end end")
      if not out:find("c%.lua:[12]: configuration file runs too long") then
        break
      end
    end
    assert.are.equal(2, status, out)
    assert.matches("c%.lua:4: configuration file runs too long %(more "
      .. "than 1000 ms%)", out)
  end)

  it("still offers the string, table and math functions a file uses",
     function()
    local f = temp_file("ok.lua", 'local dc = string.format("%s-%d", "dc", 1)\n'
      .. 'name = ("web"):upper():lower() .. "-" .. dc:gsub("%-(%d)$", "-%1")\n'
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

  it("and a keyring file, are never FIFOs, which would block the agent",
     function()
    local fifo = tmp .. "/fifo.lua"
    assert.are.equal(0, select(2, agent.run("mkfifo " .. fifo)))
    local out, status = agent_fails("--config " .. fifo, 10)
    assert.are.equal(2, status, out)
    assert.matches("a FIFO, which could block the agent", out)
    out, status = agent_fails("--keyring " .. fifo, 10)
    assert.are.equal(2, status, out)
    assert.matches("not a regular file", out)
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

-- ===== Raw clients of the control endpoint and /metrics =====

local function bash(script, limit)
  return agent.run("timeout " .. (limit or 30) .. " bash -c "
    .. agent.sh_quote(script))
end

local function host_port(hp)
  return hp:match("^(.+):(%d+)$")
end

-- Send `bytes` on a new connection, then read until the agent closes it
-- or `wait` seconds pass; returns what was read and whether the agent
-- closed the connection in that time.
local function exchange(hp, bytes, wait)
  local host, port = host_port(hp)
  local out = bash(string.format(
    "exec 3<>/dev/tcp/%s/%s || exit 9\n"
    .. "cat %s >&3\n"
    .. "timeout %s cat <&3; echo \"@rc=$?\"\n",
    host, port, agent.sh_quote(temp_file("req", bytes)), wait or 10))
  local rc = tonumber(out:match("@rc=(%d+)%s*$"))
  return out:gsub("@rc=%d+%s*$", ""), rc == 0
end

-- The first answer line to one request (the connection stays open until
-- the answer came).
local function ask(hp, bytes)
  local host, port = host_port(hp)
  local out = bash(string.format(
    "exec 3<>/dev/tcp/%s/%s || exit 9\n"
    .. "cat %s >&3\n"
    .. "timeout 10 head -n 1 <&3\n",
    host, port, agent.sh_quote(temp_file("req", bytes))))
  local ok, doc = pcall(cjson.decode, out)
  return ok and doc or out
end

-- A process that holds `n` connections to hp open and sends nothing.
local function hold_silent(hp, n)
  local host, port = host_port(hp)
  return agent.spawn("silent", { "bash", "-c", string.format(
    "for i in $(seq %d); do exec {fd}<>/dev/tcp/%s/%s || exit 9; done\n"
    .. "echo opened; sleep 60", n, host, port) })
end

describe("the control endpoint #net", function()
  local ctl1, ctl2 = "127.0.23.1:7374", "127.0.23.2:7374"
  local a, b
  setup(function()
    a = agent.hearsay{ name = "d1", bind = "127.0.23.1:7946", control = ctl1,
                       profile = "local", log = "info",
                       args = { "--metrics", "127.0.23.1:9100" } }
    local conf = temp_file("token.lua", 'control_token = "secret"\n')
    b = agent.hearsay{ name = "d2", bind = "127.0.23.2:7946", control = ctl2,
                       profile = "local", log = "info",
                       set = { control_idle_timeout = "1s" },
                       args = { "--config", conf } }
  end)
  teardown(function() agent.cleanup() end)

  it("answers the CLI while 70 silent connections are held open, token or "
     .. "not", function()
    local s1, s2 = hold_silent(ctl1, 70), hold_silent(ctl2, 70)
    assert.is_true(agent.wait(function()
      return s1:log():find("opened") and s2:log():find("opened")
    end, 10), s1:log() .. s2:log())
    local out, status = a:cli("members")
    assert.are.equal(0, status, out)
    assert.matches("d1 +127%.0%.23%.1:7946 +alive", out)
    out, status = b:cli("members", "--token", "secret")
    assert.are.equal(0, status, out)
    assert.matches("d2 +127%.0%.23%.2:7946 +alive", out)
    -- a request without the token is still refused
    out, status = b:cli("members")
    assert.are.equal(1, status, out)
    assert.matches("permission denied", out)
    s1:stop()
    s2:stop()
  end)

  it("closes a connection that sends no request in time", function()
    -- control_idle_timeout = 1s on b: the first request must come
    -- within 1 s (10 s at most on any agent)
    local out, closed = exchange(ctl2, "", 8)
    assert.is_true(closed, out)
    assert.matches('"ok":false', out)
    assert.matches("no request within 1000 ms", out)
  end)

  it("closes a connection idle after its requests, but not a watch",
     function()
    local out, closed = exchange(ctl2,
      '{"cmd":"version","token":"secret"}\n', 8)
    assert.is_true(closed, out)
    assert.matches('"version"', out)
    -- a watch outlives the idle timeout and still gets its events
    local host, port = host_port(ctl2)
    local w = agent.spawn("watch", { "bash", "-c", string.format(
      "exec 3<>/dev/tcp/%s/%s || exit 9\n"
      .. "printf '%%s\\n' '{\"cmd\":\"kv_watch\",\"prefix\":\"w/\","
      .. "\"token\":\"secret\"}' >&3\n"
      .. "timeout 20 cat <&3", host, port) })
    assert.is_true(agent.wait(function()
      return w:log():find('"watching"')
    end, 10), w:log())
    agent.sleep(2.5)
    local _, status = b:cli("kv", "put", "--token", "secret", "w/k", "v")
    assert.are.equal(0, status)
    assert.is_true(agent.wait(function()
      return w:log():find('"event":"put","key":"w/k"', 1, true)
    end, 10), w:log())
  end)

  it("refuses a token cut short by a NUL", function()
    for _, req in ipairs{
      '{"cmd":"members","token":"secret\\u0000anything"}\n',
      '{"cmd":"members","token":"secret\0anything"}\n' } do
      local doc = ask(ctl2, req)
      assert.are.equal("table", type(doc), tostring(doc))
      assert.is_false(doc.ok)
      assert.is_nil(doc.members)
    end
    -- the right token still works
    local doc = ask(ctl2, '{"cmd":"members","token":"secret"}\n')
    assert.is_true(doc.ok, cjson.encode(doc))
  end)

  it("serves /metrics to an absolute-form request target", function()
    local out = exchange("127.0.23.1:9100",
      "GET http://127.0.23.1:9100/metrics HTTP/1.1\r\nHost: 127.0.23.1\r\n"
      .. "\r\n", 10)
    assert.matches("^HTTP/1%.0 200 OK\r\n", out)
    assert.matches("hearsay_members{state=\"alive\"} 1", out)
    out = exchange("127.0.23.1:9100",
      "GET HTTP://127.0.23.1:9100/nope?x HTTP/1.1\r\n\r\n", 10)
    assert.matches("^HTTP/1%.0 404 ", out)
    out = exchange("127.0.23.1:9100", "GET http:///metrics HTTP/1.1\r\n\r\n",
                   10)
    assert.matches("^HTTP/1%.0 400 ", out)
  end)
end)

describe("joins at start-up #net", function()
  teardown(function() agent.cleanup() end)

  local function node(name, i, extra)
    local o = { name = name, bind = "127.0.23." .. i .. ":7946",
                control = "127.0.23." .. i .. ":7374", profile = "local",
                log = "info" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return agent.hearsay(o)
  end

  it("exit 1 when --join reaches nobody", function()
    local p = node("j1", 31, { join = { "127.0.23.39:7946" } })
    assert.are.equal(1, p:wait_exit(15), p:log())
    assert.matches("Joining cluster%.%.%.", p:log())
    assert.matches("join failed, exiting: cannot connect to "
      .. "127%.0%.23%.39:7946: connection refused", p:log())
  end)

  it("join a seed started 5 s later by themselves with --retry-join",
     function()
    local b = node("j3", 33, { args = { "--retry-join", "127.0.23.32:7946",
                                        "--retry-interval", "1s" } })
    agent.sleep(5)
    assert.is_true(b:running(), b:log())
    local seed = node("j2", 32)
    assert.is_true(agent.wait(function()
      return seed:status_of("j3") == "alive"
    end, 15), b:log())
    local log = b:log()
    assert.matches("%[WARN%] Join failed: cannot connect to 127%.0%.23%.32:"
      .. "7946: connection refused, retrying in 1s", log)
    assert.matches("%[INFO%] Join completed%. Synced with 1 initial agents",
                   log)
    -- no more attempts once joined
    local attempts = select(2, log:gsub("Joining cluster", ""))
    agent.sleep(2)
    assert.are.equal(attempts, select(2, b:log():gsub("Joining cluster", "")))
  end)

  it("exit 1 after --retry-max failed retries", function()
    local p = node("j4", 34, { args = { "--retry-join", "127.0.23.39:7946",
                                        "--retry-interval", "1s",
                                        "--retry-max", "2" } })
    assert.are.equal(1, p:wait_exit(20), p:log())
    local log = p:log()
    assert.are.equal(3, select(2, log:gsub("Joining cluster", "")), log)
    assert.matches("maximum retry join attempts made, exiting", log)
  end)

  it("take the retry keys from a JSON config file", function()
    local conf = temp_file("retry.json", cjson.encode{
      retry_join = { "127.0.23.39:7946" }, retry_interval = "1s",
      retry_max = 1 })
    local p = node("j5", 35, { args = { "--config", conf } })
    assert.are.equal(1, p:wait_exit(20), p:log())
    assert.are.equal(2, select(2, p:log():gsub("Joining cluster", "")))
  end)

  it("keep trying the members of the snapshot, and never exit for them",
     function()
    local dir = tmp .. "/data-j8"
    local p1 = node("j8", 38, { args = { "--data-dir", dir } })
    local p2 = node("j9", 39, { join = { "127.0.23.38:7946" } })
    assert.is_true(agent.wait(function()
      return p1:status_of("j9") == "alive"
    end, 15))
    p1:signal("TERM") -- the snapshot saved as it leaves lists j9
    assert.are.equal(0, p1:wait_exit(15), p1:log())
    p2:stop()
    p1 = node("j8", 38, { args = { "--data-dir", dir },
                          set = { retry_interval = "1s" } })
    assert.is_true(agent.wait(function()
      return p1:log():find("retrying in 1s: join=snapshot", 1, true)
    end, 10), p1:log())
    agent.sleep(1)
    assert.is_true(p1:running(), p1:log())
    -- j9 comes back knowing nobody: only j8's retries can find it
    p2 = node("j9", 39)
    assert.is_true(agent.wait(function()
      return p2:status_of("j8") == "alive"
    end, 15), p1:log())
    assert.matches("Join completed%. Synced with 1 initial agents: "
      .. "join=snapshot", p1:log())
  end)

  it("resolve a retry-join name again at each attempt", function()
    -- The agent runs in a mount namespace of its own, where /etc/hosts is
    -- a file of the spec's and host names are looked up in it alone; the
    -- seed's name is added to it once the agent has failed to resolve it.
    local _, status = agent.run("unshare -rm true")
    if status ~= 0 then
      pending("unprivileged mount namespaces are not available")
      return
    end
    local hosts = temp_file("hosts", "127.0.0.1 localhost\n")
    local nss = temp_file("nsswitch.conf", "hosts: files\n")
    local seed = node("j6", 36)
    local p = agent.spawn("hearsay-j7", { "unshare", "-rm", "sh", "-c",
      "mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" "
      .. "/etc/nsswitch.conf && shift 2 && exec \"$@\"", "sh", hosts, nss,
      agent.bin, "agent", "--name", "j7", "--bind", "127.0.23.37:7946",
      "--control", "127.0.23.37:7374", "--profile", "local",
      "--retry-join", "seed.hearsay.test:7946", "--retry-interval", "1s" })
    assert.is_true(agent.wait(function()
      return p:log():find('cannot resolve "seed.hearsay.test:7946"', 1, true)
    end, 10), p:log())
    local f = assert(io.open(hosts, "a")) -- the same file, so the mount sees it
    f:write("127.0.23.36 seed.hearsay.test\n")
    f:close()
    assert.is_true(agent.wait(function()
      return seed:status_of("j7") == "alive"
    end, 15), p:log())
    assert.matches("Join completed%. Synced with 1 initial agents", p:log())
  end)
end)
