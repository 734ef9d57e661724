-- hearsay: the Lua API of hearsay for scripts and specs.
--
-- Inside an agent, `require "hearsay"` gives the API of the agent's node.
-- In a plain lua5.4 or busted process it gives the same API plus
-- hearsay.node{...} (a node on real loopback sockets, in this process),
-- hearsay.run(ms) and hearsay.run_until(predicate, timeout_ms), the codec
-- and require "hearsay.sim".
return require "hearsay.core"
