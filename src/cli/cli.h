/* cli.h: the client commands of `hearsay` (members, join, leave, pause,
 * resume, stats, version, help), which talk to a running agent over its
 * control endpoint with plain blocking sockets. */
#ifndef HS_CLI_H
#define HS_CLI_H

#include <stdio.h>

/* Run the client command argv[0] with its arguments (argc may be 0: no
 * command). Returns the process exit status: 0 on success, 1 on any
 * error, an unknown command or a usage error, as serf does. */
int cli_main(int argc, char **argv);

#endif
