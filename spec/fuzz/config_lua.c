/* config_lua.c: libFuzzer target for the agent's Lua config loader
 * (lua_config_load_limited on a file named *.lua).
 *
 * The input is the file. It runs in the loader's sandbox, with the
 * loader's own bounds made small (8 MiB, 200,000 instructions, 200 ms)
 * so that every input ends quickly: whatever the chunk does (loops,
 * library calls looping in C, errors of any type, huge strings), the load
 * returns, with 0 or a sentence, and frees everything. A configuration
 * loaded is then validated, as the agent does, and each key read back. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lua_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct lua_config_limits lim = {8u << 20, 200000, 200};
    struct config cfg;
    char err[600], value[4096];
    if (config_defaults(&cfg, "lan"))
        abort();
    const char *path = fuzz_temp_file("c.lua", data, size);
    int rc = lua_config_load_limited(path, &cfg, size % 2 == 1, &lim, err,
                                     sizeof err);
    if (rc) {
        if (rc != HS_EINVAL && rc != HS_ENOMEM)
            abort();
        fuzz_touch(err, strlen(err));
    } else {
        if (config_validate(&cfg, err, sizeof err) == 0)
            fuzz_touch(cfg.name, strlen(cfg.name));
        for (size_t i = 0; i < config_key_count(); i++)
            if (config_get(&cfg, config_key(i)->name, value, sizeof value) ==
                0)
                fuzz_touch(value, strlen(value));
    }
    config_free(&cfg);
    fuzz_check_leaks("lua_config_load");
    return 0;
}
