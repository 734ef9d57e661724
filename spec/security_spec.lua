-- security_spec.lua: encryption, key rotation, labels and the control
-- token. Exact behaviour under the simulated clock first, then real agents
-- on loopback (127.0.9.x and 127.0.10.x only) and Debian's serf agent,
-- with generous bounds. #net
local cjson = require "cjson"
local agent = require "agent"
local pcap = require "pcap"
local simlib = require "hearsay.sim"
local hearsay = require "hearsay"

-- The key of the encrypted serf capture (reference section 16.8).
local SERF_KEY = "sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs="

local function keygen()
  local out, status = agent.run(agent.bin .. " keygen")
  assert(status == 0, out)
  return (out:gsub("%s+$", ""))
end

local stats = agent.stats

-- The "refused" lines of a log for one reason: how many, and whether
-- each source address appears in only one of them.
local function refusals(log, reason)
  local n, seen, once = 0, {}, true
  for from in log:gmatch("refused %a+: from=([%d%.:a-f]+) reason="
                         .. reason .. " ") do
    n = n + 1
    if seen[from] then once = false end
    seen[from] = true
  end
  return n, once, seen
end

-- Wait until the agent answers and lists itself alive.
local function up(a)
  assert.is_true(agent.wait(function()
    return a:status_of(a.name) == "alive"
  end, 10), a:log())
  return a
end

local tmp = (os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec")
  .. "/security-" .. os.time()
os.execute("mkdir -p " .. tmp)

local write = agent.write_file

local read = agent.read_file

-- ===== Under the simulated clock =====

describe("encryption under the simulated clock", function()
  it("keeps nodes without the key, or with another one, out of an "
     .. "encrypted cluster, and counts what they send", function()
    local sim = simlib.new{ seed = 5, encrypt = SERF_KEY }
    sim:add(4)
    sim:run(6000)
    assert.is_true(sim:converged())
    local k2 = "AAECAwQFBgcICQoLDA0ODw=="
    sim:add({ "other" }, { encrypt = k2 })
    sim:add({ "plain" }, { encrypt = "" })
    sim:run(20000)
    for _, n in ipairs{ "n1", "n2", "n3", "n4" } do
      assert.is_nil(sim:node(n):state_of("other"))
      assert.is_nil(sim:node(n):state_of("plain"))
      assert.are.equal(4, #sim:node(n):members())
    end
    local st = sim:stats("n1")
    assert.is_true(st.dropped.decrypt > 0)   -- other's join
    assert.is_true(st.dropped.plaintext > 0) -- plain's join
    assert.is_true(st.msgs_in.encrypt > 0)
    assert.is_true(sim:stats("plain").dropped.encrypted > 0)
  end)

  it("opens what Debian's serf agent encrypted (the capture of section "
     .. "16.8)", function()
    local sim = simlib.new{ seed = 1, encrypt = SERF_KEY }
    sim:add({ "n1" })
    sim:run(100)
    local packets = pcap.read("spec/fixtures/serf094-encrypted.pcap")
    local udp = pcap.udp(packets)
    assert.is_true(#udp > 5)
    for _, p in ipairs(udp) do sim:inject("n1", p.payload) end
    local streams = pcap.tcp_streams(packets)
    assert.is_true(#streams >= 2)
    for _, s in ipairs(streams) do sim:inject_stream("n1", s.data, true) end
    sim:run(1000)
    local st = sim:stats("n1")
    assert.is_true(st.msgs_in.encrypt >= #udp + 1)
    assert.are.equal(0, st.dropped.decrypt)
    assert.are.equal(0, st.dropped.malformed)
    assert.is_true(st.msgs_in["has-crc"] > 0) -- the CRC is inside
    -- the serf agents' alive messages came through
    assert.is_not_nil(sim:node("n1"):state_of("a"))
    -- with another key, nothing opens
    local other = simlib.new{ seed = 1, encrypt = "AAECAwQFBgcICQoLDA0ODw==" }
    other:add({ "n1" })
    other:run(100)
    for _, p in ipairs(udp) do other:inject("n1", p.payload) end
    assert.are.equal(#udp, other:stats("n1").dropped.decrypt)
    assert.are.equal(0, other:stats("n1").msgs_in.encrypt)
  end)

  it("carries every stream kind sealed and labelled: push/pull, fallback "
     .. "pings, metadata fetches", function()
    local sim = simlib.new{ seed = 9, encrypt = SERF_KEY, label = "prod" }
    sim:add(3)
    sim:run(3000)
    assert.is_true(sim:converged())
    -- UDP to n3 blocked everywhere: only the TCP fallback ping reaches it
    for _, pair in ipairs{ { "n1", "n3" }, { "n3", "n1" }, { "n2", "n3" },
                           { "n3", "n2" } } do
      sim:block(pair[1], pair[2], "udp")
    end
    sim:run(20000)
    assert.are.equal("alive", sim:node("n1"):state_of("n3"))
    assert.is_true(sim:stats("n1").tcp_ping_rescues > 0)
    sim:heal()
    -- a value too large for a packet is announced, then fetched over TCP
    local big = string.rep("0123456789abcdef", 256)
    assert.is_true(sim:node("n2"):publish("big", big))
    sim:run(10000)
    for _, n in ipairs{ "n1", "n2", "n3" } do
      assert.are.equal(big, sim:node(n):read("big"))
      local st = sim:stats(n)
      assert.are.equal(0, st.dropped.decrypt + st.dropped.label
                          + st.dropped.plaintext)
      assert.is_true(st.msgs_in.encrypt > 0)
    end
    assert.is_true(sim:stats("n1").metadata.fetches
                   + sim:stats("n3").metadata.fetches > 0)
  end)

  it("keeps clusters with different labels apart", function()
    local sim = simlib.new{ seed = 3, label = "prod" }
    sim:add(3)
    sim:add({ "test1" }, { label = "test" })
    sim:add({ "none1" }, { label = "" })
    sim:run(10000)
    assert.is_nil(sim:node("n1"):state_of("test1"))
    assert.is_nil(sim:node("n1"):state_of("none1"))
    assert.are.equal("alive", sim:node("n1"):state_of("n3"))
    assert.is_true(sim:stats("n1").dropped.label >= 2)
  end)
end)

-- ===== The Lua API, on nodes in this process =====

describe("the keyring from Lua #net", function()
  local nodes = {}
  after_each(function()
    for _, n in ipairs(nodes) do n:close() end
    nodes = {}
  end)

  it("lists, installs, uses and removes keys on every node", function()
    local k1, k2 = keygen(), keygen()
    local function node(i, join)
      local n = assert(hearsay.node{ name = "l" .. i, profile = "local",
        bind = "127.0.10.2" .. i .. ":7946", log_level = "off",
        encrypt = k1, join = join })
      nodes[#nodes + 1] = n
      return n
    end
    local a = node(1)
    local b = node(2, { a:address() })
    local c = node(3, { a:address() })
    assert.is_true(hearsay.run_until(function()
      return #a:members("alive") == 3 and #b:members("alive") == 3
        and #c:members("alive") == 3
    end, 10000))
    assert.are.same({ k1 }, a:keyring_list())
    local res
    local function wait()
      assert.is_true(hearsay.run_until(function() return res ~= nil end,
                                       15000))
      local r = res
      res = nil
      return r
    end
    assert.is_true(b:keyring_install(k2, function(r) res = r end))
    local r = wait()
    assert.are.equal(3, r.nodes)
    assert.are.equal(3, r.responses)
    assert.are.equal(0, r.errors)
    assert.are.same({ k1, k2 }, c:keyring_list())
    -- the whole cluster's view
    assert.are.same({ k1, k2 }, a:keyring_list(function(x) res = x end))
    r = wait()
    assert.are.same({ installed = 3, primary = 3 }, r.keys[k1])
    assert.are.same({ installed = 3, primary = 0 }, r.keys[k2])
    -- the primary cannot go; a bad key is an argument error
    local ok, err, code = a:keyring_remove(k1)
    assert.is_nil(ok)
    assert.are.equal("ESTATE", code)
    assert.matches("primary", err)
    assert.has_error(function() a:keyring_install("not a key") end)
    assert.is_true(c:keyring_use(k2, function(x) res = x end))
    assert.are.equal(0, wait().errors)
    assert.is_true(a:keyring_remove(k1, function(x) res = x end))
    assert.are.equal(0, wait().errors)
    for _, n in ipairs{ a, b, c } do
      assert.are.same({ k2 }, n:keyring_list())
    end
    assert.are.equal(3, #b:members("alive"))
  end)
end)

-- ===== Real agents =====

local function hs(name, ip, opts)
  opts = opts or {}
  opts.name = name
  opts.bind = ip .. ":7946"
  opts.control = ip .. ":7374"
  opts.log = opts.log or "info"
  return agent.hearsay(opts)
end

-- Every agent lists every name as alive.
local function all_alive(agents, names)
  for _, a in ipairs(agents) do
    local ms = a:members()
    if not ms then return false end
    for _, n in ipairs(names) do
      if not ms[n] or ms[n].status ~= "alive" then return false end
    end
  end
  return true
end

-- Ask every agent for its members for `seconds`; the answers in which
-- some name was not alive (none expected).
local function watch(agents, names, seconds)
  local bad, deadline = {}, os.time() + seconds
  repeat
    for _, a in ipairs(agents) do
      local ms = a:members() or {}
      for _, n in ipairs(names) do
        local st = ms[n] and ms[n].status or "missing"
        if st ~= "alive" then bad[#bad + 1] = a.name .. " sees " .. n .. " "
            .. st end
      end
    end
    agent.sleep(0.2)
  until os.time() >= deadline
  return bad
end

describe("encryption with serf #net #serf", function()
  teardown(function() agent.cleanup() end)
  if not agent.have_serf() then
    it("needs the serf agent", function()
      assert.is_true(agent.have_serf(), "serf is not installed")
    end)
    return
  end

  local key = keygen()

  local function serf(name, ip, k, join)
    return agent.serf{ name = name, bind = ip .. ":7946",
                       rpc = ip .. ":7373", join = join,
                       args = { "-encrypt=" .. k } }
  end

  it("makes keys as serf keygen does", function()
    assert.matches("^[A-Za-z0-9+/]+=$", key)
    assert.are.equal(44, #key)
    assert.are_not.equal(key, keygen())
  end)

  local s1, h1

  it("joins an encrypted serf agent with the same key", function()
    s1 = serf("s1", "127.0.9.1", key)
    h1 = hs("h1", "127.0.9.2", { join = { "127.0.9.1:7946" },
                                 args = { "--encrypt", key } })
    assert.is_true(agent.wait(function()
      return s1:status_of("h1") == "alive" and h1:status_of("s1") == "alive"
    end, 30), h1:log() .. s1:log())
    local st = stats(h1)
    assert.is_true(st.msgs_in.encrypt > 0)
    assert.is_true(st.msgs_out.encrypt > 0)
    assert.is_true(st.security.encrypted)
    assert.matches("Encrypted: true", h1:log())
  end)

  it("is joined by an encrypted serf agent with the same key", function()
    local h2 = hs("h2", "127.0.9.3", { args = { "--encrypt", key } })
    assert.is_true(agent.wait(function()
      return h2:status_of("h2") == "alive"
    end, 10))
    local s2 = serf("s2", "127.0.9.4", key, { "127.0.9.3:7946" })
    assert.is_true(agent.wait(function()
      return h2:status_of("s2") == "alive" and s2:status_of("h2") == "alive"
    end, 30), h2:log() .. s2:log())
  end)

  it("keeps agents without the key, or with another, out; refuses and "
     .. "counts their traffic, and logs it once per address", function()
    local before = stats(h1).dropped
    -- (--retry-join: a --join that is refused would make them exit)
    local plain = hs("h3", "127.0.9.5", {
      args = { "--retry-join", "127.0.9.2:7946" } })
    local other = serf("s3", "127.0.9.6", keygen(), { "127.0.9.2:7946" })
    local wrong = hs("h4", "127.0.9.7", {
      args = { "--retry-join", "127.0.9.2:7946", "--encrypt", keygen() } })
    assert.is_true(agent.wait(function()
      local d = stats(h1).dropped
      return d.plaintext > before.plaintext and d.decrypt > before.decrypt
    end, 20), h1:log())
    -- the keyless agent sees our answer as encrypted
    assert.is_true(agent.wait(function()
      return plain:log():match("reason=encrypted") ~= nil
    end, 10), plain:log())
    -- more attempts: counted, not logged again
    for _ = 1, 3 do
      plain:cli("join", "127.0.9.2:7946")
      wrong:cli("join", "127.0.9.2:7946")
    end
    agent.sleep(6)
    -- (streams on loopback all come from 127.0.0.1: the kernel picks the
    -- source address of a connection)
    local log = h1:log()
    local n, once = refusals(log, "plaintext")
    assert.is_true(n >= 1 and once, log)
    n, once = refusals(log, "decrypt")
    assert.is_true(n >= 1 and once, log)
    local d = stats(h1).dropped
    assert.is_true(d.plaintext - before.plaintext >= 4)
    assert.is_true(d.plaintext - before.plaintext > n)
    for _, who in ipairs{ "h3", "s3", "h4" } do
      assert.is_nil(h1:status_of(who))
      assert.is_nil(s1:status_of(who))
    end
    assert.is_nil(other:status_of("h1"))
    -- no key ever reaches a log
    assert.is_nil(log:find(key, 1, true))
  end)

  it("lists keys across the cluster, and reports serf members as failed",
     function()
    local out, status = h1:cli("keys", "--list")
    assert.are.equal(1, status, out)
    assert.matches("Asking all members for installed keys", out)
    assert.matches("failed: +s1 ", out)
    assert.matches("Failed to gather member keys: 1/2 nodes reported "
                   .. "success", out)
  end)
end)

describe("key rotation on five agents #net", function()
  teardown(function() agent.cleanup() end)

  it("installs, uses and removes keys without losing a member, then "
     .. "refuses the old key", function()
    local k1, k2 = keygen(), keygen()
    local agents, names = {}, {}
    local function start(i)
      local name = "r" .. i
      local a = hs(name, "127.0.9.1" .. i, {
        join = i > 1 and { "127.0.9.11:7946" } or nil,
        args = { "--encrypt", k1, "--keyring", tmp .. "/" .. name .. ".keys" },
      })
      agents[i] = a
      names[i] = name
      return a
    end
    for i = 1, 5 do start(i) end
    assert.is_true(agent.wait(function() return all_alive(agents, names) end,
                              30))
    local function keys(a, ...)
      local out, status = a:cli("keys", ...)
      assert.are.equal(0, status, out)
      return out
    end
    assert.matches("Successfully installed key!",
                   keys(agents[2], "--install", k2))
    assert.are.same({}, watch(agents, names, 3))
    local list = keys(agents[4], "--list")
    assert.matches(k1:gsub("%p", "%%%0") .. "  %[5/5%]  primary %[5/5%]", list)
    assert.matches(k2:gsub("%p", "%%%0") .. "  %[5/5%]\n", list)
    assert.matches("Successfully changed primary key!",
                   keys(agents[3], "--use", k2))
    assert.are.same({}, watch(agents, names, 3))
    assert.matches("Successfully removed key!",
                   keys(agents[5], "--remove", k1))
    assert.are.same({}, watch(agents, names, 3))
    list = keys(agents[1], "--list", "--format", "json")
    local doc = cjson.decode(list)
    assert.are.equal(1, #doc.keys)
    assert.are.same({ key = k2, installed = 5, primary = 5 }, doc.keys[1])
    -- each keyring file holds the new key only
    assert.are.same({ k2 }, cjson.decode(read(tmp .. "/r3.keys")))
    -- the primary cannot be removed
    local out, status = agents[1]:cli("keys", "--remove", k2)
    assert.are.equal(1, status)
    assert.matches("Error removing key: removing the primary key is not "
                   .. "allowed", out)
    -- an agent that knows only the old key stays out
    local old = hs("old", "127.0.9.16", {
      args = { "--retry-join", "127.0.9.11:7946", "--encrypt", k1 } })
    assert.is_true(agent.wait(function()
      return stats(agents[1]).dropped.decrypt > 0
    end, 15), agents[1]:log())
    assert.are.same({}, watch(agents, names, 2))
    assert.is_nil(agents[1]:status_of("old"))
    assert.are.equal(1, #(function()
      local r = {}
      for n in pairs(old:members() or {}) do r[#r + 1] = n end
      return r
    end)())
    -- a restart keeps the rotated keyring: the file wins over --encrypt
    agents[5]:signal("KILL")
    agents[5]:wait_exit(5)
    start(5)
    assert.is_true(agent.wait(function() return all_alive(agents, names) end,
                              30), agents[5]:log())
    assert.matches("the configured encryption key is ignored",
                   agents[5]:log())
    for _, a in ipairs(agents) do
      assert.is_nil(a:log():find(k1, 1, true))
      assert.is_nil(a:log():find(k2, 1, true))
    end
  end)
end)

describe("encryption with transport tcp #net", function()
  teardown(function() agent.cleanup() end)

  it("seals the packets that travel over TCP too", function()
    local key = keygen()
    local a = up(hs("t1", "127.0.10.30", { set = { transport = "tcp" },
                                           args = { "--encrypt", key } }))
    local b = hs("t2", "127.0.10.31", { set = { transport = "tcp" },
                                        args = { "--encrypt", key },
                                        join = { "127.0.10.30:7946" } })
    assert.is_true(agent.wait(function()
      return all_alive({ a, b }, { "t1", "t2" })
    end, 20))
    local w = hs("t3", "127.0.10.32", { set = { transport = "tcp" },
                                        args = { "--encrypt", keygen() },
                                        join = { "127.0.10.30:7946" } })
    assert.is_true(agent.wait(function()
      return stats(a).dropped.decrypt > 0
    end, 15), a:log())
    assert.are.same({}, watch({ a, b }, { "t1", "t2" }, 3))
    assert.is_nil(a:status_of("t3"))
    assert.is_nil(w:status_of("t1"))
    local st = stats(a)
    assert.is_true(st.transport.frames_in > 0)
    assert.is_true(st.msgs_in.encrypt > st.push_pulls_in)
  end)
end)

describe("switching a running cluster to encryption #net", function()
  teardown(function() agent.cleanup() end)

  it("goes from plaintext to encrypted by config and reload without "
     .. "losing a member", function()
    local key = keygen()
    local agents, names, files = {}, {}, {}
    for i = 1, 4 do
      local name = "m" .. i
      files[i] = tmp .. "/" .. name .. ".lua"
      write(files[i], "-- plaintext\n")
      agents[i] = hs(name, "127.0.9.2" .. i, {
        join = i > 1 and { "127.0.9.21:7946" } or nil,
        args = { "--config", files[i] } })
      names[i] = name
    end
    assert.is_true(agent.wait(function() return all_alive(agents, names) end,
                              30))
    local function step(text, expect)
      for i, a in ipairs(agents) do
        write(files[i], text)
        local out, status = a:cli("reload")
        assert.are.equal(0, status, out)
        assert.matches(expect, out)
        assert.are.same({}, watch(agents, names, 1))
      end
      assert.are.same({}, watch(agents, names, 3))
    end
    -- 1: the key everywhere, still sending and accepting plaintext
    step(string.format("encrypt = %q\ngossip_verify_incoming = false\n"
                       .. "gossip_verify_outgoing = false\n", key),
         "encrypted=true keys=1 gossip_verify_incoming=false "
         .. "gossip_verify_outgoing=false")
    assert.are.equal(0, stats(agents[1]).msgs_out.encrypt)
    -- 2: everyone encrypts, everyone still accepts plaintext
    step(string.format("encrypt = %q\ngossip_verify_incoming = false\n",
                       key), "gossip_verify_outgoing=true")
    -- 3: plaintext is refused
    step(string.format("encrypt = %q\n", key),
         "gossip_verify_incoming=true gossip_verify_outgoing=true")
    for _, a in ipairs(agents) do
      local st = stats(a)
      assert.is_true(st.msgs_out.encrypt > 0)
      assert.are.equal(0, st.dropped.decrypt)
      assert.are.equal(0, st.dropped.plaintext)
    end
    -- a plaintext agent cannot join any more
    hs("m5", "127.0.9.25", { join = { "127.0.9.21:7946" } })
    assert.is_true(agent.wait(function()
      return stats(agents[1]).dropped.plaintext > 0
    end, 15))
    assert.is_nil(agents[1]:status_of("m5"))
    -- a reload with a bad key changes nothing
    write(files[1], 'encrypt = "not-a-key"\n')
    local out, status = agents[1]:cli("reload")
    assert.are.equal(1, status)
    assert.matches("encrypt: not a base64%-encoded key", out)
    assert.is_nil(out:find("not-a-key", 1, true))
    assert.is_true(stats(agents[1]).security.gossip_verify_incoming)
  end)
end)

describe("labels #net", function()
  teardown(function() agent.cleanup() end)

  it("joins agents with the same label, refuses another label or none, "
     .. "and logs it once per address", function()
    local conf = tmp .. "/p2.lua"
    write(conf, 'label = "prod"\n')
    local a = hs("p1", "127.0.10.1", { set = { label = "prod" } })
    local b = hs("p2", "127.0.10.2", { args = { "--config", conf },
                                       join = { "127.0.10.1:7946" } })
    assert.is_true(agent.wait(function()
      return all_alive({ a, b }, { "p1", "p2" })
    end, 20))
    local t = up(hs("t1", "127.0.10.3", { set = { label = "test" } }))
    local u = up(hs("u1", "127.0.10.4"))
    for _ = 1, 2 do
      assert.are_not.equal(0, select(2, t:cli("join", "127.0.10.1:7946")))
      assert.are_not.equal(0, select(2, u:cli("join", "127.0.10.1:7946")))
    end
    assert.is_true(stats(a).dropped.label >= 4)
    assert.is_nil(a:status_of("t1"))
    assert.is_nil(a:status_of("u1"))
    assert.is_nil(u:status_of("p1"))
    assert.are.same({}, watch({ a, b }, { "p1", "p2" }, 1))
    -- p2 takes another label: every packet it sends p1 is refused, and
    -- logged once
    local before = stats(a).dropped.label
    write(conf, 'label = "staging"\n')
    local out, status = b:cli("reload")
    assert.are.equal(0, status, out)
    assert.matches('label="staging"', out)
    assert.is_true(agent.wait(function()
      return stats(a).dropped.label >= before + 5
    end, 20), a:log())
    local n, once, from = refusals(a:log(), "label")
    assert.is_true(once, a:log())
    assert.is_true(from["127.0.10.2"], a:log())
    assert.is_true(stats(a).dropped.label - before > n)
    assert.is_true(agent.wait(function()
      local st = a:status_of("p2")
      return st == "suspect" or st == "dead"
    end, 30))
  end)

  it("takes unlabelled traffic as its own and refuses labelled traffic "
     .. "with skip_inbound_label_check", function()
    local s = up(hs("k1", "127.0.10.5", { set = { label = "prod",
      skip_inbound_label_check = true } }))
    -- an unlabelled agent's join is taken (its state sync is answered)
    local plain = up(hs("k2", "127.0.10.6"))
    local out, status = plain:cli("join", "127.0.10.5:7946")
    assert.are.equal(0, status, out)
    assert.is_true(agent.wait(function()
      return s:status_of("k2") ~= nil
    end, 10))
    assert.are.equal(0, stats(s).dropped.label)
    -- a labelled one is refused, even with the same label
    local labelled = up(hs("k3", "127.0.10.7", { set = { label = "prod" } }))
    out, status = labelled:cli("join", "127.0.10.5:7946")
    assert.are.equal(1, status, out)
    assert.is_true(stats(s).dropped.label > 0)
    assert.is_nil(s:status_of("k3"))
  end)
end)

describe("the control token #net", function()
  teardown(function() agent.cleanup() end)

  it("serves requests with the right token only", function()
    local conf = tmp .. "/token.lua"
    write(conf, 'control_token = "s3cret token"\n')
    local a = hs("c1", "127.0.10.10", { args = { "--config", conf } })
    local ctl = "--control 127.0.10.10:7374"
    local bin = agent.bin
    assert.is_true(agent.wait(function()
      local _, st = agent.run(bin .. " members --token 's3cret token' "
                              .. ctl)
      return st == 0
    end, 10), a:log())
    local out, status = agent.run(bin .. " members " .. ctl)
    assert.are.equal(1, status)
    assert.matches("permission denied", out)
    out, status = agent.run(bin .. " stats --token wrong " .. ctl)
    assert.are.equal(1, status)
    assert.matches("permission denied", out)
    out, status = agent.run("HEARSAY_CONTROL_TOKEN='s3cret token' " .. bin
                            .. " members " .. ctl)
    assert.are.equal(0, status, out)
    assert.matches("c1 +127%.0%.10%.10:7946 +alive", out)
    -- a raw request without the token
    out = agent.run([[bash -c 'exec 3<>/dev/tcp/127.0.10.10/7374; ]]
      .. [[echo "{\"cmd\":\"version\"}" >&3; timeout 5 head -n1 <&3']])
    assert.matches('"ok":false', out)
    assert.matches("permission denied", out)
    assert.is_nil(a:log():find("s3cret", 1, true))
  end)
end)
