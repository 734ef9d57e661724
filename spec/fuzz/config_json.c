/* config_json.c: libFuzzer target for the agent's JSON config loader
 * (lua_config_load_limited on a file named *.json, decoded by lua-cjson).
 *
 * The input is the file, up to the loader's 4 MiB. The JSON is decoded
 * in the loader's bounded Lua state (small bounds here, as for Lua
 * files), and its keys, lists and values go through the same checks as
 * a Lua file's: whatever it holds, the load returns 0 or a sentence, and
 * frees everything. A configuration loaded is then validated, as the
 * agent does, and each key read back. */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_config_file("c.json", data, size);
}
