-- metrics_spec.lua: the Prometheus endpoint of `hearsay agent --metrics`
-- and the fields of `hearsay stats`, on real agents on 127.0.13.x. #net
--
-- The HTTP client is bash's /dev/tcp (bash is part of every Debian
-- system), so that the spec can send any bytes, or none, and time the
-- answer.
local agent = require "agent"
local cjson = require "cjson"

local function addr(i) return "127.0.13." .. i .. ":7946" end
local function control(i) return "127.0.13." .. i .. ":7374" end
local function metrics(i) return "127.0.13." .. i .. ":9100" end

local tmp = (os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec")
  .. "/metrics-" .. os.time()
os.execute("mkdir -p " .. tmp)

-- ===== A raw HTTP client =====

local nfiles = 0
local function temp_file(bytes)
  nfiles = nfiles + 1
  local path = tmp .. "/req" .. nfiles
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local function bash(script, limit)
  return agent.run("timeout " .. (limit or 30) .. " bash -c "
    .. agent.sh_quote(script))
end

-- Split a raw answer (and the @elapsed_ms line the scripts add).
local function parse_response(raw)
  local r = { raw = raw }
  r.elapsed = tonumber(raw:match("\n@elapsed_ms=(%d+)\n?$"))
  raw = raw:gsub("\n@elapsed_ms=%d+\n?$", "")
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return r end
  r.code = tonumber(head:match("^HTTP/1%.0 (%d%d%d) "))
  r.headers = {}
  for k, v in head:gmatch("\r\n([%w%-]+): ([^\r]*)") do r.headers[k:lower()] = v end
  r.body = body
  return r
end

-- Send `bytes` on a new connection and read the answer until the agent
-- closes it.
local function http(hostport, bytes)
  local host, port = hostport:match("^(.+):(%d+)$")
  local out = bash(string.format(
    "exec 3<>/dev/tcp/%s/%s || exit 9\n"
    .. "s=$(date +%%s%%N)\n"
    .. "cat %s >&3\n"
    .. "cat <&3\n"
    .. "e=$(date +%%s%%N)\n"
    .. "printf '\\n@elapsed_ms=%%d\\n' $(( (e - s) / 1000000 ))\n",
    host, port, agent.sh_quote(temp_file(bytes))))
  return parse_response(out)
end

local function get(hostport, path)
  return http(hostport, "GET " .. (path or "/metrics")
    .. " HTTP/1.0\r\nHost: " .. hostport .. "\r\nAccept: */*\r\n\r\n")
end

-- ===== The text exposition format, version 0.0.4 =====

-- The labels of a sample, `a="x",b="y"`, as a list of "a=x".
local function parse_labels(s, line)
  local labels, i = {}, 1
  while i <= #s do
    local name, j = s:match('^([%a_][%w_]*)="()', i)
    assert(name, "bad label in: " .. line)
    local v = {}
    i = j
    while true do
      local c = s:sub(i, i)
      assert(c ~= "", "label value not closed in: " .. line)
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        assert(e == "\\" or e == '"' or e == "n", "bad escape in: " .. line)
        v[#v + 1] = e == "n" and "\n" or e
        i = i + 2
      elseif c == '"' then
        i = i + 1
        break
      else
        v[#v + 1] = c
        i = i + 1
      end
    end
    labels[#labels + 1] = name .. "=" .. table.concat(v)
    if s:sub(i, i) == "," then
      i = i + 1
    else
      assert(i > #s, "bad label list in: " .. line)
    end
  end
  return labels
end

-- Every line must be a HELP, a TYPE or a sample, each metric must have
-- one HELP and one TYPE before its samples, which come together, and a
-- counter's name ends in _total. Returns the families (name -> {help,
-- type, samples}) and the values by 'name{label=value}'.
local function parse_exposition(body)
  assert(body:sub(-1) == "\n", "the exposition does not end with a newline")
  local fams, values, current = {}, {}, nil
  for line in body:gmatch("([^\n]*)\n") do
    local hname, help = line:match("^# HELP ([%a_:][%w_:]*) (.+)$")
    local tname, typ = line:match("^# TYPE ([%a_:][%w_:]*) (%S+)$")
    if hname then
      assert(not fams[hname], "HELP twice for " .. hname)
      fams[hname] = { help = help, samples = 0 }
      current = hname
    elseif tname then
      assert(tname == current and not fams[tname].type, "TYPE out of place: " .. line)
      assert(typ == "counter" or typ == "gauge", "unexpected type: " .. line)
      fams[tname].type = typ
    else
      assert(not line:match("^#"), "unexpected comment: " .. line)
      local name, rest = line:match("^([%a_:][%w_:]*)(.*)$")
      assert(name, "not a sample: " .. line)
      local lab, value = rest:match("^{(.*)} (%S+)$")
      if not lab then value = rest:match("^ (%S+)$") end
      assert(value and tonumber(value), "bad value: " .. line)
      assert(name == current and fams[name].type,
             "a sample without its HELP and TYPE just before: " .. line)
      local key = name
      if lab then key = name .. "{" .. table.concat(parse_labels(lab, line), ",") .. "}" end
      assert(values[key] == nil, "sample twice: " .. line)
      values[key] = tonumber(value)
      fams[name].samples = fams[name].samples + 1
    end
  end
  for name, f in pairs(fams) do
    assert(f.type, "no TYPE for " .. name)
    assert(f.samples > 0, "no sample of " .. name)
    assert(name:match("^hearsay_"), "not a hearsay_ metric: " .. name)
    assert((f.type == "counter") == (name:match("_total$") ~= nil),
           "only counters end in _total: " .. name)
  end
  return fams, values
end

local function scrape(i)
  local r = get(metrics(i))
  assert(r.code == 200, r.raw)
  local _, values = parse_exposition(r.body)
  return values
end

-- ===== The cluster =====

local function start(i, args, join)
  local p = agent.hearsay{ name = "m" .. i, bind = addr(i), control = control(i),
                           profile = "local", args = args, join = join }
  -- The control endpoint answers once the node is bound and running.
  assert(agent.wait(function()
    local _, status = p:cli("members")
    return status == 0
  end, 10), p:log())
  return p
end

describe("the metrics endpoint #net", function()
  local a, b

  setup(function()
    a = start(1, { "--metrics", metrics(1),
                   "--script", "spec/fixtures/scripts/metrics_hooks.lua" })
    b = start(2, { "--metrics", metrics(2) }, { addr(1) })
    assert.is_true(agent.wait(function()
      return a:status_of("m2") == "alive" and b:status_of("m1") == "alive"
    end, 20), a:log() .. b:log())
  end)

  teardown(function() agent.cleanup() end)

  it("serves every number in the text exposition format", function()
    -- Wait for a few probes each way.
    assert.is_true(agent.wait(function()
      return scrape(1).hearsay_probes_total >= 2 and scrape(2).hearsay_probes_total >= 2
    end, 15), a:log())
    local r = get(metrics(1))
    assert.are.equal(200, r.code, r.raw)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
    assert.are.equal(#r.body, tonumber(r.headers["content-length"]))
    assert.are.equal("close", r.headers.connection)
    local fams, v = parse_exposition(r.body)
    for _, name in ipairs{
      "hearsay_members", "hearsay_probes_total", "hearsay_probes_failed_total",
      "hearsay_suspicions_total", "hearsay_refutations_total",
      "hearsay_packets_received_total", "hearsay_packets_sent_total",
      "hearsay_packets_received_bytes_total", "hearsay_packets_sent_bytes_total",
      "hearsay_messages_received_total", "hearsay_messages_sent_total",
      "hearsay_messages_received_bytes_total", "hearsay_messages_sent_bytes_total",
      "hearsay_dropped_total", "hearsay_push_pulls_started_total",
      "hearsay_push_pulls_served_total", "hearsay_broadcast_queue_messages",
      "hearsay_hook_calls_total", "hearsay_hook_errors_total",
      "hearsay_hook_budget_stops_total", "hearsay_metadata_writes_total",
      "hearsay_metadata_writes_refused_total", "hearsay_health_score",
      "hearsay_metrics_answers_total", "hearsay_build_info" } do
      assert.truthy(fams[name], "no metric " .. name)
    end
    assert.are.equal("counter", fams.hearsay_probes_total.type)
    assert.are.equal("gauge", fams.hearsay_members.type)
    assert.are.equal(2, v["hearsay_members{state=alive}"])
    assert.are.equal(0, v["hearsay_members{state=dead}"])
    assert.is_true(v["hearsay_packets_received_total"] > 0)
    assert.is_true(v["hearsay_packets_received_bytes_total"] > v["hearsay_packets_received_total"])
    -- Messages and their bytes, by type, in and out.
    for _, dir in ipairs{ "received", "sent" } do
      for _, t in ipairs{ "ping", "ack", "push-pull" } do
        local n = v["hearsay_messages_" .. dir .. "_total{type=" .. t .. "}"]
        local bytes = v["hearsay_messages_" .. dir .. "_bytes_total{type=" .. t .. "}"]
        assert.is_true(n > 0, dir .. " " .. t)
        assert.is_true(bytes > n, dir .. " " .. t .. " bytes")
      end
      assert.are.equal(14, fams["hearsay_messages_" .. dir .. "_total"].samples)
    end
    assert.is_true(v["hearsay_push_pulls_served_total"] >= 1)
    assert.are.equal(0, v["hearsay_dropped_total{reason=malformed}"])
    assert.is_true(v["hearsay_health_score"] >= 0)
    assert.are.equal(1, v["hearsay_hook_scripts"])
    assert.are.equal(1, v["hearsay_build_info{version=" .. agent.run(agent.bin
      .. " version"):match("hearsay v(%S+)") .. "}"])
  end)

  it("moves its numbers as the cluster works", function()
    local a1, b1 = scrape(1), scrape(2)
    local out, status = a:cli("kv", "put", "app/color", "blue")
    assert.are.equal(0, status, out)
    local a2, b2
    assert.is_true(agent.wait(function()
      a2, b2 = scrape(1), scrape(2)
      return b2["hearsay_metadata_writes_total{origin=remote}"]
        == b1["hearsay_metadata_writes_total{origin=remote}"] + 1
    end, 10), b:log())
    assert.are.equal(a1["hearsay_metadata_writes_total{origin=local}"] + 1,
                     a2["hearsay_metadata_writes_total{origin=local}"])
    assert.are.equal(1, a2.hearsay_metadata_keys)
    assert.are.equal(1, b2.hearsay_metadata_keys)
    -- The hook ran for both writes it saw, here.
    assert.is_true(a2.hearsay_hook_calls_total > a1.hearsay_hook_calls_total)
    assert.are.equal(0, b2.hearsay_hook_calls_total)
    -- The hook refuses one write, and fails on another (which refuses it).
    out, status = a:cli("kv", "put", "locked/x", "1")
    assert.are.equal(1, status, out)
    out, status = a:cli("kv", "put", "boom", "1")
    assert.are.equal(1, status, out)
    local a3 = scrape(1)
    assert.are.equal(a1["hearsay_metadata_writes_refused_total{origin=local}"] + 2,
                     a3["hearsay_metadata_writes_refused_total{origin=local}"])
    assert.are.equal(a1.hearsay_hook_errors_total + 1, a3.hearsay_hook_errors_total)
    assert.are.equal(a2["hearsay_metadata_writes_total{origin=local}"],
                     a3["hearsay_metadata_writes_total{origin=local}"])
    -- Gossip goes on: more probes, packets and bytes.
    local a4
    assert.is_true(agent.wait(function()
      a4 = scrape(1)
      return a4.hearsay_probes_total > a1.hearsay_probes_total + 1
    end, 10))
    assert.is_true(a4.hearsay_packets_sent_total > a1.hearsay_packets_sent_total)
    assert.is_true(a4["hearsay_messages_sent_bytes_total{type=ping}"]
      > a1["hearsay_messages_sent_bytes_total{type=ping}"])
    assert.is_true(a4["hearsay_metrics_answers_total{code=200}"]
      > a1["hearsay_metrics_answers_total{code=200}"])
  end)

  it("answers what it does not serve with 4xx, and the agent goes on", function()
    local before = scrape(1)
    local cases = {
      { "GET /nope HTTP/1.0\r\n\r\n", 404 },
      { "GET /metrics/more HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
      { "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", 405 },
      { "DELETE /metrics HTTP/1.1\r\n\r\n", 405 },
      { "GARBAGE\r\n\r\n", 400 },
      { "GET /metrics\r\n\r\n", 400 },
      { "GET /metrics HTTP/2.0\r\n\r\n", 400 },
      { "\0\1\2\255\254 / HTTP/1.0\r\n\r\n", 400 },
      { string.rep("a", 10000), 431 },
      { "GET /metrics HTTP/1.0\r\nX-Long: " .. string.rep("b", 9000) .. "\r\n\r\n", 431 },
      -- A request body the agent never reads must not cost the client
      -- its answer.
      { "POST /metrics HTTP/1.0\r\nContent-Length: 200000\r\n\r\n"
        .. string.rep("c", 200000), 405 },
    }
    local counts = {}
    for _, c in ipairs(cases) do
      local r = http(metrics(1), c[1])
      assert.are.equal(c[2], r.code, r.raw)
      assert.are.equal(#r.body, tonumber(r.headers["content-length"]))
      if c[2] == 405 then assert.are.equal("GET, HEAD", r.headers.allow) end
      counts[c[2]] = (counts[c[2]] or 0) + 1
    end
    -- HEAD: the headers of GET, no body.
    local r = http(metrics(1), "HEAD /metrics HTTP/1.0\r\n\r\n")
    assert.are.equal(200, r.code, r.raw)
    assert.are.equal("", r.body)
    assert.is_true(tonumber(r.headers["content-length"]) > 1000)
    -- A query string and bare LF line ends are fine.
    assert.are.equal(200, http(metrics(1), "GET /metrics?x=1 HTTP/1.1\n\n").code)
    -- The agent is still up, and counted each answer.
    assert.is_true(a:running())
    local after = scrape(1)
    for code, n in pairs(counts) do
      local key = "hearsay_metrics_answers_total{code=" .. code .. "}"
      assert.are.equal(before[key] + n, after[key], key)
    end
    assert.are.equal("alive", a:status_of("m2"))
  end)

  it("drops a silent or slow client after the timeout, and refuses connections past its limit",
     function()
    local before = scrape(1)
    local host, port = metrics(1):match("^(.+):(%d+)$")
    local dir = tmp .. "/flood"
    os.execute("mkdir -p " .. dir)
    -- 20 connections at once: the odd ones say nothing, the even ones
    -- start a request line and never finish it.
    bash(string.format([[
for i in $(seq 1 20); do
  (
    exec 3<>/dev/tcp/%s/%s || exit 9
    s=$(date +%%s%%N)
    if [ $((i %% 2)) -eq 0 ]; then printf 'GET /metr' >&3; fi
    cat <&3 > %s/conn$i
    e=$(date +%%s%%N)
    printf '\n@elapsed_ms=%%d\n' $(( (e - s) / 1000000 )) >> %s/conn$i
  ) &
done
wait]], host, port, dir, dir), 40)
    local codes = {}
    for i = 1, 20 do
      local f = assert(io.open(dir .. "/conn" .. i, "rb"))
      local r = parse_response(f:read("a"))
      f:close()
      codes[r.code or "none"] = (codes[r.code or "none"] or 0) + 1
      if r.code == 408 then
        assert.is_true(r.elapsed >= 4500 and r.elapsed < 10000, r.raw)
      elseif r.code == 503 then
        assert.is_true(r.elapsed < 3000, r.raw)
      else
        error("connection " .. i .. ": " .. r.raw)
      end
    end
    local seen = string.format("408: %d, 503: %d", codes[408] or 0, codes[503] or 0)
    assert.is_true((codes[503] or 0) >= 20 - 16, seen)
    assert.is_true((codes[408] or 0) >= 1, seen)
    -- The agent serves the next scrape, and counted both kinds.
    assert.is_true(a:running())
    local after = scrape(1)
    assert.are.equal(before["hearsay_metrics_answers_total{code=408}"] + codes[408],
                     after["hearsay_metrics_answers_total{code=408}"])
    assert.are.equal(before["hearsay_metrics_answers_total{code=503}"] + codes[503],
                     after["hearsay_metrics_answers_total{code=503}"])
  end)

  it("is refused at start-up for a bad address, or one in use", function()
    local base = agent.bin .. " agent --name m9 --bind 127.0.13.9:7946 "
      .. "--control 127.0.13.9:7374 --metrics "
    for _, bad in ipairs{ "not-an-address", "127.0.13.9", "localhost:9100" } do
      local out, status = agent.run("timeout 10 " .. base .. agent.sh_quote(bad))
      assert.are.equal(2, status, out)
      assert.matches("metrics: \"" .. bad:gsub("%p", "%%%0") .. "\" is not ip:port", out)
    end
    local out, status = agent.run("timeout 10 " .. base .. metrics(1))
    assert.are.equal(1, status, out)
    assert.matches("metrics: cannot listen on " .. metrics(1):gsub("%.", "%%."), out)
  end)
end)

describe("metric_labels and handoff_queue_depth #net", function()
  local p

  setup(function()
    p = start(9, { "--metrics", metrics(9), "--set", "metric_labels=dc=eu-1",
                   "--set", "metric_labels=state=x",
                   "--set", "handoff_queue_depth=4" })
  end)

  teardown(function() agent.cleanup() end)

  it("puts the labels on every sample, and a metric's own label wins",
     function()
    local r = get(metrics(9))
    assert.are.equal(200, r.code, r.raw)
    local _, v = parse_exposition(r.body)
    local n = 0
    for line in r.body:gmatch("([^\n]*)\n") do
      if not line:match("^#") then
        assert.matches('^hearsay_[%w_]+{dc="eu%-1"[,}]', line)
        n = n + 1
      end
    end
    assert.is_true(n >= 50)
    assert.are.equal(1, v["hearsay_members{dc=eu-1,state=alive}"])
    assert.is_nil(v["hearsay_members{dc=eu-1,state=x}"])
    assert.is_not_nil(v["hearsay_probes_total{dc=eu-1,state=x}"])
  end)

  it("sizes the UDP receive buffer for handoff_queue_depth packets",
     function()
    -- 4 packets of udp_buffer_size (1400) bytes; Linux grants twice that
    local granted = tonumber(p:log():match("transport bound: .* "
      .. "udp_receive_buffer=(%d+)"))
    assert.is_not_nil(granted, p:log())
    assert.is_true(granted >= 4 * 1400 and granted <= 4 * 4 * 1400,
                   tostring(granted))
  end)
end)

describe("hearsay stats #net", function()
  local a, b

  setup(function()
    a = start(3, { "--metrics", metrics(3) })
    b = start(4, {}, { addr(3) })
    assert.is_true(agent.wait(function()
      return a:status_of("m4") == "alive" and b:status_of("m3") == "alive"
    end, 20), a:log() .. b:log())
  end)

  teardown(function()
    agent.cleanup()
    os.execute("rm -rf " .. agent.sh_quote(tmp)) -- the last user of tmp
  end)

  local wire_types = { "ping", "indirect-ping", "ack", "suspect", "alive", "dead",
                       "push-pull", "compound", "user", "compress", "encrypt", "nack",
                       "has-crc", "err" }
  local drop_reasons = { "malformed", "truncated", "crc", "unknown_type", "too_big",
                         "decompress", "wrong_node", "cidr", "paused", "version",
                         "refused", "stream_limit", "stream_timeout", "encrypted",
                         "label", "decrypt", "plaintext", "member_limit" }

  local function stats(p)
    local out, status = p:cli("stats", "--format", "json")
    assert.are.equal(0, status, out)
    return cjson.decode(out)
  end

  it("has every field in --format json", function()
    -- Wait for a few probes each way.
    assert.is_true(agent.wait(function()
      return stats(a).probes >= 2 and stats(b).probes >= 2
    end, 15), a:log())
    local st = stats(a)
    local function number(v, what) assert.are.equal("number", type(v), what) end
    for _, k in ipairs{ "packets_in", "packets_out", "bytes_in", "bytes_out", "probes",
                        "probes_failed", "indirect_probes", "suspicions", "refutations",
                        "push_pulls_in", "push_pulls_out", "push_pull_errors",
                        "broadcast_queue", "health", "send_errors" } do
      number(st[k], k)
    end
    assert.are.equal("boolean", type(st.paused))
    for _, s in ipairs{ "alive", "suspect", "dead", "left", "total" } do
      number(st.members[s], "members." .. s)
    end
    assert.are.equal(2, st.members.alive)
    for _, group in ipairs{ "msgs_in", "msgs_out", "msg_bytes_in", "msg_bytes_out" } do
      for _, t in ipairs(wire_types) do number(st[group][t], group .. "." .. t) end
    end
    assert.is_true(st.msg_bytes_in.ping > st.msgs_in.ping)
    assert.is_true(st.msg_bytes_out["push-pull"] > 0)
    for _, r in ipairs(drop_reasons) do number(st.dropped[r], "dropped." .. r) end
    for _, k in ipairs{ "scripts", "calls", "errors", "budget_stops", "memory_errors" } do
      number(st.hooks[k], "hooks." .. k)
    end
    for _, k in ipairs{ "keys", "tombstones", "writes_local", "writes_remote",
                        "refused_local", "refused_remote", "refused_future" } do
      number(st.metadata[k], "metadata." .. k)
    end
    for _, code in ipairs{ 200, 400, 404, 405, 408, 431, 503 } do
      number(st.metrics["answered_" .. code], "metrics.answered_" .. code)
    end
    -- Without --metrics there is no metrics group.
    assert.is_nil(stats(b).metrics)
  end)

  it("shows the numbers /metrics shows", function()
    local st = stats(a)
    local v = scrape(3)
    assert.are.equal(st.members.alive, v["hearsay_members{state=alive}"])
    assert.are.equal(st.metadata.keys, v.hearsay_metadata_keys)
    -- Counters only grow between the two looks.
    assert.is_true(v["hearsay_messages_received_total{type=ping}"] >= st.msgs_in.ping)
    assert.is_true(v["hearsay_messages_sent_bytes_total{type=ack}"] >= st.msg_bytes_out.ack)
    assert.is_true(v.hearsay_packets_received_total >= st.packets_in)
  end)

  it("prints grouped, aligned sections as text", function()
    local out, status = a:cli("stats")
    assert.are.equal(0, status, out)
    local sections, eq = {}, {}
    local current
    for line in out:gmatch("([^\n]*)\n") do
      local name = line:match("^(%S+):$")
      if name then
        current = name
        sections[#sections + 1] = name
      else
        assert.truthy(current and line:match("^\t"), line)
        local col = line:find(" = ", 1, true)
        if current ~= "messages" then
          assert.truthy(col, line)
          -- Within a section every "=" stands in one column.
          eq[current] = eq[current] or col
          assert.are.equal(eq[current], col, line)
        end
      end
    end
    assert.are.same({ "node", "members", "probes", "gossip", "messages", "dropped",
                      "hooks", "metadata", "security", "transport", "metrics",
                      "loop" }, sections)
    assert.matches("\n\ttype%s+in%s+out%s+bytes in%s+bytes out\n", out)
    assert.matches("\n\tping%s+%d+%s+%d+%s+%d+%s+%d+\n", out)
  end)
end)
