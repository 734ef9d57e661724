/* agent/flags.c: `hearsay agent`'s flags and help, and the configuration
 * they build with the config file and $HEARSAY_CONTROL. */
#include "agent/flags.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/control.h"
#include "base/text.h"
#include "lua/config.h"

/* ===== Flags and configuration ===== */

static const struct option agent_opts[] = {
    {"name", required_argument, NULL, 'n'},
    {"node", required_argument, NULL, 'n'}, /* serf's spelling */
    {"bind", required_argument, NULL, 'b'},
    {"advertise", required_argument, NULL, 'a'},
    {"join", required_argument, NULL, 'j'},
    {"retry-join", required_argument, NULL, 'r'},
    {"retry-interval", required_argument, NULL, 'i'},
    {"retry-max", required_argument, NULL, 'x'},
    {"profile", required_argument, NULL, 'p'},
    {"config", required_argument, NULL, 'f'},
    {"config-file", required_argument, NULL, 'f'}, /* serf's spelling */
    {"control", required_argument, NULL, 'c'},
    {"metrics", required_argument, NULL, 'M'},
    {"log-level", required_argument, NULL, 'l'},
    {"transport", required_argument, NULL, 't'},
    {"set", required_argument, NULL, 's'},
    {"script", required_argument, NULL, 'S'},
    {"data-dir", required_argument, NULL, 'd'},
    {"encrypt", required_argument, NULL, 'e'},
    {"keyring", required_argument, NULL, 'k'},
    {"keyring-file", required_argument, NULL, 'k'}, /* serf's spelling */
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* The flags that are plain configuration keys, by getopt value. */
static const char *flag_key(int ch)
{
    switch (ch) {
    case 'n':
        return "name";
    case 'b':
        return "bind";
    case 'a':
        return "advertise";
    case 'j':
        return "join";
    case 'r':
        return "retry_join";
    case 'i':
        return "retry_interval";
    case 'x':
        return "retry_max";
    case 'c':
        return "control";
    case 'M':
        return "metrics";
    case 'l':
        return "log_level";
    case 't':
        return "transport";
    case 'S':
        return "scripts";
    case 'd':
        return "data_dir";
    case 'e':
        return "encrypt";
    case 'k':
        return "keyring_file";
    default:
        return NULL;
    }
}

static const char *const kind_names[] = {
    [CONFIG_STRING] = "string", [CONFIG_ADDR] = "host:port",
    [CONFIG_INT] = "integer",   [CONFIG_DURATION] = "duration",
    [CONFIG_SIZE] = "size",     [CONFIG_BOOL] = "boolean",
    [CONFIG_LIST] = "list",     [CONFIG_ENUM] = "choice"};

void agent_help(FILE *f)
{
    fprintf(
        f,
        "Usage: hearsay agent [options]\n\n"
        "  Starts a hearsay agent: a gossip node that speaks memberlist's\n"
        "  wire protocol and can join Serf and memberlist clusters. Values\n"
        "  come from the profile, then the config file, then the flags.\n"
        "  SIGINT or SIGTERM leave the cluster gracefully (a second one\n"
        "  exits at once).\n\n"
        "Options:\n\n"
        "  --name=NAME          Node name, unique in the cluster.\n"
        "  --bind=ADDR:PORT     Address to listen on (UDP and TCP).\n"
        "  --advertise=ADDR:PORT  Address other nodes reach this one at.\n"
        "  --join=ADDR:PORT     Join at start-up (repeatable; host names\n"
        "                       and name/host:port allowed); exits 1 if\n"
        "                       no join succeeds.\n"
        "  --retry-join=ADDR:PORT  Join at start-up, and again every\n"
        "                       --retry-interval until a join succeeds\n"
        "                       (repeatable; names resolved each time).\n"
        "  --retry-interval=30s Time between --retry-join attempts.\n"
        "  --retry-max=0        Retries before giving up and exiting 1\n"
        "                       (0: retry forever).\n"
        "  --profile=PROFILE    Timings: lan (default), wan or local.\n"
        "  --config=FILE        Lua config file (globals such as\n"
        "                       name = \"a\"), or JSON when FILE ends in\n"
        "                       .json.\n"
        "  --control=ADDR:PORT  Control endpoint for the CLI (default\n"
        "                       $%s, else %s).\n"
        "  --metrics=ADDR:PORT  Serve Prometheus metrics over HTTP at\n"
        "                       /metrics (default off; no authentication,\n"
        "                       so keep it on loopback).\n"
        "  --log-level=LEVEL    debug, info, warn, error or off.\n"
        "  --transport=KIND     udp (memberlist) or tcp.\n"
        "  --script=FILE        Lua hook script (repeatable; loaded in\n"
        "                       order).\n"
        "  --data-dir=DIR       Keep the cluster metadata and the known\n"
        "                       members in DIR across restarts.\n"
        "  --encrypt=KEY        Encrypt gossip with this base64 key of 16,\n"
        "                       24 or 32 bytes (hearsay keygen makes one).\n"
        "  --keyring=FILE       Serf's keyring file (JSON array of base64\n"
        "                       keys, primary first): loaded when it\n"
        "                       exists, else created from --encrypt, and\n"
        "                       kept up to date as keys change.\n"
        "  --set=KEY=VALUE      Set any configuration key below\n"
        "                       (repeatable).\n\n"
        "Configuration keys (config file, or --set KEY=VALUE):\n\n",
        CONTROL_ENV, CONTROL_DEFAULT_ADDR);
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        char doc[1024];
        fprintf(f, "  %s (%s", k->name, kind_names[k->kind]);
        if (k->alias)
            fprintf(f, "; alias %s", k->alias);
        fprintf(f, ")\n");
        snprintf(doc, sizeof doc, "%s%s%s%s", k->doc,
                 k->memberlist ? " [memberlist: " : "",
                 k->memberlist ? k->memberlist : "", k->memberlist ? "]" : "");
        text_wrap(f, doc, 6);
    }
}

/* ===== Secrets never echoed =====
 * An error about the flags names a flag, never a value that may be a
 * key or a token: a flag missing its value would otherwise take the
 * next flag as its value and leave the secret as an "unexpected
 * argument". */

static const char *const secret_keys[] = {"encrypt", "encrypt_passphrase",
                                          "secret_key", "control_token", NULL};

/* The length of a flag's name in arg ("--set=a" -> "--set"). */
static size_t flag_len(const char *arg)
{
    return strcspn(arg, "=");
}

static bool names_secret(const char *s)
{
    size_t n = flag_len(s);
    for (int i = 0; secret_keys[i]; i++)
        if (strlen(secret_keys[i]) == n && !strncmp(s, secret_keys[i], n))
            return true;
    return false;
}

/* Whether arg is one of the agent's flags (with or without a value). */
static bool is_flag(const char *arg)
{
    if (arg[0] != '-')
        return false;
    const char *name = arg + (arg[1] == '-' ? 2 : 1);
    size_t n = flag_len(name);
    for (const struct option *o = agent_opts; o->name; o++)
        if (strlen(o->name) == n && !strncmp(name, o->name, n))
            return true;
    return false;
}

/* Whether any argument carries a secret: --encrypt, or --set with a
 * secret key. */
static bool has_secret(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            continue;
        const char *name = a + (a[1] == '-' ? 2 : 1);
        if (!strncmp(name, "encrypt", flag_len(name)) && flag_len(name) == 7)
            return true;
        if (flag_len(name) == 3 && !strncmp(name, "set", 3) &&
            (name[3] == '=' ? names_secret(name + 4)
                            : i + 1 < argc && names_secret(argv[i + 1])))
            return true;
    }
    return false;
}

/* Where agent_configure() writes its error sentence. */
static char *cfg_err;
static size_t cfg_errlen;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg_err, cfg_errlen, fmt, ap);
    va_end(ap);
    return AGENT_EXIT_USAGE;
}

/* Build the configuration: profile (flag, else the file's, else lan),
 * then $HEARSAY_CONTROL, then the config file, then the flags in their
 * order. Returns -1 to go on, else the exit status (help, or 2 with the
 * sentence in err). Runs again on every reload. */
int agent_configure(struct config *cfg, int argc, char **argv, char *err,
                    size_t errlen)
{
    /* The flags that set keys, kept in order: argv element and key. */
    struct setting {
        const char *key; /* NULL: "KEY=VALUE" in value */
        const char *value;
    } *sets = hs_calloc((size_t)argc + 1, sizeof *sets);
    size_t nsets = 0;
    const char *profile = NULL, *file = NULL;
    int ch, rc = -1;
    cfg_err = err;
    cfg_errlen = errlen;
    err[0] = '\0';
    config_defaults(cfg, "lan"); /* so that config_free is always safe */
    /* The arguments as given, to say where an unexpected one was. */
    char **orig = hs_calloc((size_t)argc + 1, sizeof *orig);
    if (sets == NULL || orig == NULL) {
        hs_free(sets);
        hs_free(orig);
        return usage_error("out of memory");
    }
    memcpy(orig, argv, (size_t)argc * sizeof *orig);
    bool secret = has_secret(argc, argv);
    optind = 0;
    opterr = 0;
    /* '+': flags stop at the first other argument, as for every command
     * (src/cli/cli.c); the agent takes none, so that one is an error. */
    while (rc < 0 &&
           (ch = getopt_long_only(argc, argv, "+:", agent_opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            agent_help(stdout);
            rc = 0;
            break;
        case 'p':
            profile = optarg;
            break;
        case 'f':
            if (file)
                rc = usage_error("--config given twice");
            file = optarg;
            break;
        case 's':
            if (!strncmp(optarg, "profile=", 8)) /* a profile, early */
                profile = optarg + 8;
            else
                sets[nsets++] = (struct setting){NULL, optarg};
            break;
        case ':':
            rc = usage_error("flag %.*s needs a value",
                             (int)flag_len(argv[optind - 1]), argv[optind - 1]);
            break;
        case '?':
            rc = usage_error("unknown or ambiguous flag %.*s (see hearsay "
                             "agent --help)",
                             (int)flag_len(argv[optind - 1]), argv[optind - 1]);
            break;
        default:
            sets[nsets++] = (struct setting){flag_key(ch), optarg};
            break;
        }
        /* "--name --encrypt KEY": --name took "--encrypt" for its value,
         * which is a flag; the flag is what lacks its value. */
        if (rc < 0 && optarg && optind >= 2 && optarg == argv[optind - 1] &&
            is_flag(optarg))
            rc = usage_error("flag %.*s needs a value (%.*s is a flag)",
                             (int)flag_len(argv[optind - 2]), argv[optind - 2],
                             (int)flag_len(optarg), optarg);
    }
    if (rc < 0 && optind < argc) {
        /* Where it was, and what came before it. */
        int at = 1;
        while (at < argc && orig[at] != argv[optind])
            at++;
        const char *prev = at >= 2 ? orig[at - 1] : "";
        const char *prev2 = at >= 3 ? orig[at - 2] : "";
        if (!secret)
            rc = usage_error("unexpected argument \"%s\"", argv[optind]);
        else if (prev[0] == '-')
            rc = usage_error("unexpected argument %d, after %.*s (not "
                             "shown: the arguments hold a secret)",
                             at, (int)flag_len(prev), prev);
        else if (prev2[0] == '-')
            rc = usage_error("unexpected argument %d, after the value of "
                             "%.*s (not shown: the arguments hold a "
                             "secret)",
                             at, (int)flag_len(prev2), prev2);
        else
            rc = usage_error("unexpected argument %d (not shown: the "
                             "arguments hold a secret)",
                             at);
    }
    char e[512];
    if (rc < 0 && profile && config_set(cfg, "profile", profile, e, sizeof e))
        rc = usage_error("%s", e);
    const char *env = getenv(CONTROL_ENV);
    if (rc < 0 && env && *env && config_set(cfg, "control", env, e, sizeof e))
        rc = usage_error("$%s: %s", CONTROL_ENV, e);
    if (rc < 0 && file &&
        lua_config_load(file, cfg, profile != NULL, e, sizeof e))
        rc = usage_error("%s", e);
    for (size_t i = 0; rc < 0 && i < nsets; i++) {
        char key[64];
        const char *key_p = sets[i].key, *value = sets[i].value;
        if (key_p == NULL) { /* --set KEY=VALUE */
            const char *eq = strchr(value, '=');
            size_t n = eq ? (size_t)(eq - value) : 0;
            if (eq == NULL || n == 0 || n >= sizeof key) {
                /* Echo only a key name: it might be "control_tokenSECRET". */
                if (config_get(cfg, value, key, sizeof key) != HS_ENOTFOUND)
                    rc = usage_error("--set %s: expected KEY=VALUE", value);
                else
                    rc = usage_error("--set: expected KEY=VALUE, such as "
                                     "--set probe_interval=500ms");
                break;
            }
            memcpy(key, value, n);
            key[n] = '\0';
            key_p = key;
            value = eq + 1;
        }
        if (config_set(cfg, key_p, value, e, sizeof e))
            rc = usage_error("%s", e);
    }
    if (rc < 0 && config_validate(cfg, e, sizeof e))
        rc = usage_error("%s", e);
    hs_free(sets);
    hs_free(orig);
    return rc;
}
