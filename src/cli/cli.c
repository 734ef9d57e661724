/* cli.c: the command line of `hearsay`'s client commands: the table of
 * commands, their usage texts, option parsing, and cli_main, which runs
 * one. The commands are in cli_cmds.c, cli_kv.c and cli_ops.c, the
 * requests they send in cli_ask.c, their output in cli_print.c.
 *
 * Flags come before the positional arguments, as Go's flag package reads
 * them (serf's, consul's): the first argument that is not a flag, and
 * everything after it, is positional, so `hearsay kv put k -5` stores
 * "-5"; `--` ends the flags. `kv` reads flags before its subcommand and
 * again after it (`hearsay kv put --format json k v`), as consul's
 * `kv put` does. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/control.h"
#include "base/log.h"
#include "base/text.h"
#include "cli/cli_int.h"
#include "core/node.h"

enum {
    OPT_FORMAT = 1,
    OPT_STATUS = 2,
    OPT_DETAILED = 4,
    OPT_KEYS = 8,
    OPT_LOG_LEVEL = 16,
    OPT_TAGS = 32
};

struct command {
    const char *name;
    const char *synopsis;
    const char *args; /* after "hearsay NAME [options]" */
    const char *help; /* what it does, one paragraph */
    unsigned opts;    /* OPT_* it accepts besides --control, --help */
    int (*run)(struct opts *o, int argc, char **argv);
};

static const struct command commands[] = {
    {"agent", "Runs a hearsay agent", NULL, NULL, 0, NULL},
    {"join", "Tell a hearsay agent to join a cluster", " ADDRESS ...",
     "Tells a running hearsay agent to join the cluster by contacting "
     "the given addresses (host:port, or name/host:port when the cluster "
     "requires node names). Every address is tried; the join succeeds if "
     "any of them answers.",
     0, run_join},
    {"force-leave", "Forces a failed member to leave the cluster", " NAME",
     "Marks a member that failed (dead, or suspect) as left, as serf "
     "force-leave does: this agent stops trying to reconnect to it, and "
     "gossips its leave, which members that still see it alive or suspect "
     "take too; members that see it dead keep it so until they forget it "
     "(gossip_to_the_dead_time). A member that is alive is refused. If the "
     "member is in fact running, it refutes the leave and comes back.",
     OPT_FORMAT, run_force_leave},
    {"keygen", "Generates a new encryption key", "",
     "Generates a new encryption key: 32 random bytes in base64, the "
     "form the agent's --encrypt flag, the encrypt key and hearsay keys "
     "take (as serf keygen). No agent is needed.",
     0, run_keygen},
    {"keys", "Manages the encryption keyring of the whole cluster",
     " --list | --install KEY | --use KEY | --remove KEY",
     "Manages the encryption keyring, as serf keys does: the change is "
     "made on this agent, then asked of every other member alive or "
     "suspect, over encrypted streams. Only one key, the primary, "
     "encrypts; every installed key decrypts. To rotate: --install the "
     "new key, --use it, then --remove the old one. Exits 0 when every "
     "member answered and none failed, else 1 and lists the members that "
     "failed. Members that are not hearsay nodes (serf) count as "
     "failed: change their keys with their own tools. Running with "
     "several keys is meant as a transition only.",
     OPT_FORMAT | OPT_KEYS, run_keys},
    {"kv", "Reads and writes the cluster-wide key/value store",
     " <subcommand> [args]",
     "Reads, writes, lists and watches the cluster-wide key/value store "
     "through a running agent. Every write is gossiped to the whole "
     "cluster, and any agent's validate_metadata hook may refuse it.",
     OPT_FORMAT, run_kv},
    {"leave", "Gracefully leaves the cluster and shuts the agent down", "",
     "Causes the agent to gracefully leave the cluster and shut down: its "
     "leave is gossiped for up to leave_timeout before it exits.",
     0, run_leave},
    {"members", "Lists the members of the cluster", "",
     "Outputs the members a running hearsay agent knows about: name, "
     "address and status (alive, suspect, dead, left), one per line.",
     OPT_FORMAT | OPT_STATUS | OPT_DETAILED, run_members},
    {"monitor", "Streams the agent's log", "",
     "Shows the agent's recent log lines (up to 512 since its control "
     "endpoint opened), then its log as it is written, until the agent "
     "goes away or Ctrl-C, as serf monitor does. --log-level may ask for "
     "lines the agent's own log_level filters out. A monitor that does "
     "not keep up loses lines, and is told how many.",
     OPT_FORMAT | OPT_LOG_LEVEL, run_monitor},
    {"pause", "Stops the agent's heartbeat (pekonode's Stop)", "",
     "Stops the agent's heartbeat: no probes, no gossip, no answers; other "
     "nodes will suspect it. The agent keeps its member table.",
     0, run_pause},
    {"reload", "Reloads the agent's hook scripts", "",
     "Loads the agent's hook scripts again (as SIGHUP does). If any of "
     "them fails to load, the running scripts stay and the error is "
     "printed.",
     0, run_reload},
    {"resume", "Restarts the agent's heartbeat (pekonode's Start)", "",
     "Restarts a paused agent's heartbeat with a fresh incarnation and a "
     "state sync, which refutes any suspicion raised meanwhile.",
     0, run_resume},
    {"stats", "Shows the agent's counters", "",
     "Outputs the agent's counters: packets, messages by type, drops by "
     "reason, probes, suspicions, members by state, health score.",
     OPT_FORMAT, run_stats},
    {"tags", "Modifies the tags of a running agent", "",
     "Sets and deletes this agent's Serf tags, as serf tags does: its "
     "private data, in Serf's encoding, which serf members shows as tags, "
     "announced to the cluster with a new incarnation. --set is applied "
     "before --delete. Only when the private data holds Serf tags or "
     "nothing: private data a script gives (private_data) is the "
     "script's, and replaces the tags when the script is asked again "
     "(hearsay reload, update_private_data).",
     OPT_FORMAT | OPT_TAGS, run_tags},
    {"version", "Prints the hearsay version", "",
     "Prints the hearsay version and the protocol versions it speaks, and "
     "the running agent's name and version when one answers.",
     0, run_version},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < HS_ARRAY_LEN(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: hearsay [--version] [--help] <command> [<args>]\n\n"
               "Available commands are:\n");
    for (size_t i = 0; i < HS_ARRAY_LEN(commands); i++)
        fprintf(f, "    %-12s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\nRun \"hearsay help <command>\" for its options.\n");
}

static void command_usage(FILE *f, const struct command *c)
{
    if (c->run == run_kv)
        fprintf(f, "Usage: hearsay kv <subcommand> [options] [args]\n\n");
    else
        fprintf(f, "Usage: hearsay %s [options]%s\n\n", c->name, c->args);
    text_wrap(f, c->help, 2);
    if (c->run == run_kv)
        fprintf(f, "\nSubcommands:\n\n"
                   "    put KEY VALUE   Writes VALUE at KEY; a VALUE of - "
                   "is read from stdin\n"
                   "                    (binary-safe, up to 64 MiB). Put "
                   "-- before a KEY\n"
                   "                    that starts with -.\n"
                   "    get KEY         Prints the value at KEY as it is "
                   "stored.\n"
                   "    delete KEY      Deletes KEY (a missing key is not "
                   "an error).\n"
                   "    list [PREFIX]   Lists the keys (starting with "
                   "PREFIX), one per line.\n"
                   "    watch [PREFIX]  Prints every change to the keys "
                   "(starting with PREFIX)\n"
                   "                    as it happens, local or remote, "
                   "until the agent goes\n"
                   "                    away.\n");
    if (c->run == run_keygen)
        return; /* talks to no agent */
    fprintf(f, "\nOptions:\n\n");
    if (c->opts & OPT_KEYS)
        fprintf(f, "  --list            List every key installed in the "
                   "cluster, with how many\n"
                   "                    members have it and use it as "
                   "their primary.\n"
                   "  --install=KEY     Install a key on every member: it "
                   "decrypts, but does\n"
                   "                    not encrypt until it is made the "
                   "primary.\n"
                   "  --use=KEY         Make an installed key the primary "
                   "(the key that\n"
                   "                    encrypts) on every member.\n"
                   "  --remove=KEY      Remove a key from every member; "
                   "the primary key cannot\n"
                   "                    be removed.\n");
    fprintf(f,
            "  --control=ADDR    Address of the agent's control endpoint "
            "(default:\n"
            "                    $%s, else %s).\n",
            CONTROL_ENV, CONTROL_DEFAULT_ADDR);
    fprintf(f,
            "  --token=TOKEN     The agent's control token, when it has "
            "one (default:\n"
            "                    $%s).\n",
            CONTROL_TOKEN_ENV);
    if (c->opts & OPT_DETAILED)
        fprintf(f, "  --detailed        Also show incarnation, protocol and "
                   "delegate versions\n"
                   "                    (min/max/current) and private "
                   "data.\n");
    if (c->opts & OPT_FORMAT)
        fprintf(f, "  --format=FORMAT   Output format: text (default) or "
                   "json.\n");
    if (c->opts & OPT_STATUS)
        fprintf(f, "  --status=STATE    Only members in this state: alive, "
                   "suspect, dead\n"
                   "                    (or failed) or left.\n");
    if (c->opts & OPT_LOG_LEVEL)
        fprintf(f, "  --log-level=LEVEL Lines at this level and above: "
                   "debug, info (default),\n"
                   "                    warn or error.\n");
    if (c->opts & OPT_TAGS)
        fprintf(f, "  --set KEY=VALUE   Creates or changes a tag; "
                   "repeatable.\n"
                   "  --delete KEY      Removes a tag, if present; "
                   "repeatable.\n");
    fprintf(f, "\nFlags come before the arguments; -- ends them.\n");
}

int kv_usage_error(const struct opts *o, const char *sub, const char *why)
{
    if (o->json && why)
        return cli_failf(o, "hearsay kv%s%s: %s", sub ? " " : "",
                         sub ? sub : "", why);
    if (why)
        fprintf(stderr, "hearsay kv%s%s: %s\n\n", sub ? " " : "",
                sub ? sub : "", why);
    command_usage(stderr, find_command("kv"));
    return 1;
}

/* A usage error: the sentence, then the command's usage; with --format
 * json the sentence alone, as a JSON error. Returns 1. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
usage_error(const struct command *c, const struct opts *o, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->json)
        return cli_failf(o, "hearsay %s: %s", c->name, msg);
    fprintf(stderr, "hearsay %s: %s\n\n", c->name, msg);
    command_usage(stderr, c);
    return 1;
}

/* The flags that take a value, for flags_say_json. */
static bool takes_value(const char *name, size_t n)
{
    static const char *const with[] = {
        "control", "token",  "format",    "status", "install",
        "use",     "remove", "log-level", "set",    "delete"};
    for (size_t i = 0; i < HS_ARRAY_LEN(with); i++)
        if (strlen(with[i]) == n && !strncmp(with[i], name, n))
            return true;
    return false;
}

/* Do the flags ask for --format json? Read before they are parsed, so
 * that an error found while parsing them is JSON too. argv[0] is the
 * command; kv's subcommand is skipped. */
static bool flags_say_json(int argc, char **argv, bool kv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (a[0] != '-' || a[1] == '\0') {
            if (kv) { /* the subcommand: its flags follow */
                kv = false;
                continue;
            }
            break;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        size_t n = strcspn(name, "=");
        bool fmt = n == 6 && !strncmp(name, "format", 6);
        if (name[n] == '=')
            json = fmt ? !strcmp(name + n + 1, "json") : json;
        else if (takes_value(name, n) && i + 1 < argc)
            json = fmt ? !strcmp(argv[++i], "json") : json;
    }
    return json;
}

static void opts_init(struct opts *o, bool json)
{
    o->format = json ? "json" : "text";
    o->json = json;
    o->key_op = -1;
    o->q.control = getenv(CONTROL_ENV);
    if (o->q.control == NULL || *o->q.control == '\0')
        o->q.control = CONTROL_DEFAULT_ADDR;
    o->q.token = getenv(CONTROL_TOKEN_ENV);
    o->q.timeout_ms = TIMEOUT_MS;
}

/* Parse a command's flags, up to the first positional argument or --;
 * argv[0] is the command's name (or kv's subcommand). Returns -1 to go
 * on, else the exit status. Leaves the positional arguments in
 * argv[*first..]; *dashes when -- ended the flags. */
static int parse(const struct command *c, struct opts *o, int argc, char **argv,
                 int *first, bool *dashes)
{
    static const struct option longopts[] = {
        {"control", required_argument, NULL, 'c'},
        {"token", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"status", required_argument, NULL, 's'},
        {"detailed", no_argument, NULL, 'd'},
        {"list", no_argument, NULL, 'L'},
        {"install", required_argument, NULL, 'I'},
        {"use", required_argument, NULL, 'U'},
        {"remove", required_argument, NULL, 'R'},
        {"log-level", required_argument, NULL, 'l'},
        {"set", required_argument, NULL, 'S'},
        {"delete", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    optind = 0; /* a full reset of GNU getopt */
    opterr = 0;
    int ch, idx = 0, done = 1; /* done: where the last flag ended */
    /* '+': stop at the first argument that is not a flag, as Go does */
    while ((ch = getopt_long_only(argc, argv, "+:h", longopts, &idx)) != -1) {
        unsigned need = ch == 'f'                ? OPT_FORMAT
                        : ch == 's'              ? OPT_STATUS
                        : ch == 'd'              ? OPT_DETAILED
                        : ch == 'l'              ? OPT_LOG_LEVEL
                        : ch == 'S' || ch == 'D' ? OPT_TAGS
                        : ch == 'L' || ch == 'I' || ch == 'U' || ch == 'R'
                            ? OPT_KEYS
                            : 0;
        if (need && !(c->opts & need))
            return usage_error(c, o, "flag --%s does not apply to this command",
                               longopts[idx].name);
        /* "--control --token T": --control took "--token" for its value;
         * say that, rather than leave T (a secret) as an unexpected
         * argument. */
        if (optarg && optind >= 2 && optarg == argv[optind - 1] &&
            optarg[0] == '-') {
            const char *f = optarg + (optarg[1] == '-' ? 2 : 1);
            size_t fl = strcspn(f, "=");
            for (const struct option *lo = longopts; lo->name; lo++) {
                if (strlen(lo->name) != fl || strncmp(lo->name, f, fl))
                    continue;
                return usage_error(
                    c, o, "flag %.*s needs a value (%.*s is a flag)",
                    (int)strcspn(argv[optind - 2], "="), argv[optind - 2],
                    (int)strcspn(optarg, "="), optarg);
            }
        }
        switch (ch) {
        case 'c':
            o->q.control = optarg;
            break;
        case 't':
            o->q.token = optarg;
            break;
        case 'L':
        case 'I':
        case 'U':
        case 'R':
            o->key_ops++;
            o->key_op = ch == 'L'   ? NODE_KEYS_LIST
                        : ch == 'I' ? NODE_KEYS_INSTALL
                        : ch == 'U' ? NODE_KEYS_USE
                                    : NODE_KEYS_REMOVE;
            o->key = ch == 'L' ? NULL : optarg;
            break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return cli_failf(o,
                                 "hearsay %s: --format must be text or "
                                 "json, not \"%s\"",
                                 c->name, optarg);
            o->format = optarg;
            o->json = !strcmp(optarg, "json");
            break;
        case 's':
            o->status = optarg;
            break;
        case 'd':
            o->detailed = true;
            break;
        case 'l': {
            int lv = hs_log_level_parse(optarg);
            if (lv < 0 || lv >= HS_LOG_OFF)
                return usage_error(c, o,
                                   "--log-level must be debug, info, warn "
                                   "or error, not \"%s\"",
                                   optarg);
            o->log_level = optarg;
            break;
        }
        case 'S':
            if (strchr(optarg, '=') == NULL)
                return usage_error(c, o, "--set takes KEY=VALUE, not \"%s\"",
                                   optarg);
            o->tag_set[o->ntag_set++] = optarg;
            break;
        case 'D':
            o->tag_del[o->ntag_del++] = optarg;
            break;
        case 'h':
            command_usage(stdout, c);
            return 0;
        case ':':
            return usage_error(c, o, "flag %s needs a value", argv[optind - 1]);
        default: /* the flag's name only: "--tokn=SECRET" */
            return usage_error(c, o, "unknown flag %.*s",
                               (int)strcspn(argv[optind - 1], "="),
                               argv[optind - 1]);
        }
        done = optind;
    }
    *first = optind;
    *dashes = optind == done + 1 && !strcmp(argv[done], "--");
    return -1;
}

/* Run command c with its arguments argv[0..argc) (argv[0] its name). */
static int run(const struct command *c, struct opts *o, int argc, char **argv)
{
    int first;
    bool dashes;
    int rc = parse(c, o, argc, argv, &first, &dashes);
    if (rc >= 0)
        return rc;
    int npos = argc - first;
    if (c->run == run_kv) { /* the subcommand, then its own flags */
        if (npos > 0 && !dashes) {
            char **sub = argv + first;
            int n = npos;
            rc = parse(c, o, n, sub, &first, &dashes);
            if (rc >= 0)
                return rc;
            /* the subcommand stays first */
            memmove(sub + 1, sub + first, (size_t)(n - first) * sizeof *sub);
            npos = 1 + n - first;
            return run_kv(o, npos, sub);
        }
        return run_kv(o, npos, argv + first); /* checks its own arguments */
    }
    if (c->run == run_keys && npos == 0 && o->key_ops != 1) {
        if (o->key_ops > 1)
            return usage_error(c, o,
                               "only one of --install, --use, --remove or "
                               "--list allowed");
        if (o->json)
            return cli_failf(o, "hearsay keys: give one of --list, "
                                "--install, --use or --remove");
        command_usage(stderr, c);
        return 1;
    }
    if (c->run == run_tags && npos == 0 && o->ntag_set + o->ntag_del == 0)
        return usage_error(c, o, "give at least one --set or --delete");
    if (c->run == run_join && npos == 0)
        return usage_error(c, o, "give at least one address");
    if (c->run == run_force_leave && npos != 1)
        return usage_error(
            c, o, npos ? "give one NAME only" : "give the NAME of a member");
    if (c->run != run_join && c->run != run_force_leave && npos != 0)
        return usage_error(c, o, "unexpected argument");
    return c->run(o, npos, argv + first);
}

int cli_main(int argc, char **argv)
{
    if (argc == 0) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[0];
    if (!strcmp(name, "-h") || !strcmp(name, "-help") ||
        !strcmp(name, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-v") || !strcmp(name, "-version") ||
        !strcmp(name, "--version"))
        name = "version";
    if (!strcmp(name, "help")) {
        if (argc < 2) {
            usage(stdout);
            return 0;
        }
        const struct command *c = find_command(argv[1]);
        if (c == NULL || c->run == NULL) {
            fprintf(stderr, "hearsay: unknown command \"%s\"\n\n", argv[1]);
            usage(stderr);
            return 1;
        }
        command_usage(stdout, c);
        return 0;
    }
    const struct command *c = find_command(name);
    if (c == NULL || c->run == NULL) {
        fprintf(stderr, "hearsay: unknown command \"%s\"\n\n", name);
        usage(stderr);
        return 1;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    opts_init(&o, flags_say_json(argc, argv, c->run == run_kv));
    o.tag_set = hs_calloc((size_t)argc, sizeof *o.tag_set);
    o.tag_del = hs_calloc((size_t)argc, sizeof *o.tag_del);
    int rc = o.tag_set && o.tag_del ? run(c, &o, argc, argv)
                                    : cli_fail(&o, "Error: out of memory");
    hs_free(o.tag_set);
    hs_free(o.tag_del);
    return rc;
}
