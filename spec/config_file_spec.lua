-- config_file_spec.lua: what the agent prints for a config file it cannot
-- take: "FILE:LINE: message" where the file has a line for it (a Lua
-- error, a key or value the file sets, a JSON syntax error), else
-- "FILE: message"; always exit status 2, before anything is bound.
local agent = require "agent"

local tmp = (os.getenv("HEARSAY_SPEC_TMP") or "/tmp/hearsay-spec")
  .. "/config-file-" .. os.time() .. "-" .. math.random(1e6)
os.execute("mkdir -p " .. tmp)

local function file(name, bytes)
  local path = tmp .. "/" .. name
  agent.write_file(path, bytes)
  return path
end

-- The agent's one line of complaint about the file, path made relative.
local function complaint(path)
  local out, status = agent.run("timeout 10 " .. agent.bin .. " agent "
    .. "--name x --bind 127.0.43.250:7946 --control 127.0.43.250:7374 "
    .. "--config " .. agent.sh_quote(path))
  assert.are.equal(2, status, out)
  local line = out:match("^([^\n]*)\n?$")
  assert.is_not_nil(line, out)
  return (line:gsub(tmp:gsub("%p", "%%%0") .. "/", ""))
end

teardown(function() os.execute("rm -rf " .. agent.sh_quote(tmp)) end)

describe("a Lua config file that does not load", function()

  it("names the line of a syntax or run-time error", function()
    assert.are.equal("hearsay: syntax.lua:2: unexpected symbol near '='",
      complaint(file("syntax.lua", 'name = "a"\nx = = 3\n')))
    assert.are.equal("hearsay: raise.lua:2: boom",
      complaint(file("raise.lua", 'name = "a"\nerror("boom")\n')))
  end)

  it("names the whole path, however long Lua's names for it are",
     function()
    local dir = tmp .. "/" .. string.rep("d", 80)
    os.execute("mkdir -p " .. dir)
    agent.write_file(dir .. "/long.lua", "x = = 1\n")
    assert.are.equal("hearsay: " .. string.rep("d", 80) .. "/long.lua:1: "
      .. "unexpected symbol near '='", complaint(dir .. "/long.lua"))
    -- an error raised with no position still names the file
    assert.are.equal("hearsay: plain.lua: plain",
      complaint(file("plain.lua", 'error("plain", 0)\n')))
  end)

  it("names the line that set a bad key or value", function()
    assert.are.equal('hearsay: unknown.lua:3: unknown configuration key '
      .. '"fanuot"', complaint(file("unknown.lua",
        'name = "a"\nfanout = 3\nfanuot = 3\n')))
    assert.are.equal('hearsay: value.lua:2: probe_interval: "fast" is not '
      .. "a duration such as 500ms, 2s or 1m30s",
      complaint(file("value.lua", 'name = "a"\nprobe_interval = "fast"\n')))
    -- the last assignment counts, wherever the value came from
    assert.are.equal('hearsay: again.lua:3: gossip_nodes: "x" is not an '
      .. "integer", complaint(file("again.lua",
        'local n = "x"\ngossip_nodes = 3\ngossip_nodes = n\n')))
    -- a value over several lines: the line where its statement ends
    assert.are.equal("hearsay: list.lua:4: probe_interval: expected a "
      .. "single value, not a list", complaint(file("list.lua",
        'probe_interval = {\n  "1s",\n  "2s",\n}\n')))
  end)

  it("says FILE: message when there is no line", function()
    assert.are.equal("hearsay: missing.lua: cannot open: No such file or "
      .. "directory", complaint(tmp .. "/missing.lua"))
    os.execute("mkdir -p " .. tmp .. "/dir.lua")
    assert.are.equal("hearsay: dir.lua: a directory, not a file",
      complaint(tmp .. "/dir.lua"))
  end)
end)

describe("a JSON config file that does not load", function()
  it("names the line of a key or value, and of a syntax error", function()
    assert.are.equal('hearsay: value.json:3: probe_interval: "fast" is not '
      .. "a duration such as 500ms, 2s or 1m30s",
      complaint(file("value.json",
        '{\n  "name": "a",\n  "probe_interval": "fast"\n}\n')))
    assert.are.equal('hearsay: unknown.json:2: unknown configuration key '
      .. '"fanuot"', complaint(file("unknown.json",
        '{"name": "a",\n "fanuot": 3,\n "note": "fanout"}\n')))
    assert.are.equal("hearsay: syntax.json:2: invalid JSON: Expected value "
      .. "but found T_OBJ_END at character 26",
      complaint(file("syntax.json", '{"name": "a",\n "fanout": }')))
  end)

  it("says FILE: message when there is no line", function()
    -- a key written with escapes is not found in the text
    assert.are.equal('hearsay: escaped.json: unknown configuration key '
      .. '"fanuot"', complaint(file("escaped.json",
        '{"name": "a",\n "fan\\u0075ot": 3}\n')))
    assert.are.equal("hearsay: array.json: expected a JSON object of "
      .. "configuration keys", complaint(file("array.json", '["a"]\n')))
    assert.are.equal("hearsay: missing.json: cannot open: No such file or "
      .. "directory", complaint(tmp .. "/missing.json"))
  end)
end)

describe("pekonode's duration aliases", function()
  local core = require "hearsay.core"

  it("refuse a bare number, which pekonode counts in seconds", function()
    for _, alias in ipairs{ "cycle", "node_timeout" } do
      local ok, err = pcall(core.config, { [alias] = 5 })
      assert.is_false(ok)
      assert.matches(alias .. ': "5" needs a unit, such as 5s or 5ms '
        .. "%(pekonode counts it in seconds; a bare number would be "
        .. "milliseconds here%)", err)
    end
    assert.are.equal("5s", core.config{ cycle = "5s" }.gossip_interval)
    assert.are.equal("30s", core.config{ node_timeout = "30s" }
      .gossip_to_the_dead_time)
    -- the key's own name keeps hearsay's rule: a number of milliseconds
    assert.are.equal("5ms", core.config{ gossip_interval = 5 }.gossip_interval)
  end)

  it("say so at the line of a config file", function()
    assert.are.equal('hearsay: peko.lua:2: cycle: "1" needs a unit, such as '
      .. "1s or 1ms (pekonode counts it in seconds; a bare number would be "
      .. "milliseconds here)", complaint(file("peko.lua",
        'fanout = 3\ncycle = 1\n')))
  end)

  it("leave out the pekonode names that would mislead", function()
    for _, name in ipairs{ "amount", "timeout", "size", "buffer",
                           "is_print" } do
      local ok, err = pcall(core.config, { [name] = 1 })
      assert.is_false(ok)
      assert.matches('unknown configuration key "' .. name .. '"', err)
    end
  end)
end)
