-- codec_spec.lua: the wire codec against the shared reference's hex
-- examples and real Serf traffic, byte for byte.
local core = require "hearsay.core"
local pcap = require "pcap"

local hex, unhex = pcap.hex, pcap.unhex

local function roundtrip(bytes, mode)
  local t = core.decode(bytes, mode)
  assert.is_nil(t.error, t.error)
  return core.encode(t, mode), t
end

describe("hearsay.core codec", function()
  describe("the reference's hex examples", function()
    it("decodes and re-encodes the ping of section 9.1", function()
      local b = unhex("0085a44e6f6465a66e6f64652d62a55365714e6f07aa536f7572"
        .. "636541646472a40a000001aa536f757263654e6f6465a66e6f64652d61aa53"
        .. "6f75726365506f7274cd1f0a")
      local out, t = roundtrip(b)
      assert.are.equal(hex(b), hex(out))
      assert.are.equal("ping", t.type)
      assert.are.equal("node-b", t.Node)
      assert.are.equal(7, t.SeqNo)
      assert.are.equal("node-a", t.SourceNode)
      assert.are.equal(7946, t.SourcePort)
      assert.are.equal("\10\0\0\1", t.SourceAddr)
    end)

    it("encodes a ping without source fields and a large SeqNo", function()
      local b = core.encode{ type = "ping", Node = "node-b", SeqNo = 300000 }
      assert.are.equal("0082a44e6f6465a66e6f64652d62a55365714e6fce000493e0",
        hex(b))
    end)

    it("decodes and re-encodes the alive of section 9.2", function()
      local b = unhex("0486a441646472a40a000001ab496e6361726e6174696f6e01a4"
        .. "4d657461c0a44e6f6465a66e6f64652d61a4506f7274cd1f0aa356736ea601"
        .. "0502000000")
      local out, t = roundtrip(b)
      assert.are.equal(hex(b), hex(out))
      assert.is_nil(t.Meta) -- nil, not empty
      assert.are.equal("\1\5\2\0\0\0", t.Vsn)
    end)

    it("builds the compound, CRC and compress frames of section 9.3",
      function()
        local ping = core.decode(unhex("0085a44e6f6465a66e6f64652d62a55365"
          .. "714e6f07aa536f7572636541646472a40a000001aa536f757263654e6f64"
          .. "65a66e6f64652d61aa536f75726365506f7274cd1f0a"))
        local alive = core.decode(unhex("0486a441646472a40a000001ab496e63"
          .. "61726e6174696f6e01a44d657461c0a44e6f6465a66e6f64652d61a4506f"
          .. "7274cd1f0aa356736ea6010502000000"))
        local compound = core.encode{ type = "compound",
                                      parts = { ping, alive } }
        assert.are.equal(137, #compound)
        assert.are.equal("07020045003e", hex(compound:sub(1, 6)))
        local crc = core.encode{ type = "has-crc", message = alive }
        assert.are.equal("0ca5422811", hex(crc:sub(1, 5)))
        local z = core.encode{ type = "compress", message = core.decode(
          compound) }
        assert.are.equal(138, #z)
        assert.are.equal("0982a4416c676f00a3427566da007b000f08005004800f00"
          .. "85", hex(z:sub(1, 25)))
        assert.are.equal("0c441910", hex(z:sub(-4)))
        -- and back
        local t = core.decode(z)
        assert.are.equal("compress", t.type)
        assert.are.equal(2, #t.message.parts)
        assert.are.equal("alive", t.message.parts[2].type)
      end)

    it("matches the small messages of section 9.3", function()
      assert.are.equal("0282a75061796c6f6164c0a55365714e6f07",
        hex(core.encode{ type = "ack", SeqNo = 7 }))
      assert.are.equal("0185a44e61636bc3a44e6f6465a66e6f64652d63a4506f7274"
        .. "cd1f0aa55365714e6f09a6546172676574a40a000001",
        hex(core.encode{ type = "indirect-ping", SeqNo = 9, Nack = true,
                         Node = "node-c", Port = 7946,
                         Target = "\10\0\0\1" }))
      assert.are.equal("0683a44a6f696ec2a54e6f64657303ac5573657253746174654c"
        .. "656e00", hex(core.encode({ type = "push-pull", Join = false,
          states = { {}, {}, {} } }, "stream"):sub(1, 29)))
    end)

    it("decodes what the v2 codec writes for signed integers", function()
      -- Section 2.1: Nodes=200 as int16, UserStateLen=585 as int16.
      local t = core.decode(unhex("0683a44a6f696ec3a54e6f646573d100c8ac55"
        .. "73657253746174654c656ed10249") .. string.rep("\x80", 200)
        .. string.rep("u", 585), "stream")
      assert.is_nil(t.error)
      assert.are.equal(200, t.Nodes)
      assert.are.equal(585, t.UserStateLen)
      assert.are.equal(585, #t.user_state)
    end)

    it("decodes and re-encodes the Serf packets of section 16", function()
      for _, h in ipairs{
        -- 16.1 direct ping b -> a
        "0085a44e6f6465a161a55365714e6f01aa536f7572636541646472a47f000001"
          .. "aa536f757263654e6f6465a162aa536f75726365506f7274cd1f0b",
        -- 16.2 CRC + compound of two alive
        "0c352dca4a07020049003b0486a441646472a47f000001ab496e6361726e6174"
          .. "696f6e01a44d657461b0ff82a4726f6c65a3776562a26463a178a44e6f64"
          .. "65a161a4506f7274cd1f0aa356736ea60105020205050486a441646472a4"
          .. "7f000001ab496e6361726e6174696f6e01a44d657461a2ff80a44e6f6465"
          .. "a162a4506f7274cd1f0ba356736ea6010502020505",
        -- 16.5 nack, stream ack
        "0b81a55365714e6f04",
        "0282a75061796c6f6164c0a55365714e6f04",
      } do
        local b = unhex(h)
        local out = roundtrip(b)
        assert.are.equal(h, hex(out))
      end
    end)
  end)

  describe("captured Serf 0.9.4 traffic", function()
    for _, file in ipairs{ "serf094-plain-compressed.pcap",
                           "serf094-3node-failure-nocompress.pcap" } do
      it("re-encodes every UDP datagram of " .. file, function()
        local pk = pcap.read("spec/fixtures/" .. file)
        local n = 0
        for _, p in ipairs(pcap.udp(pk)) do
          local out, t = roundtrip(p.payload)
          assert.are.equal(hex(p.payload), hex(out))
          if t.type == "has-crc" then assert.is_true(t.crc_ok) end
          n = n + 1
        end
        assert.is_true(n > 20)
      end)

      it("re-encodes every TCP stream of " .. file, function()
        local pk = pcap.read("spec/fixtures/" .. file)
        local n = 0
        for _, st in ipairs(pcap.tcp_streams(pk)) do
          local out = roundtrip(st.data, "stream")
          assert.are.equal(hex(st.data), hex(out))
          n = n + 1
        end
        assert.is_true(n >= 2)
      end)
    end

    it("reads Serf's state in a push/pull", function()
      local pk = pcap.read("spec/fixtures/serf094-3node-failure-nocompress"
        .. ".pcap")
      local st = pcap.tcp_streams(pk)
      local t
      for _, s in ipairs(st) do
        t = core.decode(s.data, "stream")
        if t.type == "push-pull" then break end
      end
      assert.are.equal("push-pull", t.type)
      assert.is_true(#t.states >= 1)
      assert.are.equal("\1\5\2\2\5\5", t.states[1].Vsn)
      assert.are.equal(2, t.user_state:byte(1)) -- Serf push/pull type
    end)
  end)

  describe("LZW", function()
    it("matches Go's compress/lzw on the reference's examples", function()
      assert.are.equal("00830811483020", hex(core.lzw_compress("ABABABA")))
      assert.are.equal("000302", hex(core.lzw_compress("")))
      assert.are.equal("ABABABA", core.lzw_decompress(unhex(
        "00830811483020")))
    end)

    it("refuses to expand past the limit", function()
      local bomb = core.lzw_compress(string.rep("\0", 1 << 20))
      assert.is_true(#bomb < 4096)
      local ok, err, code = core.lzw_decompress(bomb, 65536)
      assert.is_nil(ok)
      assert.matches("limit", err)
      assert.are.equal("ETOOBIG", code)
    end)

    it("fails with a code as the rest of the API does", function()
      assert.are.same({ nil, "ETRUNC: truncated input", "ETRUNC" },
                      { core.lzw_decompress("xx") })
    end)
  end)
end)
