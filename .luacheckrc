-- luacheck configuration for the Lua side of hearsay.
std = "lua54"
max_line_length = 100
unused_args = true
ignore = { "212/_.*" } -- arguments named _x are unused on purpose

files["spec/"] = { std = "+busted" }
files["examples/"] = { read_globals = { "hearsay" } }
-- A config file sets its keys as globals, for the agent to read.
files["examples/agent.lua"] = { ignore = { "111" } }
files["dist/hearsay.lua"] = { ignore = { "111" } }

-- Scripts broken on purpose, for the failure specs.
-- Fuzz seeds are inputs, written as the attacks they are.
exclude_files = { "spec/fixtures/scripts/broken_v2.lua",
                  "spec/fixtures/scripts/syntax_error.lua",
                  "spec/fuzz/corpus/**" }
files["spec/fixtures/scripts/memory_hog.lua"] = { ignore = { "241" } }
