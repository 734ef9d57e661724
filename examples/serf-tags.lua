-- serf-tags.lua: this node's tags in Serf's own encoding, so that
-- `serf members` shows them beside a Serf agent's, and every member's Serf
-- tags decoded in the log.
--
--   HEARSAY_TAGS="role=web,dc=eu-1" bin/hearsay agent --name h1 \
--     --bind 127.0.0.1:7946 --script examples/serf-tags.lua
--   serf agent -node=s1 -bind=127.0.0.1:7950 -tag zone=z1 -join=127.0.0.1:7946
--   serf members
--   h1  127.0.0.1:7946  alive  dc=eu-1,role=web
--   s1  127.0.0.1:7950  alive  zone=z1
--
-- and hearsay's log shows "script: serf tags of s1: zone=z1".
--
-- Serf keeps its tags in memberlist's node meta (our private data): the
-- byte 0xff, then a msgpack map of string keys to string values, the
-- whole at most 512 bytes. A meta that does not start with 0xff is an old
-- Serf's: the whole of it is the tag "role".
local hearsay = require "hearsay"

-- This node's tags when $HEARSAY_TAGS is not set ("key=value,key=value",
-- as many -tag flags; a value cannot hold a comma).
local DEFAULT_TAGS = "role=hearsay"

local MAX_BYTES = 512 -- memberlist's limit on node meta
local MAGIC = "\xff"  -- Serf's tag encoding since its protocol 3

-- ===== A tiny msgpack map encoder, as Serf's Go codec writes strings =====
-- Go's codec writes strings in the raw family only: fixstr (0xa0 | len)
-- below 32 bytes, else 0xda and a 16-bit length, else 0xdb and a 32-bit
-- one; it never uses str8 (0xd9).

local function pack_str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 | n) .. s end
  if n < 0x10000 then return string.pack(">BI2", 0xda, n) .. s end
  return string.pack(">BI4", 0xdb, n) .. s
end

local function pack_map_header(n)
  if n < 16 then return string.char(0x80 | n) end
  if n < 0x10000 then return string.pack(">BI2", 0xde, n) end
  return string.pack(">BI4", 0xdf, n)
end

-- Tags {key = value} as Serf's node meta. Go writes map keys in random
-- order; we sort them, so the same tags always give the same bytes.
-- Returns the bytes, or nil and the reason.
local function encode_tags(tags)
  local keys = {}
  for k, v in pairs(tags) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, "tags are strings: " .. tostring(k) .. "=" .. tostring(v)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local out = { MAGIC, pack_map_header(#keys) }
  for _, k in ipairs(keys) do
    out[#out + 1] = pack_str(k)
    out[#out + 1] = pack_str(tags[k])
  end
  local meta = table.concat(out)
  if #meta > MAX_BYTES then
    return nil, ("tags take %d bytes, over the limit of %d"):format(#meta,
                                                                    MAX_BYTES)
  end
  return meta
end

-- ===== The decoder, for what other members send =====
-- Private data comes from the network: every length is checked against
-- what is left, and anything unexpected makes the whole meta unreadable.

-- The string at byte i of s: the string and the next index, or nil.
local function unpack_str(s, i)
  local b = s:byte(i)
  if b == nil then return nil end
  local n
  if b >= 0xa0 and b <= 0xbf then
    n, i = b & 0x1f, i + 1
  elseif b == 0xd9 or b == 0xc4 then -- str8, bin8
    if i + 1 > #s then return nil end
    n, i = s:byte(i + 1), i + 2
  elseif b == 0xda or b == 0xc5 then -- str16, bin16
    if i + 2 > #s then return nil end
    n, i = string.unpack(">I2", s, i + 1)
  elseif b == 0xdb or b == 0xc6 then -- str32, bin32
    if i + 4 > #s then return nil end
    n, i = string.unpack(">I4", s, i + 1)
  else
    return nil
  end
  if i + n - 1 > #s then return nil end
  return s:sub(i, i + n - 1), i + n
end

-- Serf's tags in a member's private data: a table, or nil and the reason.
local function decode_tags(meta)
  if meta == nil or meta == "" or meta:sub(1, 1) ~= MAGIC then
    return { role = meta or "" } -- an old Serf's single role
  end
  local b, i = meta:byte(2), 3
  if b == nil then return nil, "no map after 0xff" end
  local n -- the number of tags
  if b >= 0x80 and b <= 0x8f then
    n = b & 0x0f
  elseif b == 0xde and #meta >= 4 then
    n, i = string.unpack(">I2", meta, 3)
  elseif b == 0xdf and #meta >= 6 then
    n, i = string.unpack(">I4", meta, 3)
  else
    return nil, ("not a map (0x%02x)"):format(b)
  end
  local tags = {}
  for _ = 1, n do
    local k, v
    k, i = unpack_str(meta, i)
    if k then v, i = unpack_str(meta, i) end
    if not v then return nil, "a tag cut short or not a string" end
    tags[k] = v
  end
  if i <= #meta then return nil, "bytes after the map" end
  return tags
end

local function format_tags(tags)
  local keys = {}
  for k in pairs(tags) do keys[#keys + 1] = k end
  table.sort(keys)
  for j, k in ipairs(keys) do keys[j] = k .. "=" .. tags[k] end
  return table.concat(keys, ",")
end

-- ===== This node's tags =====

local function parse_tags(text)
  local tags = {}
  for pair in text:gmatch("[^,]+") do
    local k, v = pair:match("^%s*([^=%s][^=]-)%s*=(.*)$")
    if not k then return nil, "not key=value: " .. pair end
    tags[k] = v
  end
  return tags
end

local meta -- read once, when the script loads
do
  local text = os.getenv("HEARSAY_TAGS") or DEFAULT_TAGS
  local tags, err = parse_tags(text)
  if tags then meta, err = encode_tags(tags) end
  if not meta then
    hearsay.log("error", "serf tags: HEARSAY_TAGS refused:", err,
                "(advertising no tags)")
    meta = encode_tags({})
  end
end

return {
  private_data = function() return meta end,

  on_member = function(event, member)
    if event ~= "join" and event ~= "update" then return end
    local tags, err = decode_tags(member.private_data)
    if tags then
      hearsay.log("info", "serf tags of " .. member.name .. ":",
                  format_tags(tags))
    else
      hearsay.log("warn", "serf tags of " .. member.name .. " unreadable:",
                  err)
    end
  end,
}
