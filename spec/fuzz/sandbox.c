/* sandbox.c: libFuzzer target for the script sandbox.
 *
 * The input is the source of a hook script. It is loaded as an agent
 * loads its scripts (lua_host: the agent's sandboxed environment, its
 * instruction budget and memory cap, small here so that each input runs
 * in milliseconds) into node a of the two-node simulated cluster, whose
 * events then call every hook the script defines and every timer it set:
 * private data, probes and acks, a user message, metadata writes, a
 * push/pull, a member leaving. Whatever the script does, the host must
 * not crash, leak or hang.
 *
 * A script may write files, so it runs in a directory of its own behind
 * a jail (a first script, loaded before the input into the same state):
 * io.open, io.lines, os.remove and os.rename take only the names f0..f9
 * (and fN.lua, for require) and "fifo" (a FIFO the target made), files
 * are at most 1 MiB (RLIMIT_FSIZE), they are removed after each input,
 * and stdout goes to /dev/null. */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "../../src/core/metadata.h"
#include "../../src/core/node.h"
#include "../../src/lua/host.h"

#define BUDGET 100000
#define MEMORY (4u << 20)

static char dir[256], jail_path[300], script_path[300];

/* The jail, in the sandbox's own terms: the stdlib tables are the ones
 * the sandbox and require "io" share, so changing them here changes them
 * for the input too, which cannot reach the originals. Names are taken
 * in the work directory (the format's one argument). */
static const char jail[] =
    "local io, os, require, error = io, os, require, error\n"
    "local dir = '%s/'\n"
    "local function inside(p)\n"
    "  if p == 'fifo' or (type(p) == 'string' and\n"
    "      (p:find('^f%%d$') or p:find('^f%%d%%.lua$'))) then\n"
    "    return dir .. p\n"
    "  end\n"
    "  error('fuzz jail: not a file of the work directory', 3)\n"
    "end\n"
    "local open, lines, remove, rename = io.open, io.lines, os.remove,\n"
    "  os.rename\n"
    "local j = {\n"
    "  open = function(p, ...) return open(inside(p), ...) end,\n"
    "  lines = function(p, ...)\n"
    "    if p == nil then return lines() end\n"
    "    return lines(inside(p), ...)\n"
    "  end,\n"
    "}\n"
    "local o = {\n"
    "  remove = function(p) return remove(inside(p)) end,\n"
    "  rename = function(a, b) return rename(inside(a), inside(b)) end,\n"
    "  tmpname = function() return 'f0' end,\n"
    "}\n"
    "for _, t in ipairs{ io, require('io') } do\n"
    "  for k, v in pairs(j) do t[k] = v end\n"
    "  t.stderr = t.stdout\n"
    "end\n"
    "for _, t in ipairs{ os, require('os') } do\n"
    "  for k, v in pairs(o) do t[k] = v end\n"
    "end\n"
    "return {}\n";

static void clean_dir(void)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "jail.lua") ||
            !strcmp(e->d_name, "fifo"))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void cleanup(void)
{
    clean_dir();
    unlink(jail_path);
    snprintf(jail_path, sizeof jail_path, "%s/fifo", dir);
    unlink(jail_path);
    rmdir(dir);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/hearsay-fuzz-sandbox-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(cleanup);
    snprintf(jail_path, sizeof jail_path, "%s/jail.lua", dir);
    snprintf(script_path, sizeof script_path, "%s/input.lua", dir);
    char text[sizeof jail + 2 * sizeof dir];
    int n = snprintf(text, sizeof text, jail, dir);
    write_file(jail_path, text, (size_t)n);
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    if (mkfifo(fifo, 0600) != 0) {
        perror("mkfifo");
        abort();
    }
    /* Big files fail to write (EFBIG) rather than filling the disk. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1u << 20, 1u << 20};
    setrlimit(RLIMIT_FSIZE, &rl);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 1);
        close(null);
    }
    return 0;
}

/* Run the simulation for `ms` of its time, or until the input has taken
 * RUN_WALL_MS of real time: every call is bounded, but a timer every
 * millisecond running to its budget each time is slow to fuzz. */
#define RUN_WALL_MS 1000

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void run(struct sim *s, uint64_t ms, uint64_t started)
{
    for (uint64_t t = 0; t < ms; t += 100) {
        if (wall_ms() - started > RUN_WALL_MS)
            return;
        sim_run(s, 100);
    }
}

static void put(struct node *nd, const char *key, const char *value)
{
    char why[128];
    metadata_put(node_metadata(nd), key, strlen(key), value,
                 value ? strlen(value) : 0, value == NULL, why, sizeof why,
                 NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t started = wall_ms();
    write_file(script_path, data, size);
    struct sim *s = fuzz_cluster();
    struct node *a = sim_node(s, FUZZ_A), *b = sim_node(s, FUZZ_B);
    struct config cfg;
    if (config_defaults(&cfg, "lan") ||
        config_list_add(&cfg.scripts, jail_path) ||
        config_list_add(&cfg.scripts, script_path))
        abort();
    cfg.script_budget = BUDGET;
    cfg.script_memory = MEMORY;
    struct lua_host *h = NULL;
    char err[512];
    if (lua_host_new(&cfg, &fuzz_logger, NULL, NULL, a, &h, err, sizeof err) ==
        0) {
        fuzz_touch(err, 0);
        struct hooks hooks = lua_host_hooks(h);
        node_set_hooks(a, &hooks);
        node_update_meta(a);   /* private_data */
        run(s, 1500, started); /* probes: acks, pings, timers */
        node_send(b, "a", "hello", 5, false);
        node_send(b, "a", "reliable", 8, true);
        put(a, "app/local", "1"); /* validate, on_metadata */
        put(b, "app/remote", "2");
        put(b, "app/one", NULL);
        node_broadcast(b, "rumor", 5);
        struct hs_addr addr = sim_addr(s, FUZZ_A);
        node_join(b, &addr, NULL, 1, NULL, NULL); /* a push/pull */
        run(s, 3000, started);
        node_leave(b, 500, NULL, NULL); /* on_member "leave" */
        run(s, 1500, started);
        node_set_hooks(a, NULL);
        lua_host_free(h);
    } else {
        fuzz_touch(err, strlen(err));
    }
    config_free(&cfg);
    fuzz_free(s);
    clean_dir();
    return 0;
}
