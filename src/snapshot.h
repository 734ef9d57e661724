/* snapshot.h: the agent's data directory. The metadata store and the
 * members the node knew are saved to DIR/hearsay.snapshot (written to a
 * temporary file, fsynced, then renamed over the old one, so a crash or a
 * full disk never leaves a half-written snapshot) and loaded at start-up,
 * so that a cluster restarted all at once still has its configuration and
 * a restarted node rejoins the members it knew. A snapshot that is corrupt
 * or cut short is reported and set aside, never loaded. */
#ifndef HS_SNAPSHOT_H
#define HS_SNAPSHOT_H

#include "config.h"
#include "log.h"
#include "node.h"

/* Load DIR's snapshot into the node's (empty) store, and add the members
 * it lists (as name/ip:port) to `rejoin`. A missing snapshot is fine (0);
 * a bad one is renamed aside and logged, and the store stays empty (0
 * too); an error only if the directory itself is unusable. */
int snapshot_load(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, char *err, size_t errlen);
/* Save the store and every member known (whatever its state: after a
 * whole cluster stops, the others are left or dead, and they are the ones
 * to find again). Returns 0 or an error with a
 * sentence in err; the previous snapshot is then untouched. */
int snapshot_save(const char *dir, struct node *nd, char *err, size_t errlen);

#endif
