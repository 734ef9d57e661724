/* agent/flags.h: `hearsay agent`'s flags and help. */
#ifndef HS_AGENT_FLAGS_H
#define HS_AGENT_FLAGS_H

#include <stdio.h>

#include "core/config.h"

/* The agent's exit status on a usage or configuration error. */
#define AGENT_EXIT_USAGE 2

/* `hearsay agent --help`: the flags, and every key --set takes. */
void agent_help(FILE *f);
/* Build the configuration: profile (flag, else the file's, else lan),
 * then $HEARSAY_CONTROL, then the config file, then the flags in their
 * order. Returns -1 to go on, else the exit status (0 after --help, or
 * AGENT_EXIT_USAGE with the sentence in err). Runs again on every
 * reload. */
int agent_configure(struct config *cfg, int argc, char **argv, char *err,
                    size_t errlen);

#endif
