/* cli_ops.c: the CLI's commands on the agent's own view of the cluster,
 * as serf's: monitor (the agent's log as it is written), force-leave (a
 * failed member marked left) and tags (this agent's Serf tags). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli/cli_int.h"

/* ===== monitor ===== */

/* A log line as the agent's stderr shows it: TIME [LEVEL] message. */
static void print_log_line(const cJSON *ev)
{
    printf("%s [%s] ", cli_str_field(ev, "time"), cli_str_field(ev, "level"));
    cli_put_safe(stdout, cli_str_field(ev, "message"));
    putchar('\n');
}

int run_monitor(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *req = cli_request("monitor");
    if (req && o->log_level)
        cJSON_AddStringToObject(req, "log_level", o->log_level);
    if (ask_stream(&o->q, req, o->json, print_log_line) == ASK_OK)
        return 0;
    return cli_fail(o, o->q.err);
}

/* ===== force-leave ===== */

int run_force_leave(struct opts *o, int argc, char **argv)
{
    (void)argc;
    cJSON *req = cli_request("force_leave"), *ans;
    if (req)
        cJSON_AddStringToObject(req, "name", argv[0]);
    int rc = ask(&o->q, req, &ans);
    if (rc == ASK_CONNECT)
        return cli_fail(o, o->q.err);
    if (rc) /* serf's wording */
        return cli_failf(o, "Error force leaving: %s", o->q.err + 7);
    cJSON_DeleteItemFromObjectCaseSensitive(ans, "ok");
    if (o->json)
        print_json(ans);
    /* as serf force-leave: nothing to say when it worked */
    cJSON_Delete(ans);
    return 0;
}

/* ===== tags ===== */

int run_tags(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *req = cli_request("tags"), *ans;
    cJSON *set = req ? cJSON_AddObjectToObject(req, "set") : NULL;
    cJSON *del = req ? cJSON_AddArrayToObject(req, "delete") : NULL;
    for (int i = 0; set && i < o->ntag_set; i++) {
        const char *kv = o->tag_set[i], *eq = strchr(kv, '=');
        char *key = hs_strndup(kv, (size_t)(eq - kv));
        if (key == NULL) {
            cJSON_Delete(req);
            return cli_fail(o, "Error: out of memory");
        }
        /* a key set twice: the last value, as serf's -set */
        cJSON_DeleteItemFromObjectCaseSensitive(set, key);
        cJSON_AddStringToObject(set, key, eq + 1);
        hs_free(key);
    }
    for (int i = 0; del && i < o->ntag_del; i++)
        cJSON_AddItemToArray(del, cJSON_CreateString(o->tag_del[i]));
    int rc = ask(&o->q, req, &ans);
    if (rc == ASK_CONNECT)
        return cli_fail(o, o->q.err);
    if (rc)
        return cli_failf(o, "Error setting tags: %s", o->q.err + 7);
    cJSON_DeleteItemFromObjectCaseSensitive(ans, "ok");
    if (o->json)
        print_json(ans);
    else
        printf("Successfully updated agent tags\n");
    cJSON_Delete(ans);
    return 0;
}
