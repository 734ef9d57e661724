/* log.c: levelled logging. */
#include "base/log.h"

#include <stdio.h>
#include <strings.h>
#include <time.h>

static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

const char *hs_log_level_name(int level)
{
    if (level < 0 || level > HS_LOG_OFF)
        return "?";
    return names[level];
}

int hs_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (!strcasecmp(s, "debug") || !strcasecmp(s, "trace"))
        return HS_LOG_DEBUG;
    if (!strcasecmp(s, "info"))
        return HS_LOG_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return HS_LOG_WARN;
    if (!strcasecmp(s, "error") || !strcasecmp(s, "err"))
        return HS_LOG_ERROR;
    if (!strcasecmp(s, "off") || !strcasecmp(s, "none"))
        return HS_LOG_OFF;
    return -1;
}

void hs_log_write(const struct hs_logger *lg, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg) /* mark a cut line */
        msg[sizeof msg - 4] = msg[sizeof msg - 3] = msg[sizeof msg - 2] = '.';
    lg->sink(lg->ud, level, msg);
}

void hs_log_stderr_sink(void *ud, int level, const char *msg)
{
    FILE *f = ud ? ud : stderr;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(f, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
            tm.tm_sec, ts.tv_nsec / 1000000L, hs_log_level_name(level), msg);
    fflush(f);
}

const char *hs_log_quote(const void *p, size_t n, char *out, size_t outlen)
{
    const uint8_t *s = p;
    size_t o = 0;
    if (outlen == 0)
        return out;
    for (size_t i = 0; i < n; i++) {
        if (o + 5 >= outlen)
            break;
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            out[o++] = (char)s[i];
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", s[i]);
        }
    }
    out[o] = '\0';
    return out;
}
