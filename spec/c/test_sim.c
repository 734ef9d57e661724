/* test_sim.c: the protocol core end to end on the simulated network. */
#include "test.h"

#include "../../src/io/sim.h"

static int verbose;

static void sink(void *ud, const char *node, uint64_t now, int level,
                 const char *msg)
{
    (void)ud;
    if (verbose)
        fprintf(stderr, "%8.3f %-4s %-5s %s\n", (double)now / 1000.0, node,
                hs_log_level_name(level), msg);
}

static struct sim *cluster(size_t n, const char *profile)
{
    struct sim *s;
    sim_new(42, &s);
    sim_set_log(s, verbose ? HS_LOG_DEBUG : HS_LOG_INFO, sink, NULL);
    for (size_t i = 0; i < n; i++) {
        struct config c;
        config_defaults(&c, profile);
        snprintf(c.name, sizeof c.name, "n%zu", i);
        size_t idx;
        CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
        config_free(&c);
    }
    struct hs_addr seed = sim_addr(s, 0);
    for (size_t i = 1; i < n; i++)
        CHECK_EQ(node_join(sim_node(s, i), &seed, NULL, 1, NULL, NULL), 0);
    return s;
}

/* How many nodes see member `name` in `state`. */
static size_t seen(struct sim *s, const char *name, int state)
{
    size_t c = 0;
    for (size_t i = 0; i < sim_count(s); i++) {
        struct node *nd = sim_node(s, i);
        if (nd == NULL)
            continue;
        const struct member *m =
            members_find(node_members(nd), name, strlen(name));
        if (m && m->state == state)
            c++;
    }
    return c;
}

static void test_join_and_fail(void)
{
    struct sim *s = cluster(5, "lan");
    sim_run(s, 5000);
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(seen(s, sim_name(s, i), MEMBER_ALIVE), 5);
    /* Crash n3: everyone else suspects, then declares it dead. */
    sim_kill(s, 3);
    sim_run(s, 30000);
    CHECK_EQ(seen(s, "n3", MEMBER_DEAD), 4);
    /* Restart under the same name: it refutes the old death and comes
     * back everywhere. */
    CHECK_EQ(sim_restart(s, 3), 0);
    struct hs_addr seed = sim_addr(s, 0);
    CHECK_EQ(node_join(sim_node(s, 3), &seed, NULL, 1, NULL, NULL), 0);
    sim_run(s, 10000);
    CHECK_EQ(seen(s, "n3", MEMBER_ALIVE), 5);
    sim_free(s);
}

static void done_leaving(void *ud, int err)
{
    *(int *)ud = err + 1;
}

static void test_leave(void)
{
    struct sim *s = cluster(4, "lan");
    sim_run(s, 5000);
    int left = 0;
    CHECK_EQ(node_leave(sim_node(s, 2), 5000, done_leaving, &left), 0);
    sim_run(s, 5000);
    CHECK_EQ(left, 1);
    CHECK_EQ(seen(s, "n2", MEMBER_LEFT), 4);
    sim_free(s);
}

int main(int argc, char **argv)
{
    (void)argv;
    verbose = argc > 1;
    RUN(test_join_and_fail);
    RUN(test_leave);
    return test_report("sim");
}
