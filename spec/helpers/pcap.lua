-- pcap.lua: read classic pcap files (Ethernet link type) of memberlist
-- traffic: UDP payloads, and TCP streams reassembled per direction.
local M = {}

local function ip_payload(frame, linktype)
  if linktype == 1 then
    if string.unpack(">I2", frame, 13) ~= 0x0800 then return nil end
    return frame:sub(15)
  elseif linktype == 113 then
    return frame:sub(17)
  end
  return frame
end

-- Returns an array of packets: {proto="udp"|"tcp", sport, dport, payload,
-- seq, flags}.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  local magic, _, _, _, _, _, linktype = string.unpack("<I4I2I2i4I4I4I4",
    data)
  assert(magic == 0xa1b2c3d4, "not a little-endian pcap file")
  local out, off = {}, 25
  while off + 16 <= #data + 1 do
    local _, _, incl = string.unpack("<I4I4I4I4", data, off)
    local frame = data:sub(off + 16, off + 15 + incl)
    off = off + 16 + incl
    local ip = ip_payload(frame, linktype)
    if ip and #ip >= 20 then
      local ihl = (ip:byte(1) & 0x0f) * 4
      local proto = ip:byte(10)
      local total = string.unpack(">I2", ip, 3)
      ip = ip:sub(1, total)
      local l4 = ip:sub(ihl + 1)
      local sport, dport = string.unpack(">I2I2", l4)
      if proto == 17 then
        out[#out + 1] = { proto = "udp", sport = sport, dport = dport,
                          payload = l4:sub(9) }
      elseif proto == 6 then
        local seq = string.unpack(">I4", l4, 5)
        local doff = (l4:byte(13) >> 4) * 4
        out[#out + 1] = { proto = "tcp", sport = sport, dport = dport,
                          seq = seq, flags = l4:byte(14),
                          payload = l4:sub(doff + 1) }
      end
    end
  end
  return out
end

function M.udp(packets)
  local r = {}
  for _, p in ipairs(packets) do
    if p.proto == "udp" then r[#r + 1] = p end
  end
  return r
end

-- TCP byte streams per (sport, dport) in order of first appearance:
-- array of {sport, dport, data}.
function M.tcp_streams(packets)
  local byKey, order = {}, {}
  for _, p in ipairs(packets) do
    if p.proto == "tcp" then
      local key = p.sport .. ">" .. p.dport
      local st = byKey[key]
      if not st then
        st = { sport = p.sport, dport = p.dport, parts = {} }
        byKey[key] = st
        order[#order + 1] = st
      end
      if p.flags & 0x02 ~= 0 then
        st.next = p.seq + 1
      elseif #p.payload > 0 and (st.next == nil or p.seq == st.next) then
        st.parts[#st.parts + 1] = p.payload
        st.next = p.seq + #p.payload
      end
    end
  end
  local r = {}
  for _, st in ipairs(order) do
    local data = table.concat(st.parts)
    if #data > 0 then
      r[#r + 1] = { sport = st.sport, dport = st.dport, data = data }
    end
  end
  return r
end

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.unhex(h)
  h = h:gsub("%s", "")
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

return M
