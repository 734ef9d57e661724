-- durable_spec.lua: what the data dir promises, on real agents on
-- 127.0.22.x: a write acknowledged is on disk (kill -9 of one agent, and
-- of a whole cluster, right after a burst), a torn log is cut and the
-- rest loads, a full disk refuses writes with a clear error and recovers
-- by itself, and an old single-file snapshot still loads. #net
local agent = require "agent"
local cjson = require "cjson"

local q = agent.sh_quote
local ip, hs = agent.subnet("127.0.22")
local read = agent.read_file

local function fresh_dir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p " .. q(d))
  return d
end

local function ready(a)
  return agent.wait(function()
    return select(2, a:cli("version")) == 0
  end, 15)
end

-- Every key of agent a, as key -> value.
local function entries(a)
  local out, status = a:cli("kv", "list", "--format", "json")
  assert(status == 0, out)
  local r = {}
  for _, e in ipairs(cjson.decode(out).entries) do r[e.key] = e.value end
  return r
end

-- Put prefix/1..n through agent a, 16 CLIs at a time; the keys whose
-- put was acknowledged (exit 0), and the whole output.
local function burst(a, prefix, n)
  local acked = os.tmpname()
  local cmd = string.format(
    "seq 1 %d | xargs -P 16 -I{} sh -c '%s kv put --control %s %s/{} "
    .. "value-{} >/dev/null 2>&1 && echo %s/{}' > %s",
    n, agent.bin, a.control, prefix, prefix, q(acked))
  agent.run(cmd)
  local keys = {}
  for line in (read(acked) or ""):gmatch("[^\n]+") do keys[#keys + 1] = line end
  os.remove(acked)
  return keys
end

local function missing(have, keys)
  local lost = {}
  for _, k in ipairs(keys) do
    if have[k] == nil then lost[#lost + 1] = k end
  end
  return lost
end

local function logs_of(d)
  local out = agent.run("ls " .. q(d) .. " | grep '^hearsay-.*\\.log$'")
  local v = {}
  for name in out:gmatch("[^\n]+") do v[#v + 1] = d .. "/" .. name end
  return v
end

-- A 1 MiB disk at a fresh directory: a tmpfs mounted there (as root), or
-- in a mount namespace of our own (unshare, for a user who may make
-- one), entered by the agents and the commands with nsenter. Returns
-- {path, wrap (argv prefix for an agent), run (a shell command there),
-- close}, or nil when neither works.
local function tiny_disk()
  local d = fresh_dir()
  local _, root = agent.run("test \"$(id -u)\" = 0")
  if root == 0 then
    local out, status = agent.run("mount -t tmpfs -o size=1m tmpfs " .. q(d))
    if status == 0 then
      return { path = d, wrap = nil,
               run = function(cmd) return agent.run(cmd) end,
               close = function()
                 agent.run("umount " .. q(d))
                 os.execute("rmdir " .. q(d))
               end }
    end
    print("tiny disk: mount failed: " .. out)
  end
  local holder = agent.spawn("tiny-disk", { "unshare", "-rm", "sh", "-c",
    "mount -t tmpfs -o size=1m tmpfs " .. q(d) .. " && echo mounted "
    .. "&& exec sleep 600" })
  if not agent.wait(function() return holder:log():find("mounted") end, 5)
  then
    holder:stop()
    os.execute("rmdir " .. q(d))
    return nil
  end
  local wrap = { "nsenter", "-t", tostring(holder.pid), "-U", "-m",
                 "--preserve-credentials" }
  return { path = d, wrap = wrap,
           run = function(cmd)
             return agent.run(table.concat(wrap, " ") .. " sh -c " .. q(cmd))
           end,
           close = function()
             holder:stop()
             os.execute("rmdir " .. q(d))
           end }
end

describe("the data dir #net", function()
  after_each(function() agent.cleanup() end)

  it("keeps every acknowledged write when the agent is killed right after "
     .. "a burst", function()
    local d = fresh_dir()
    local a = hs("d1", 1, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    local acked = burst(a, "burst", 300)
    assert.is_true(#acked >= 290, "few writes acknowledged: " .. #acked)
    a:signal("KILL")       -- at once: no graceful save
    a:wait_exit(10)
    a = hs("d1", 1, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    local have = entries(a)
    assert.are.same({}, missing(have, acked))
    assert.are.equal("value-7", have["burst/7"])
    os.execute("rm -rf " .. q(d))
  end)

  it("keeps every acknowledged write when a whole cluster is killed",
     function()
    local dirs, g = {}, {}
    for i = 1, 3 do
      dirs[i] = fresh_dir()
      g[i] = hs("c" .. i, 10 + i, {
        args = { "--data-dir", dirs[i] },
        join = i > 1 and { ip(11) .. ":7946" } or nil })
    end
    for i = 1, 3 do assert.is_true(ready(g[i]), g[i]:log()) end
    -- a burst through each agent at once
    local files = {}
    for i = 1, 3 do
      files[i] = os.tmpname()
      os.execute(string.format(
        "(seq 1 150 | xargs -P 8 -I{} sh -c '%s kv put --control %s c%d/{} "
        .. "v{} >/dev/null 2>&1 && echo c%d/{}' > %s; "
        .. "echo done >> %s) &",
        agent.bin, g[i].control, i, i, q(files[i]), q(files[i])))
    end
    assert.is_true(agent.wait(function()
      for i = 1, 3 do
        if not (read(files[i]) or ""):find("done\n$") then return false end
      end
      return true
    end, 60))
    for i = 1, 3 do g[i]:signal("KILL") end
    for i = 1, 3 do g[i]:wait_exit(10) end
    local acked = {}
    for i = 1, 3 do
      acked[i] = {}
      for line in read(files[i]):gmatch("[^\n]+") do
        if line ~= "done" then acked[i][#acked[i] + 1] = line end
      end
      os.remove(files[i])
      assert.is_true(#acked[i] >= 140, "few writes acknowledged")
    end
    -- every agent comes back with what it acknowledged, and then, from
    -- the others, with everything
    local h = {}
    for i = 1, 3 do
      h[i] = hs("c" .. i, 10 + i, { args = { "--data-dir", dirs[i] } })
    end
    for i = 1, 3 do
      assert.is_true(ready(h[i]), h[i]:log())
      assert.are.same({}, missing(entries(h[i]), acked[i]))
    end
    assert.is_true(agent.wait(function()
      for i = 1, 3 do
        local have = entries(h[i])
        for j = 1, 3 do
          if #missing(have, acked[j]) > 0 then return false end
        end
      end
      return true
    end, 30), h[1]:log())
    for i = 1, 3 do os.execute("rm -rf " .. q(dirs[i])) end
  end)

  -- An agent on dir d that took torn/1..5, killed: its log.
  local function five_writes(i, d)
    local a = hs("t" .. i, 20 + i, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    for k = 1, 5 do
      assert.are.equal(0, select(2, a:cli("kv", "put", "torn/" .. k,
                                          "v" .. k)))
    end
    a:signal("KILL")
    a:wait_exit(10)
    local logs = logs_of(d)
    return logs[#logs]
  end

  it("cuts a torn log at its last whole record and loads the rest",
     function()
    local d = fresh_dir()
    local log = five_writes(1, d)
    local bytes = read(log)
    -- in the middle of the record of torn/5 (a record of the store's
    -- clock may follow it, when a tick came before the kill)
    local at = assert(bytes:find("torn/5", 1, true)) + 3
    agent.write_file(log, bytes:sub(1, at))
    local a = hs("t1", 21, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    local have = entries(a)
    for k = 1, 4 do assert.are.equal("v" .. k, have["torn/" .. k]) end
    assert.is_nil(have["torn/5"])
    assert.matches("log .-: a record cut short at byte %d+ of " .. at
                   .. ": the last %d+ bytes are cut, never applied", a:log())
    os.execute("rm -rf " .. q(d))
  end)

  it("cuts a log at a damaged record, keeping the bytes cut aside",
     function()
    local d = fresh_dir()
    local log = five_writes(2, d)
    local bytes = read(log)
    local flip = #bytes - 100 -- in the fourth record or so
    agent.write_file(log, bytes:sub(1, flip - 1)
      .. string.char((bytes:byte(flip) + 1) % 256) .. bytes:sub(flip + 1))
    local a = hs("t2", 22, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    assert.matches("log .-: a checksum mismatch at byte %d+ of %d+: the %d+ "
                   .. "bytes from there are cut, never applied, and kept "
                   .. "in .-%.corrupt%-%d+", a:log())
    local kept = a:log():match("kept in (%S-%.corrupt%-%d+)")
    local cut = tonumber(a:log():match("a checksum mismatch at byte (%d+)"))
    assert.are.equal(bytes:sub(cut + 1, flip - 1), read(kept):sub(1,
                     flip - 1 - cut))
    local have = entries(a)
    assert.are.equal("v1", have["torn/1"])
    assert.is_nil(have["torn/5"])
    os.execute("rm -rf " .. q(d))
  end)

  it("loads a snapshot written by hearsay 0.1.0, then replaces it",
     function()
    local d = fresh_dir()
    os.execute("cp spec/fixtures/legacy-0.1.0.snapshot " .. q(d)
               .. "/hearsay.snapshot")
    local a = hs("l1", 30, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    local have = entries(a)
    assert.are.equal("alpha", have["legacy/a"])
    assert.are.equal("beta", have["legacy/b"])
    assert.is_nil(have["legacy/gone"])
    local out = a:cli("kv", "get", "--format", "json", "legacy/bin")
    assert.are.equal("AAH/", cjson.decode(out).value_base64)
    -- the first snapshot in pieces takes its place
    assert.is_true(agent.wait(function()
      return read(d .. "/hearsay.snapshot") == nil
    end, 10), a:log())
    assert.are.equal(0, select(2, a:cli("kv", "put", "legacy/c", "gamma")))
    a:signal("KILL")
    a:wait_exit(10)
    a = hs("l1", 30, { args = { "--data-dir", d } })
    assert.is_true(ready(a), a:log())
    have = entries(a)
    assert.are.equal("alpha", have["legacy/a"])
    assert.are.equal("gamma", have["legacy/c"])
    os.execute("rm -rf " .. q(d))
  end)

  it("sets a corrupt or cut snapshot of 0.1.0 aside and starts without it",
     function()
    local d = fresh_dir()
    local good = read("spec/fixtures/legacy-0.1.0.snapshot")
    for _, bad in ipairs{ good:sub(1, #good - 5),                -- cut
                          good:sub(1, 20) .. "X" .. good:sub(22), -- a flip
                          "not a snapshot at all" } do
      os.execute("rm -f " .. q(d) .. "/*")
      agent.write_file(d .. "/hearsay.snapshot", bad)
      local a = hs("l2", 31, { args = { "--data-dir", d } })
      assert.is_true(ready(a), a:log())
      assert.matches("snapshot .- is not usable %(.-%): set aside as", a:log())
      assert.is_nil(entries(a)["legacy/a"])
      local out = agent.run("ls " .. q(d))
      assert.are.equal(bad, read(d .. "/" .. out:match(
        "hearsay%.snapshot%.corrupt%-%d+")))
      a:signal("KILL")
      a:wait_exit(10)
    end
    os.execute("rm -rf " .. q(d))
  end)
  it("refuses writes with a clear error while the disk is full, and takes "
     .. "them again once there is room", function()
    local disk = tiny_disk()
    if not disk then
      pending("needs root, or user and mount namespaces (unshare -rm)")
      return
    end
    local a
    finally(function() -- a failed check must not leave the mount behind
      if a then a:stop() end
      disk.close()
    end)
    local d = disk.path .. "/data"
    local function start()
      local p = hs("f1", 40, { args = { "--data-dir", d, "--metrics",
                                        ip(40) .. ":9100" },
                               wrap = disk.wrap })
      assert.is_true(ready(p), p:log())
      return p
    end
    a = start()
    local acked = {}
    for k = 1, 5 do
      assert.are.equal(0, select(2, a:cli("kv", "put", "full/" .. k, "v")))
      acked[#acked + 1] = "full/" .. k
    end
    -- nothing left: a file takes every byte
    disk.run("dd if=/dev/zero of=" .. q(disk.path .. "/filler")
             .. " bs=4k 2>/dev/null; true")
    local refused = "Error! not saved: no space left on device (data dir "
      .. d .. ")"
    -- (a value past the page the log's last bytes sit in: tmpfs gives
    -- room in pages)
    local big = string.rep("x", 10000)
    for _ = 1, 3 do
      local out, status = a:cli("kv", "put", "refused", big)
      assert.are.equal(1, status, out)
      assert.are.equal(refused, out:match("[^\n]+"))
    end
    local out, status = a:cli("kv", "delete", "full/1")
    assert.are.equal(1, status, out)
    assert.matches("not saved: no space left on device", out)
    local st = a:stats().data_dir
    assert.is_true(st.failing)
    assert.is_true(st.save_failures >= 1)
    assert.is_true(st.writes_refused >= 2)
    assert.is_true(st.last_failure_time > 0)
    assert.matches("no space left on device", st.last_save_error)
    -- and Prometheus sees the same
    -- (curl without the sanitizers `make asan` preloads: it hangs there)
    local metrics = agent.run("env -u LD_PRELOAD curl -s --max-time 10 "
                              .. "http://" .. ip(40) .. ":9100/metrics")
    assert.matches("\nhearsay_data_dir_failing 1\n", metrics)
    local failures = tonumber(metrics:match(
      "\nhearsay_data_dir_save_failures_total (%d+)\n"))
    assert.is_true(failures >= 1, metrics)
    assert.are.equal(1, select(2, a:log():gsub("cannot save the log", "")))
    -- the agent goes on: it answers, and reads still work
    assert.are.equal("v", entries(a)["full/2"])
    -- room again: it saves again by itself
    disk.run("rm " .. q(disk.path .. "/filler"))
    assert.is_true(agent.wait(function()
      return select(2, a:cli("kv", "put", "after", "yes")) == 0
    end, 10), a:log())
    acked[#acked + 1] = "after"
    assert.matches("saving again", a:log())
    st = a:stats().data_dir
    assert.is_false(st.failing)
    assert.are.equal(1, select(2, a:log():gsub("cannot save the log", "")))
    -- and nothing acknowledged was lost
    a:signal("KILL")
    a:wait_exit(10)
    a = start()
    local have = entries(a)
    assert.are.same({}, missing(have, acked))
    assert.are.equal("yes", have.after)
  end)
end)
