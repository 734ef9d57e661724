/* config_int.h: the key table's entries (config_keys.c), which parsing
 * and validation (config.c) read. Private to src/core. */
#ifndef HS_CONFIG_INT_H
#define HS_CONFIG_INT_H

#include <stddef.h>

#include "core/config.h"

struct key {
    struct config_key_info info;
    size_t off;
    int64_t min, max;           /* for ints, durations and sizes */
    const char *const *choices; /* for enums, NULL-terminated */
    size_t len;                 /* for strings: buffer size */
};

#define OFF(f) offsetof(struct config, f)

/* The choices of log_level and profile, NULL-terminated. */
extern const char *const config_levels[];
extern const char *const config_profiles[];

/* The key named `name` (or aliased so), NULL if none. */
const struct key *config_find_key(const char *name);

#endif
