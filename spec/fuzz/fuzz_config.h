/* fuzz_config.h: the body the config loader's two fuzz targets share
 * (config_lua.c, config_json.c): the input is written to a file of the
 * name given (its ending picks the loader), loaded with small bounds,
 * validated when it loads, and every key read back; everything must be
 * freed. */
#ifndef HS_FUZZ_CONFIG_H
#define HS_FUZZ_CONFIG_H

#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lua/config.h"

static int fuzz_config_file(const char *name, const uint8_t *data, size_t size)
{
    static const struct lua_config_limits lim = {8u << 20, 200000, 200};
    struct config cfg;
    char err[600], value[4096];
    if (config_defaults(&cfg, "lan"))
        abort();
    const char *path = fuzz_temp_file(name, data, size);
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
            if (config_get(&cfg, config_key(i)->name, value, sizeof value) == 0)
                fuzz_touch(value, strlen(value));
    }
    config_free(&cfg);
    fuzz_check_leaks("lua_config_load");
    return 0;
}

#endif
