/* config_lua.c: libFuzzer target for the agent's Lua config loader
 * (lua_config_load_limited on a file named *.lua).
 *
 * The input is the file. It runs in the loader's sandbox, with the
 * loader's own bounds made small (8 MiB, 200,000 instructions, 200 ms)
 * so that every input ends quickly: whatever the chunk does (loops,
 * library calls looping in C, errors of any type, huge strings), the load
 * returns, with 0 or a sentence, and frees everything. A configuration
 * loaded is then validated, as the agent does, and each key read back. */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_config_file("c.lua", data, size);
}
