-- fuzz-corpus.lua: rebuild the seed corpora of the fuzz targets under
-- spec/fuzz/corpus/<target>/ (run by `make fuzz-corpus`).
--
--   lua5.4 scripts/fuzz-corpus.lua build/fuzz/seeds
--
-- The seeds come from three places:
--   ref-*   the shared reference's worked hex examples (sections 7, 9, 16)
--   pcap-*  every datagram and TCP stream of the Serf captures in
--           spec/fixtures/*.pcap, and the LZW streams inside them
--   hs-*    what hearsay's own encoders write (spec/fuzz/seeds.c, the
--           program given as the argument)
-- The *_encrypted targets get the encrypted capture, the reference's
-- encryption examples, and the other seeds with a flags byte in front
-- that has the target seal (and label) them (spec/fuzz/fuzz.h).
-- Files with those prefixes are replaced; any other file of a corpus (an
-- input the fuzzer found, a crash kept as a regression) is left alone.
-- Run from the repository root, after `make` (it loads lib/hearsay/core.so
-- to tell push/pull answers from ping answers).
package.path = "./spec/helpers/?.lua;" .. package.path
package.cpath = "./lib/?.so;" .. package.cpath
local pcap = require "pcap"
local core = require "hearsay.core"

local seeds_bin = arg[1] or "build/fuzz/seeds"
local root = "spec/fuzz/corpus"
local targets = { "packet", "stream", "reply", "lzw", "metadata",
  "packet_encrypted", "stream_encrypted", "tcp_frames" }

local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("failed: " .. cmd) end
end

-- Start clean: drop the files this script made last time.
for _, t in ipairs(targets) do
  sh(string.format("mkdir -p %s/%s && rm -f %s/%s/ref-* %s/%s/pcap-* "
    .. "%s/%s/hs-*", root, t, root, t, root, t, root, t))
end
-- hearsay's own first: the encrypted targets derive seeds from them.
sh(seeds_bin .. " " .. root)

local seen = {}
local count = 0
local function save(target, name, bytes)
  seen[target] = seen[target] or {}
  if seen[target][bytes] then return end -- one file per content
  seen[target][bytes] = true
  local f = assert(io.open(root .. "/" .. target .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
  count = count + 1
end

-- ===== The reference's hex examples =====

local ref = {
  -- 9.1 ping, and without source fields
  ping = "0085a44e6f6465a66e6f64652d62a55365714e6f07aa536f7572636541646472"
    .. "a40a000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274"
    .. "cd1f0a",
  ["ping-minimal"] = "0082a44e6f6465a66e6f64652d62a55365714e6f07",
  -- 9.2 alive
  alive = "0486a441646472a40a000001ab496e6361726e6174696f6e01a44d657461c0"
    .. "a44e6f6465a66e6f64652d61a4506f7274cd1f0aa356736ea6010502000000",
  -- 9.3 ack, indirect ping
  ack = "0282a75061796c6f6164c0a55365714e6f07",
  ["indirect-ping"] = "0185a44e61636bc3a44e6f6465a66e6f64652d63a4506f7274"
    .. "cd1f0aa55365714e6f09a6546172676574a40a000001",
  -- 16.1 ping, 16.2 CRC + compound of two alive, 16.5 nack
  ["serf-ping"] = "0085a44e6f6465a161a55365714e6f01aa536f7572636541646472"
    .. "a47f000001aa536f757263654e6f6465a162aa536f75726365506f7274cd1f0b",
  ["serf-gossip"] = "0c352dca4a07020049003b0486a441646472a47f000001ab496e63"
    .. "61726e6174696f6e01a44d657461b0ff82a4726f6c65a3776562a26463a178a44e"
    .. "6f6465a161a4506f7274cd1f0aa356736ea60105020205050486a441646472a47f"
    .. "000001ab496e6361726e6174696f6e01a44d657461a2ff80a44e6f6465a162a450"
    .. "6f7274cd1f0ba356736ea6010502020505",
  ["serf-join-intent"] = "080182a54c54696d6501a44e6f6465a162",
  nack = "0b81a55365714e6f04",
}
local names = {}
for name in pairs(ref) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  save("packet", "ref-" .. name, pcap.unhex(ref[name]))
end
-- 9.3 push/pull header (no states, no user state), 16.5 a TCP ping's ack
save("stream", "ref-pushpull-header",
  pcap.unhex("0683a44a6f696ec2a54e6f64657300ac5573657253746174654c656e00"))
save("stream", "ref-ping", pcap.unhex(ref.ping))
save("reply", "ref-ack", "\3\0\0\18" .. pcap.unhex(
  "0282a75061796c6f6164c0a55365714e6f04"))

-- ===== The captures =====

-- The LZW stream inside a compress message (09 {Algo, Buf}), or nil.
local function lzw_buf(msg)
  local at = msg:find("\xa3Buf", 1, true)
  if msg:byte(1) ~= 9 or not at then return nil end
  local i = at + 4
  local h = msg:byte(i)
  local len, off
  if h and h >= 0xa0 and h <= 0xbf then
    len, off = h - 0xa0, i + 1
  elseif h == 0xd9 or h == 0xc4 then
    len, off = msg:byte(i + 1), i + 2
  elseif h == 0xda or h == 0xc5 then
    len, off = string.unpack(">I2", msg, i + 1), i + 3
  elseif h == 0xdb or h == 0xc6 then
    len, off = string.unpack(">I4", msg, i + 1), i + 5
  else
    return nil
  end
  return msg:sub(off, off + len - 1)
end

-- The type of a stream message, looking inside compression.
local function stream_type(data)
  local t = core.decode(data, "stream")
  while t.type == "compress" and t.message do t = t.message end
  return t.type, t.Join
end

local function u16(n) return string.pack(">I2", n) end

local captures = {
  { "3node", "spec/fixtures/serf094-3node-failure-nocompress.pcap" },
  { "compressed", "spec/fixtures/serf094-plain-compressed.pcap" },
}
for _, capture in ipairs(captures) do
  local tag, path = capture[1], capture[2]
  local packets = pcap.read(path)
  for i, p in ipairs(pcap.udp(packets)) do
    save("packet", string.format("pcap-%s-udp-%03d", tag, i), p.payload)
    local body = p.payload
    if body:byte(1) == 12 then body = body:sub(6) end -- hasCrc
    local z = lzw_buf(body)
    if z then save("lzw", string.format("pcap-%s-udp-%03d", tag, i), z) end
  end
  -- Requests (to a gossip port) go to the stream target, answers (from
  -- one) to the reply target, after the request they answer.
  local streams = pcap.tcp_streams(packets)
  local requests = {}
  for i, s in ipairs(streams) do
    local name = string.format("pcap-%s-tcp-%02d", tag, i)
    local z = lzw_buf(s.data)
    if z then save("lzw", name, z) end
    if s.dport >= 7946 and s.dport <= 7948 then
      save("stream", name, s.data)
      requests[s.sport] = s.data
    elseif requests[s.dport] then
      local kind, join = stream_type(requests[s.dport])
      local seg = u16(#s.data) .. s.data
      if kind == "ping" then
        save("reply", name, "\3\0" .. seg)
      elseif kind == "push-pull" or kind == "pushPull" then
        save("reply", name, (join and "\0" or "\1") .. "\0" .. seg)
        save("reply", name .. "-pieces", (join and "\128" or "\129")
          .. "\5" .. seg)
      end
    end
  end
end

-- ===== Encrypted and labelled =====

local FLAG = { label = 1, seal = 2, add_label = 4, plain_ok = 8, v0 = 16,
               skip_label = 32 }
local function flags(...)
  local f = 0
  for _, k in ipairs{ ... } do f = f | FLAG[k] end
  return string.char(f)
end

local encrypted = pcap.read("spec/fixtures/serf094-encrypted.pcap")
for i, p in ipairs(pcap.udp(encrypted)) do
  save("packet_encrypted", string.format("pcap-encrypted-udp-%02d", i),
    "\0" .. p.payload)
end
for i, s in ipairs(pcap.tcp_streams(encrypted)) do
  if s.dport == 7946 then
    save("stream_encrypted", string.format("pcap-encrypted-tcp-%02d", i),
      "\0" .. s.data)
  end
end
-- 7.4: the ping of 9.1 sealed with the key 000102..0f, nonce 000102..0b
local sealed_ping = "000102030405060708090a0b93e90380097f92f225bd05ef1bc1d55b"
  .. "d65754895447ae99935392485520c61e21aedbf7f52ae48c35866a828ee6b3f76af1"
  .. "7b9461aa57d17d2107a0c929468be87a385155"
save("packet_encrypted", "ref-vsn1", "\0" .. pcap.unhex("01" .. sealed_ping
  .. "99975e8d3acd042073e5465f16164a19"))
save("packet_encrypted", "ref-vsn0", "\0" .. pcap.unhex("00" .. sealed_ping
  .. "47c115283b7a54773103506f8fc509f6746eed8e0d732d607f89f3"))
save("packet_encrypted", "ref-label", flags("label") .. pcap.unhex(
  "f40470726f6401" .. sealed_ping .. "acecc4a2a709779543493abf14c94c64"))
save("stream_encrypted", "ref-stream", "\0" .. pcap.unhex("0a0000006201"
  .. sealed_ping .. "4580b2ea974df1959069cf0e3e69522a"))

-- Plaintext seeds, for the target to seal: ours and the reference's.
local function derive(from, to)
  local list = io.popen("LC_ALL=C ls " .. root .. "/" .. from)
  for name in list:lines() do
    if name:match("^ref%-") or name:match("^hs%-") then
      local f = assert(io.open(root .. "/" .. from .. "/" .. name, "rb"))
      local data = f:read("a")
      f:close()
      local base = name:gsub("^(%a+)%-", "%1-plain-")
      save(to, base .. "-sealed", flags("seal") .. data)
      save(to, base .. "-labelled", flags("label", "seal", "add_label")
        .. data)
    end
  end
  list:close()
end
derive("packet", "packet_encrypted")
derive("stream", "stream_encrypted")
save("packet_encrypted", "ref-plain-ping-v0", flags("seal", "v0")
  .. pcap.unhex(ref.ping))
save("packet_encrypted", "ref-plain-ping-accepted", flags("plain_ok")
  .. pcap.unhex(ref.ping))
save("packet_encrypted", "ref-plain-ping-skip-label",
  flags("label", "skip_label", "seal") .. pcap.unhex(ref.ping))

-- ===== Bytes of an accepted TCP connection =====
-- Every stream seed as is (a memberlist stream), and every packet seed
-- as transport tcp frames it: 0xE7, then `len:u32be | packet`; all the
-- reference's packets one after the other on one connection; and the
-- edges of the framing.
local function each_seed(target, fn)
  local list = io.popen("LC_ALL=C ls " .. root .. "/" .. target)
  for name in list:lines() do
    local prefix, rest = name:match("^(%a+)%-(.*)$")
    if prefix == "ref" or prefix == "hs" or prefix == "pcap" then
      local f = assert(io.open(root .. "/" .. target .. "/" .. name, "rb"))
      fn(prefix, rest, f:read("a"))
      f:close()
    end
  end
  list:close()
end
local function frame(p) return string.pack(">s4", p) end
each_seed("stream", function(prefix, rest, data)
  save("tcp_frames", prefix .. "-stream-" .. rest, data)
end)
local all = {}
each_seed("packet", function(prefix, rest, data)
  if #data > 0 then
    save("tcp_frames", prefix .. "-frame-" .. rest, "\xe7" .. frame(data))
    if prefix == "ref" then all[#all + 1] = frame(data) end
  end
end)
save("tcp_frames", "ref-frames-all", "\xe7" .. table.concat(all))
save("tcp_frames", "ref-frames-empty", "\xe7" .. string.pack(">I4", 0))
save("tcp_frames", "ref-frames-too-long", "\xe7"
  .. string.pack(">I4", 65537) .. "x")
save("tcp_frames", "ref-frames-largest", "\xe7" .. frame(string.rep("\0",
  65536)))
save("tcp_frames", "ref-frames-cut", "\xe7" .. frame(pcap.unhex(ref.ping))
  .. string.pack(">I4", 40) .. "\0\0")

print(string.format("fuzz-corpus: %d files from the reference and the "
  .. "captures", count))
