/* control_log.c: the agent's log as the control endpoint streams it
 * (`hearsay monitor`, serf monitor): a tap on the agent's logger that
 * keeps the last TAP_LINES lines, and the monitor command, which sends a
 * connection those lines and every new one at its level or above.
 *
 * The tap takes every line the logger lets through, from any thread (the
 * watchdog's logs too), under a mutex, then passes it to the sink it
 * replaced; the loop thread sends the lines to the monitors. The ring is
 * the only buffer: a monitor that does not read falls behind, at most
 * MONITOR_BACKLOG_MAX bytes of its lines wait in its socket's queue, and
 * the lines it misses are counted and reported to it (never kept), so a
 * slow client costs the agent nothing more.
 *
 * While a monitor asks for a level below the agent's log_level, the
 * logger's level is lowered to it, and the tap passes on to the agent's
 * own sink only what log_level lets through. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "agent/agent.h"
#include "agent/control_int.h"

#define TAP_LINES 512    /* lines kept, as serf's monitor replays */
#define TAP_MSG_MAX 1024 /* hs_log_write's longest message */
/* A monitor whose socket holds this much unsent stops taking lines until
 * it drains; the lines it misses meanwhile are counted. */
#define MONITOR_BACKLOG_MAX (256u << 10)

struct tap_line {
    uint64_t ms; /* wall clock, ms since 1970 */
    int level;
    size_t len;
    char msg[TAP_MSG_MAX];
};

/* One tap a process: the watchdog's thread may log through it until it
 * is joined, after the control endpoint has gone, so it never goes. */
static struct {
    uv_mutex_t mu;
    struct hs_logger orig; /* the sink and level the tap replaced */
    struct hs_logger *lg;  /* the agent's logger, wrapped */
    int applied;           /* the level the tap last gave it */
    struct control *ctl;   /* the endpoint to wake, or NULL */
    bool wake;             /* it has monitors: wake it for each line */
    uint64_t next;         /* the number of the next line */
    struct tap_line ring[TAP_LINES];
} tap;
static uv_once_t tap_once = UV_ONCE_INIT;

static void tap_init(void)
{
    if (uv_mutex_init(&tap.mu))
        abort();
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tap_sink(void *ud, int level, const char *msg)
{
    uint64_t ms = wall_ms();
    (void)ud;
    uv_mutex_lock(&tap.mu);
    struct tap_line *l = &tap.ring[tap.next % TAP_LINES];
    l->ms = ms;
    l->level = level;
    l->len = strnlen(msg, TAP_MSG_MAX - 1);
    memcpy(l->msg, msg, l->len);
    l->msg[l->len] = '\0';
    tap.next++;
    if (tap.ctl && tap.wake)
        uv_async_send(&tap.ctl->log_async);
    struct hs_logger orig = tap.orig;
    /* A level set since by someone else (a reload) is the agent's. */
    if (tap.lg && tap.lg->level != tap.applied)
        orig.level = tap.lg->level;
    uv_mutex_unlock(&tap.mu);
    if (orig.sink && level >= orig.level)
        orig.sink(orig.ud, level, msg);
}

/* The logger's level: the lowest that the agent or a monitor wants. A
 * level someone else set since the tap last did is the agent's own. */
static void set_level(struct control *ctl)
{
    struct hs_logger *lg = &ctl->a->log;
    uv_mutex_lock(&tap.mu);
    if (lg->level != tap.applied)
        tap.orig.level = lg->level;
    int level = tap.orig.level;
    for (struct conn *k = ctl->monitors; k; k = k->mnext)
        level = HS_MIN(level, k->mon_level);
    lg->level = tap.applied = level;
    tap.wake = ctl->monitors != NULL;
    uv_mutex_unlock(&tap.mu);
}

static void on_log_async(uv_async_t *h)
{
    struct control *ctl = h->data;
    for (struct conn *k = ctl->monitors, *next; k; k = next) {
        next = k->mnext;
        ctl_monitor_more(k);
    }
}

void ctl_log_attach(struct control *ctl)
{
    struct hs_logger *lg = &ctl->a->log;
    uv_once(&tap_once, tap_init);
    uv_async_init(&ctl->a->loop, &ctl->log_async, on_log_async);
    ctl->log_async.data = ctl;
    uv_mutex_lock(&tap.mu);
    if (lg->sink != tap_sink) { /* the agent's logger, as it was set up */
        tap.orig = *lg;
        tap.next = 0;
        lg->sink = tap_sink;
        lg->ud = NULL;
    }
    tap.lg = lg;
    tap.applied = lg->level;
    tap.ctl = ctl;
    uv_mutex_unlock(&tap.mu);
}

void ctl_log_detach(struct control *ctl)
{
    uv_mutex_lock(&tap.mu);
    if (tap.ctl == ctl) {
        tap.ctl = NULL;
        tap.wake = false;
    }
    /* The tap stays in place: only the level goes back. */
    if (ctl->a->log.level == tap.applied)
        ctl->a->log.level = tap.applied = tap.orig.level;
    uv_mutex_unlock(&tap.mu);
}

/* ===== hearsay monitor ===== */

static const char *level_word(int level)
{
    static const char *const words[] = {"debug", "info", "warn", "error"};
    return level >= 0 && level < 4 ? words[level] : "off";
}

/* One line as the monitor sends it; NULL when out of memory. */
static char *line_json(uint64_t ms, int level, const char *msg, size_t n,
                       uint64_t dropped)
{
    char when[80];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    cJSON *o = cJSON_CreateObject();
    bool ok =
        o && cJSON_AddStringToObject(o, "time", when) &&
        cJSON_AddStringToObject(o, "level", hs_log_level_name(level)) &&
        ctl_add_bytes(o, "message", (const uint8_t *)msg, n) &&
        (!dropped || cJSON_AddNumberToObject(o, "dropped", (double)dropped));
    char *s_out = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s_out;
}

static bool send_line(struct conn *c, char *s)
{
    if (s == NULL) {
        ctl_reply_error(c, "out of memory: the monitor stopped");
        ctl_finish(c);
        return false;
    }
    ctl_send_bytes(c, s, strlen(s), true);
    cJSON_free(s);
    return !c->closing;
}

/* Send c the lines it has not had, while its socket keeps up. */
void ctl_monitor_more(struct conn *c)
{
    while (c->monitoring && !c->closing &&
           ctl_backlog(c) <= MONITOR_BACKLOG_MAX) {
        struct tap_line l;
        bool have = false;
        uv_mutex_lock(&tap.mu);
        uint64_t oldest = tap.next > TAP_LINES ? tap.next - TAP_LINES : 0;
        if (c->mon_next < oldest) { /* overwritten before it was sent */
            c->mon_dropped += oldest - c->mon_next;
            c->mon_next = oldest;
        }
        while (!have && c->mon_next < tap.next) {
            const struct tap_line *t = &tap.ring[c->mon_next++ % TAP_LINES];
            if (t->level < c->mon_level)
                continue;
            l.ms = t->ms;
            l.level = t->level;
            l.len = t->len;
            memcpy(l.msg, t->msg, t->len + 1);
            have = true;
        }
        uv_mutex_unlock(&tap.mu);
        /* Sent with the lock released: sending may log. */
        if (c->mon_dropped) {
            char msg[160];
            uint64_t d = c->mon_dropped;
            int n = snprintf(msg, sizeof msg,
                             "monitor: %llu log lines dropped: this monitor "
                             "did not read them in time",
                             (unsigned long long)d);
            c->mon_dropped = 0;
            if (!send_line(
                    c, line_json(wall_ms(), HS_LOG_WARN, msg, (size_t)n, d)))
                return;
        }
        if (!have)
            return;
        if (!send_line(c, line_json(l.ms, l.level, l.msg, l.len, 0)))
            return;
    }
}

void ctl_unmonitor(struct conn *c)
{
    if (!c->monitoring)
        return;
    c->monitoring = false;
    if (c->mprev)
        c->mprev->mnext = c->mnext;
    else
        c->ctl->monitors = c->mnext;
    if (c->mnext)
        c->mnext->mprev = c->mprev;
    c->mprev = c->mnext = NULL;
    set_level(c->ctl);
}

void ctl_cmd_monitor(struct conn *c, const cJSON *req)
{
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(req, "log_level");
    int level = HS_LOG_INFO; /* serf monitor's default */
    if (lv && !cJSON_IsNull(lv)) {
        level = cJSON_IsString(lv) ? hs_log_level_parse(lv->valuestring) : -1;
        if (level < 0 || level >= HS_LOG_OFF) {
            ctl_reply_error(c, "log_level: expected debug, info, warn or "
                               "error");
            return;
        }
    }
    cJSON *obj = ctl_ok_answer();
    if (obj)
        cJSON_AddStringToObject(obj, "log_level", level_word(level));
    ctl_reply(c, obj);
    if (c->closing)
        return;
    struct control *ctl = c->ctl;
    c->monitoring = true;
    c->busy = true; /* no more requests: log lines only */
    c->mon_level = level;
    uv_mutex_lock(&tap.mu);
    c->mon_next = tap.next > TAP_LINES ? tap.next - TAP_LINES : 0;
    uv_mutex_unlock(&tap.mu);
    c->mnext = ctl->monitors;
    if (c->mnext)
        c->mnext->mprev = c;
    ctl->monitors = c;
    set_level(ctl);
    ctl_monitor_more(c); /* the lines kept, then the new ones */
}
