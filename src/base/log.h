/* log.h: levelled logging with one line per event and key=value fields.
 *
 * A logger belongs to whoever creates it (the agent, each simulated node).
 * HS_LOG checks the level before any formatting happens. */
#ifndef HS_LOG_H
#define HS_LOG_H

#include "base/hs.h"

#include <stdarg.h>

enum {
    HS_LOG_DEBUG = 0,
    HS_LOG_INFO = 1,
    HS_LOG_WARN = 2,
    HS_LOG_ERROR = 3,
    HS_LOG_OFF = 4
};

struct hs_logger {
    int level;
    /* Receives the formatted message (no timestamp, no newline). */
    void (*sink)(void *ud, int level, const char *msg);
    void *ud;
};

#define HS_LOG(lg, lvl, ...)                         \
    do {                                             \
        const struct hs_logger *lg_ = (lg);          \
        if (lg_ && lg_->sink && (lvl) >= lg_->level) \
            hs_log_write(lg_, (lvl), __VA_ARGS__);   \
    } while (0)

#define HS_DEBUG(lg, ...) HS_LOG(lg, HS_LOG_DEBUG, __VA_ARGS__)
#define HS_INFO(lg, ...) HS_LOG(lg, HS_LOG_INFO, __VA_ARGS__)
#define HS_WARN(lg, ...) HS_LOG(lg, HS_LOG_WARN, __VA_ARGS__)
#define HS_ERROR(lg, ...) HS_LOG(lg, HS_LOG_ERROR, __VA_ARGS__)

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void hs_log_write(const struct hs_logger *lg, int level, const char *fmt,
                  ...);

const char *hs_log_level_name(int level);
/* "debug", "info", "warn"/"warning", "error", "off" (any case); -1 if
 * unknown. */
int hs_log_level_parse(const char *s);

/* A sink for programs: "2026-11-21T10:00:00.123Z [INFO] msg" on stderr,
 * wall-clock UTC. `ud` may be a FILE * or NULL for stderr. */
void hs_log_stderr_sink(void *ud, int level, const char *msg);

/* Render bytes for a log line: printable ASCII as is, else \xNN, cut at
 * `max` input bytes. */
const char *hs_log_quote(const void *p, size_t n, char *out, size_t outlen);

#endif
