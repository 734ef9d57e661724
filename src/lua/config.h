/* lua/config.h: read an agent configuration file (Lua chunk or JSON).
 *
 * A Lua config file is a chunk that assigns globals, one per configuration
 * key:
 *
 *     name = "a"
 *     bind = "127.0.0.1:7946"
 *     probe_interval = "500ms"      -- or a number of milliseconds
 *     join = {"127.0.0.1:7947"}
 *     enable_compression = false
 *
 * It runs in an empty environment that offers only the string library
 * (without its pattern functions find, match, gmatch and gsub, whose
 * backtracking has no bound, nor dump), the table and math libraries and
 * a few harmless base functions (pairs, ipairs, type, tostring, tonumber,
 * select, next, assert, error): no os, io, require or load. Its memory,
 * instruction count and time are bounded (64 MiB, 20,000,000
 * instructions, 1 s), and the library functions that loop in C are
 * charged for their turns against the instructions. A file whose name
 * ends in ".json" holds one JSON object with the same keys instead. */
#ifndef HS_LUA_CONFIG_H
#define HS_LUA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* Apply the keys of the file at `path` to cfg through config_set():
 * numbers become integer text, booleans "true"/"false", a table one list
 * entry per element (an empty table clears the list). The `profile` key is
 * applied before every other key (it resets the protocol timings), or only
 * checked when `keep_profile` is set (a --profile flag wins over the
 * file). The other keys follow in name order.
 *
 * Returns 0, or HS_EINVAL with a sentence in err: "FILE:LINE: message"
 * where the file has a line for the error (a syntax or run-time error of
 * the chunk; an unknown key or a bad value, at the line that set it: the
 * statement's in a Lua file, the key's in a JSON file; a JSON syntax
 * error), else "FILE: message" (the file cannot be opened, is not an
 * object of keys, ...). Keys applied before the error stay applied. The
 * lua_State it creates is always closed before it returns. */
int lua_config_load(const char *path, struct config *cfg, bool keep_profile,
                    char *err, size_t errlen);

/* The same with other bounds (the fuzz targets use small ones, so that
 * each input finishes quickly): bytes the Lua state may hold, VM
 * instructions, and milliseconds of wall-clock time. */
struct lua_config_limits {
    size_t memory;
    long steps;
    uint64_t time_ms;
};
int lua_config_load_limited(const char *path, struct config *cfg,
                            bool keep_profile,
                            const struct lua_config_limits *lim, char *err,
                            size_t errlen);

#endif
