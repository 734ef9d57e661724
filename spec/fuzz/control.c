/* control.c: libFuzzer target for the agent's control endpoint: the bytes
 * a client sends, through the endpoint's real reading, line framing,
 * JSON parsing, token check, slots and dispatch (control_fake_open and
 * control_fake_feed: a connection without a socket, whose answers are
 * kept), on node a of a fresh two-node cluster.
 *
 * The first input byte holds flags: 1 a control token ("tok") is
 * configured, 2 the client ends its stream after the bytes, 4 and 8 how
 * many bytes each read brings (all, 1, 7 or 64). The rest is what the
 * client sends: requests of every command (members, join, leave, pause,
 * resume, reload, version, stats, keys, kv_*), good or not. Between
 * reads the loop and the simulation run, so that joins (to the
 * simulated addresses; names resolve to nothing, without DNS), leaves,
 * keyring operations, long lists and watches complete. Every line the
 * endpoint answers must be a JSON object with "ok" (or a watch's
 * "event"), and everything must be freed once the endpoint closed. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <uv.h>

#include "../../src/agent/agent.h"
#include "../../src/agent/control.h"
#include "../../src/core/metadata.h"
#include "../../src/core/node.h"

#define ROUNDS 40    /* reads, each followed by loop and simulation */
#define ROUND_MS 100 /* simulated time per round: joins and leaves end */

/* The agent the endpoint serves: its loop lives for the whole run (a
 * uv_loop_t must not move), the rest is set afresh for each input. */
static struct agent a;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (uv_loop_init(&a.loop))
        abort();
    return 0;
}

/* Numeric addresses only: the target never asks DNS. */
static int resolve(uv_loop_t *l, const char *hostport, uint16_t port,
                   transport_resolve_cb cb, void *ud)
{
    struct hs_addr addr;
    (void)l;
    if (addr_parse(hostport, port, &addr))
        cb(ud, HS_ENOTFOUND, NULL, 0);
    else
        cb(ud, 0, &addr, 1);
    return 0;
}

static void on_left(void *ud, int err)
{
    struct agent *ag = ud;
    if (ag->ctl)
        control_left(ag->ctl, err);
}

/* main.c's leave, without the shutdown that follows it. */
static int leave(struct agent *ag)
{
    if (ag->leaving)
        return 0;
    ag->leaving = true;
    return node_leave(ag->setup.node, 500, on_left, ag);
}

static int reload(struct agent *ag, size_t *count, char *err, size_t errlen)
{
    static unsigned calls;
    (void)ag;
    *count = 0;
    if (calls++ % 2) { /* every other call fails, as a bad file would */
        snprintf(err, errlen, "reload fails here");
        return HS_EINVAL;
    }
    return 0;
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

/* Every answer line is a JSON object with "ok", or an event, or a log
 * line of a monitor. */
static void check_answers(const struct buf *out)
{
    if (out->len == 0)
        return;
    const char *p = (const char *)out->data, *end = p + out->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            fprintf(stderr, "control: an answer without its newline\n");
            abort();
        }
        cJSON *doc = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (!cJSON_IsObject(doc) ||
            !(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(doc, "ok")) ||
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "event")) ||
              cJSON_IsString(
                  cJSON_GetObjectItemCaseSensitive(doc, "message")))) {
            fprintf(stderr, "control: not an answer: %.*s\n",
                    (int)(nl - p > 300 ? 300 : nl - p), p);
            abort();
        }
        cJSON_Delete(doc);
        p = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = data[0];
    static const size_t steps[] = {SIZE_MAX, 1, 7, 64};
    size_t step = steps[(flags >> 2) & 3];
    data++;
    size--;

    struct sim *s = fuzz_cluster();
    fuzz_config(&a.cfg, "a");
    if (flags & 1)
        snprintf(a.cfg.control_token, sizeof a.cfg.control_token, "tok");
    a.log = fuzz_logger;
    a.setup.tp = NULL;
    a.met = NULL;
    a.lua = NULL;
    a.leaving = false;
    a.setup.node = sim_node(s, FUZZ_A);
    a.leave = leave;
    a.reload = reload;
    a.setup.joiner = (struct joiner){.loop = &a.loop,
                                     .nodep = &a.setup.node,
                                     .refusep = &a.leaving,
                                     .resolve = resolve};
    struct control *ctl = control_new(&a);
    if (ctl == NULL)
        abort();
    struct buf out = BUF_INIT;
    if (control_fake_open(ctl, &out))
        abort();

    size_t off = 0;
    bool closed = false, eof_sent = false;
    for (int round = 0; round < ROUNDS && !closed; round++) {
        while (!closed && off < size) {
            size_t n = size - off < step ? size - off : step;
            size_t took = control_fake_feed(ctl, &out, data + off, n, &closed);
            off += took;
            if (took < n)
                break; /* not reading now: a request is under way */
        }
        if (!closed && off == size && (flags & 2) && !eof_sent) {
            control_fake_feed(ctl, &out, NULL, 0, &closed);
            eof_sent = true;
        }
        uv_run(&a.loop, UV_RUN_NOWAIT);
        sim_run(s, ROUND_MS);
        /* a write to the store, for the watches */
        char why[64];
        metadata_put(node_metadata(sim_node(s, FUZZ_B)), "app/w", 5, "x", 1,
                     false, why, sizeof why, NULL);
    }

    bool done = false;
    control_close(ctl, on_closed, &done);
    while (!done)
        uv_run(&a.loop, UV_RUN_ONCE);
    check_answers(&out);
    buf_free(&out);
    /* As main.c shuts down: the node, then the joins that waited on it. */
    a.setup.node = NULL;
    sim_free(s);
    join_node_closed(&a.setup.joiner);
    while (uv_run(&a.loop, UV_RUN_NOWAIT))
        ;
    config_free(&a.cfg);
    fuzz_check_leaks("control_close");
    return 0;
}
