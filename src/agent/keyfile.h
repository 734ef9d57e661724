/* keyfile.h: serf's keyring file for the agent: a JSON array of base64
 * keys, primary first (serf agent -keyring-file). It is read at start-up
 * and rewritten whenever the keyring changes, atomically: a temporary
 * file (mode 0600) is written, fsynced and renamed over the old one, so a
 * crash never leaves half a keyring. */
#ifndef HS_KEYFILE_H
#define HS_KEYFILE_H

#include "codec/keyring.h"

/* Load `path` into kr (emptied first). HS_ENOTFOUND when the file does
 * not exist; another error with a sentence in err (which never holds a
 * key) when it cannot be read or holds no valid keys. */
int keyfile_load(const char *path, struct keyring *kr, char *err,
                 size_t errlen);
/* Write kr to `path`; 0 or an error with a sentence in err. */
int keyfile_save(const char *path, const struct keyring *kr, char *err,
                 size_t errlen);

#endif
