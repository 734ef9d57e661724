/* stats.h: every number a running agent shows, collected in one place.
 *
 * `hearsay stats` (control_node.c, as JSON) and the Prometheus endpoint
 * (metrics.c, as text) both walk the samples stats_collect() gives, so
 * the two always show the same numbers under names that map one to one:
 * a sample carries its JSON place (group and key) and its metric (name,
 * type, label). */
#ifndef HS_STATS_H
#define HS_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct agent;

/* STATS_GAUGE_US: a gauge whose samples are microseconds, shown to
 * Prometheus in seconds (its name ends in _seconds). */
enum stats_type {
    STATS_COUNTER,
    STATS_GAUGE,
    STATS_GAUGE_US
};

/* A metric of the Prometheus endpoint, named hearsay_<name>. */
struct stats_metric {
    const char *name; /* after "hearsay_": counters end in _total */
    enum stats_type type;
    const char *label; /* the name of its one label, or NULL */
    const char *help;  /* one sentence */
};

/* One number. The samples of one metric come one after another. */
struct stats_sample {
    const struct stats_metric *metric; /* NULL: in the JSON only */
    const char *group; /* the JSON object it sits in; NULL: top level */
    const char *key;   /* its JSON key; NULL: in the metrics only */
    const char *label; /* the label's value, when metric->label is set */
    uint64_t value;
    bool boolean;     /* JSON shows it as false (0) or true */
    const char *text; /* JSON shows this string instead (metric NULL) */
};

typedef void (*stats_fn)(void *ud, const struct stats_sample *s);

/* The numbers of a part of the agent that sits above this file: the
 * Prometheus endpoint's own (metrics_samples, metrics.h), which reads
 * stats and is counted here too. */
typedef void (*stats_part)(const struct agent *a, stats_fn fn, void *ud);

/* The metric of the endpoint's answers, by status code. */
extern const struct stats_metric stats_metrics_answers;

/* Call fn for every number of the agent, always in the same order; the
 * samples of `metrics` (if not NULL) come in their place. The agent's
 * node must be open. */
void stats_collect(const struct agent *a, stats_part metrics, stats_fn fn,
                   void *ud);

#endif
