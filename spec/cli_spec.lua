-- cli_spec.lua: the command line's conventions, as serf's: flags before
-- the arguments, one JSON layout, errors in JSON with --format json,
-- members as serf's document, and the commands monitor, force-leave and
-- tags against real agents. The agents' specs are #net.
local agent = require "agent"
local cjson = require "cjson"

local q = agent.sh_quote
local ip, start = agent.subnet("127.0.42")
local bin = agent.bin

-- Run the CLI; stdout and stderr apart, and the status.
local function cli(args)
  local out_file, err_file = os.tmpname(), os.tmpname()
  local _, status = agent.run(string.format("(%s %s > %s 2> %s)", bin, args,
                                            out_file, err_file))
  local out, err = agent.read_file(out_file), agent.read_file(err_file)
  os.remove(out_file)
  os.remove(err_file)
  return out, err, status
end

-- The text of a JSON document in serf's layout: two spaces a level,
-- "key": value, no tabs.
local function serf_layout(text)
  assert.is_nil(text:find("\t", 1, true), text)
  assert.matches('^{\n  "', text)
  for line in text:gmatch("[^\n]+") do
    local indent = #line:match("^ *")
    assert.are.equal(0, indent % 2, line)
    if line:find('^ *"[^"]*":') then
      assert.matches('^ *"[^"]*": ', line)
    end
  end
end

describe("hearsay's command line", function()
  it("reads flags before the arguments only, as Go's flag package", function()
    -- after the first argument, a flag is an argument
    local _, err, status = cli("members stray --bogus")
    assert.are.equal(1, status)
    assert.matches("hearsay members: unexpected argument", err)
    assert.is_nil(err:find("unknown flag", 1, true), err)
    -- -- ends the flags; force-leave takes one NAME
    _, err, status = cli("force-leave -- a b")
    assert.are.equal(1, status)
    assert.matches("give one NAME only", err)
    _, err, status = cli("force-leave")
    assert.are.equal(1, status)
    assert.matches("give the NAME of a member", err)
    -- kv takes flags before and after its subcommand, not after a KEY
    _, err, status = cli("kv put k v --format json")
    assert.are.equal(1, status)
    assert.matches("hearsay kv put: give a KEY and a VALUE", err)
  end)

  it("checks the flags of the new commands", function()
    local _, err, status = cli("tags")
    assert.are.equal(1, status)
    assert.matches("give at least one %-%-set or %-%-delete", err)
    _, err, status = cli("tags --set novalue")
    assert.are.equal(1, status)
    assert.matches('%-%-set takes KEY=VALUE, not "novalue"', err)
    _, err, status = cli("monitor --log-level loud")
    assert.are.equal(1, status)
    assert.matches("%-%-log%-level must be debug, info, warn or error", err)
    _, err, status = cli("members --log-level debug")
    assert.are.equal(1, status)
    assert.matches("flag %-%-log%-level does not apply", err)
    for _, cmd in ipairs{ "monitor", "force-leave", "tags" } do
      local out
      out, _, status = cli("help " .. cmd)
      assert.are.equal(0, status)
      assert.truthy(out:find("Usage: hearsay " .. cmd, 1, true), out)
    end
  end)

  it("prints usage errors as JSON with --format json, without the usage",
     function()
    local out, err, status = cli("kv put --format json k")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.same({ error = "hearsay kv put: give a KEY and a VALUE "
                      .. "(- reads it from stdin)" }, cjson.decode(err))
    serf_layout(err)
    -- an error found before --format was read is JSON too
    out, err, status = cli("members --bogus --format json")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.same({ error = "hearsay members: unknown flag --bogus" },
                    cjson.decode(err))
    out, err, status = cli("kv --format=json frobnicate")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.same({ error = 'hearsay kv: unknown subcommand "frobnicate"' },
                    cjson.decode(err))
  end)
end)

describe("hearsay's command line against agents #net", function()
  teardown(function() agent.cleanup() end)

  local h1, h2, h3
  local c1 = "--control " .. ip(1) .. ":7374"

  it("prints a missing agent's error as JSON with --format json", function()
    local out, err, status = cli("members --format json --control "
                                 .. ip(250) .. ":7374")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.same({ error = "Error connecting to hearsay agent at "
                      .. ip(250) .. ":7374: connection refused" },
                    cjson.decode(err))
    -- and as text without it, unchanged
    out, err, status = cli("members --control " .. ip(250) .. ":7374")
    assert.are.equal("", out)
    assert.are.equal(1, status)
    assert.are.equal("Error connecting to hearsay agent at " .. ip(250)
                     .. ":7374: connection refused\n", err)
  end)

  it("prints members as serf's document", function()
    h1 = start("h1", 1, { log = "info" })
    h2 = start("h2", 2, { join = { ip(1) .. ":7946" } })
    h3 = start("h3", 3, { join = { ip(1) .. ":7946" } })
    assert.is_true(agent.wait(function()
      local ms = h1:members()
      return ms and ms.h2 and ms.h3 and ms.h3.status == "alive"
    end, 10), h1:log())
    local out, err, status = cli("members --format json " .. c1)
    assert.are.equal(0, status, err)
    serf_layout(out)
    local doc = cjson.decode(out)
    local m = doc.members[1]
    assert.are.equal("h1", m.name)
    assert.are.equal(ip(1) .. ":7946", m.addr)
    assert.are.equal(7946, m.port)
    assert.are.equal("alive", m.status)
    assert.are.same({ min = 1, max = 5, version = 2 }, m.protocol)
    assert.are.same({ min = 2, max = 5, version = 5 }, m.delegate)
    assert.are.same({}, m.tags)
    assert.matches('"tags": {}', out) -- an object, as serf's
    -- serf's fields first, in serf's order, then hearsay's own
    local at = {}
    for _, k in ipairs{ "name", "addr", "port", "tags", "status", "protocol",
                        "delegate", "incarnation", "private_data" } do
      at[#at + 1] = assert(out:find('"' .. k .. '": '), k)
    end
    for i = 2, #at do assert.is_true(at[i - 1] < at[i]) end
    -- the text is unchanged
    out = h1:cli("members", "--detailed")
    assert.matches("h1  +" .. ip(1):gsub("%.", "%%.") .. ":7946  +alive  +1"
                   .. "  +1/5/2  +2/5/5\n", out)
  end)

  it("lays out every JSON document the same way", function()
    for _, args in ipairs{ "stats " .. c1 .. " --format json",
                           "kv put " .. c1 .. " --format json a b",
                           "kv get " .. c1 .. " --format json a",
                           "kv list " .. c1 .. " --format json",
                           "tags " .. c1 .. " --format json --set role=web" } do
      local out, err, status = cli(args)
      assert.are.equal(0, status, args .. ": " .. err)
      serf_layout(out)
      assert.is_table(cjson.decode(out))
    end
  end)

  it("takes arguments that start with - after the first argument", function()
    local _, err, status = cli("kv put " .. c1 .. " neg -5")
    assert.are.equal(0, status, err)
    assert.are.equal("-5\n", (h1:cli("kv", "get", "neg")))
    _, err, status = cli("kv put " .. c1 .. " -- -key --format")
    assert.are.equal(0, status, err)
    assert.are.equal("--format\n", (h1:cli("kv", "get", "--", "-key")))
    -- flags after the subcommand, before its arguments
    local out
    out, err, status = cli("kv get --format json " .. c1 .. " neg")
    assert.are.equal(0, status, err)
    assert.are.equal("-5", cjson.decode(out).value)
  end)

  it("sets and deletes this agent's Serf tags", function()
    local out, err, status = cli("tags " .. c1 .. " --set dc=eu-1 --set "
                                 .. q("note=a b=c"))
    assert.are.equal(0, status, err)
    assert.are.equal("Successfully updated agent tags\n", out)
    local tags
    assert.is_true(agent.wait(function()
      local ms = h2:members()
      tags = ms and ms.h1.tags
      return tags and tags.dc == "eu-1"
    end, 10), h2:log())
    assert.are.same({ role = "web", dc = "eu-1", note = "a b=c" }, tags)
    local inc = h1:members().h1.incarnation
    out, err, status = cli("tags --format json " .. c1
                           .. " --set dc=us --delete note --delete none")
    assert.are.equal(0, status, err)
    local ans = cjson.decode(out)
    assert.are.same({ role = "web", dc = "us" }, ans.tags)
    assert.is_true(ans.changed)
    assert.are.equal(inc + 1, ans.incarnation)
    -- set, then deleted: as serf
    ans = cjson.decode((cli("tags --format json " .. c1
                            .. " --set x=1 --delete x")))
    assert.are.same({ role = "web", dc = "us" }, ans.tags)
    assert.is_false(ans.changed)
    -- Serf's encoding: 0xff, then a msgpack map sorted by key
    assert.are.equal("ff82a26463a27573a4726f6c65a3776562",
                     h1:members().h1.private_data_hex)
    -- too many bytes for private data
    out, err, status = cli("tags " .. c1 .. " --set big=" .. ("x"):rep(600))
    assert.are.equal("", out)
    assert.are.equal(1, status)
    assert.matches("Error setting tags: the tags take %d+ bytes, more than "
                   .. "the 512 bytes of private data", err)
  end)

  it("refuses to replace private data that is not Serf tags", function()
    local script = os.tmpname()
    agent.write_file(script,
      'return { private_data = function() return "plain" end }')
    local h4 = start("h4", 4, { args = { "--script", script } })
    local _, err, status = cli("tags --control " .. ip(4) .. ":7374"
                               .. " --set a=b")
    assert.are.equal(1, status)
    assert.matches("Error setting tags: this node's private data %(5 bytes%)"
                   .. " is not Serf tags", err)
    assert.are.equal("plain", h4:members().h4.private_data)
    h4:stop()
    os.remove(script)
  end)

  it("forces a failed member to leave", function()
    -- h2 stops its heartbeat: the others suspect it
    assert.are.equal(0, select(2, h2:cli("pause")))
    assert.is_true(agent.wait(function()
      return h1:status_of("h2") == "suspect" and
             h3:status_of("h2") == "suspect"
    end, 15), h1:log())
    local out, err, status = cli("force-leave --format json " .. c1 .. " h2")
    assert.are.equal(0, status, err)
    assert.are.same({ name = "h2", was = "suspect", status = "left" },
                    cjson.decode(out))
    assert.are.equal("left", h1:status_of("h2"))
    -- its leave is gossiped: h3, which still suspected it, takes it
    assert.is_true(agent.wait(function()
      return h3:status_of("h2") == "left"
    end, 5), h3:log())
    assert.matches("member forced to leave: member=h2 inc=%d+ was=suspect",
                   h1:log())
    -- again: nothing to do, and as serf, nothing said
    out, err, status = cli("force-leave " .. c1 .. " h2")
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    -- refusals
    out, err, status = cli("force-leave " .. c1 .. " h3")
    assert.are.equal("", out)
    assert.are.equal(1, status)
    assert.matches('Error force leaving: member "h3" is alive', err)
    out, err, status = cli("force-leave " .. c1 .. " h1")
    assert.are.equal("", out)
    assert.are.equal(1, status)
    assert.matches('"h1" is this agent', err)
    out, err, status = cli("force-leave --format json " .. c1 .. " nobody")
    assert.are.equal("", out)
    assert.are.equal(1, status)
    assert.are.same({ error = 'Error force leaving: no member named "nobody"' },
                    cjson.decode(err))
    -- a member that is in fact running refutes, and comes back
    assert.are.equal(0, select(2, h2:cli("resume")))
    assert.is_true(agent.wait(function()
      return h1:status_of("h2") == "alive"
    end, 10), h1:log())
  end)

  it("streams the agent's log, below its own level too", function()
    local text = agent.spawn("monitor", { bin, "monitor", "--control",
                                          ip(1) .. ":7374" })
    local json = agent.spawn("monitor-json", { bin, "monitor", "--format",
      "json", "--log-level", "debug", "--control", ip(1) .. ":7374" })
    -- the lines kept come first: the forced leave of before
    assert.is_true(agent.wait(function()
      return text:log():find("[INFO] member forced to leave: member=h2", 1,
                             true) ~= nil
    end, 5), text:log())
    assert.is_nil(text:log():find("[DEBUG]", 1, true))
    h1:cli("tags", "--set", "mark=1")
    assert.is_true(agent.wait(function()
      return text:log():find("%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z %[INFO%] "
                             .. "private data set: bytes=%d+") ~= nil
    end, 5), text:log())
    -- JSON lines, one a line, with what the agent's log_level (info) drops
    local debug
    assert.is_true(agent.wait(function()
      for line in json:log():gmatch("[^\n]+") do
        local ev = cjson.decode(line)
        assert.is_string(ev.time)
        assert.is_string(ev.message)
        if ev.level == "DEBUG" then debug = ev end
      end
      return debug
    end, 5), json:log())
    assert.is_nil(h1:log():find("[DEBUG]", 1, true))
    text:stop()
    json:stop()
    local _, err, status = cli("monitor --log-level loud " .. c1)
    assert.are.equal(1, status)
    assert.matches("%-%-log%-level must be", err)
  end)

  it("drops the lines of a monitor that does not read, and says how many",
     function()
    -- an agent whose script logs 1000 debug lines at once, twice a
    -- second: more at once than the 512 lines kept, however fast the
    -- machine and whatever the sockets hold
    local script = os.tmpname()
    agent.write_file(script, [[
      local hearsay = require "hearsay"
      hearsay.every(500, function()
        for i = 1, 1000 do hearsay.log("debug", "noise", i, ("x"):rep(200)) end
      end)
      return {}
    ]])
    local h5 = start("h5", 5, { log = "info", args = { "--script", script } })
    -- a client with a small receive buffer that reads nothing for 3 s,
    -- then reads until the agent tells it what it lost
    local reader = agent.spawn("slow-monitor", { "python3", "-c", [[
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((sys.argv[1], 7374))
s.sendall(b'{"cmd":"monitor","log_level":"debug"}\n')
time.sleep(3)
s.settimeout(2.0)
data = b""
end = time.time() + 20
def told():
    at = data.find(b'"dropped"')
    return at >= 0 and data.find(b"\n", at) >= 0
try:
    while time.time() < end and not told():
        d = s.recv(65536)
        if not d:
            break
        data += d
except socket.timeout:
    pass
for line in data.split(b"\n"):
    if b'"dropped"' in line:
        sys.stdout.write(line.decode() + "\n")
]], ip(5) })
    agent.sleep(1)
    -- meanwhile the agent answers at once
    local t0 = os.time()
    local _, err, status = cli("members --control " .. ip(5) .. ":7374")
    assert.are.equal(0, status, err)
    assert.is_true(os.time() - t0 <= 2)
    assert.are.equal(0, reader:wait_exit(30))
    local line = reader:log():match("[^\n]+")
    assert.truthy(line, reader:log())
    local ev = cjson.decode(line)
    assert.are.equal("WARN", ev.level)
    assert.is_true(ev.dropped > 0)
    assert.matches("^monitor: %d+ log lines dropped", ev.message)
    -- the agent's own log stayed at its level
    assert.is_nil(h5:log():find("script: noise", 1, true))
    h5:stop()
    os.remove(script)
  end)

  if agent.have_serf() then
    it("shows tags to serf, and serf's tags, as serf does #serf", function()
      local s6 = agent.serf{ name = "s6", bind = ip(6) .. ":7946",
        rpc = ip(6) .. ":7373", join = { ip(1) .. ":7946" },
        args = { "-tag", "zone=z1" } }
      assert.is_true(agent.wait(function()
        local ms = s6:members()
        return ms and ms.h1 and ms.h1.tags.dc == "us"
      end, 10), s6:log())
      assert.are.same({ role = "web", dc = "us", mark = "1" },
                      s6:members().h1.tags)
      assert.is_true(agent.wait(function()
        local ms = h1:members()
        return ms and ms.s6 and ms.s6.tags.zone == "z1"
      end, 10), h1:log())
      assert.are.same({ min = 2, max = 5, version = 5 },
                      h1:members().s6.delegate)
    end)
  end
end)
