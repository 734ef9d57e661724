-- agent.lua: an example hearsay agent configuration (a Lua config file).
--
--   bin/hearsay agent --config examples/agent.lua
--
-- Keys are those of the README's configuration reference; flags given on
-- the command line override them.
name = "example-1"
bind = "127.0.0.1:7946"
control = "127.0.0.1:7374"
profile = "lan"

-- Join these members at start-up (host names and name/host:port work).
join = {}

-- Faster failure detection than the LAN profile's defaults.
probe_interval = "500ms"
probe_timeout = "250ms"

-- pekonode's option names are accepted too: fanout = gossip_nodes.
fanout = 4

-- Only members with an address in these networks may join.
cidrs_allowed = { "127.0.0.0/8" }

-- Hook scripts, found next to this file.
scripts = { "first-hook.lua" }
