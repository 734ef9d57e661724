/* http.c: libFuzzer target for the /metrics request parser
 * (metrics_head_end and metrics_judge, the code the endpoint runs).
 *
 * The first input byte is how many bytes each read brings (0 means 1);
 * the rest is what a client sends, up to the endpoint's buffer of
 * METRICS_REQUEST_MAX bytes. As the endpoint does, the head is looked
 * for after each read, and judged once found (or, when the client
 * stopped first, as it was). Whatever the pieces, the head must end where
 * a search of the whole finds it; a verdict must be one of the codes, and
 * 200 only for GET or HEAD of /metrics in origin or absolute form. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/agent/metrics.h"

/* What a 200 needs, checked apart from the parser: the method, and a
 * target whose path is /metrics. */
static bool looks_served(const char *p, size_t n, bool head)
{
    const char *method = head ? "HEAD " : "GET ";
    size_t m = strlen(method);
    if (n < m || memcmp(p, method, m) != 0)
        return false;
    const char *t = p + m, *end = memchr(t, ' ', n - m);
    if (end == NULL)
        return false;
    size_t tl = (size_t)(end - t);
    if (tl >= 7 && !strncasecmp(t, "http://", 7))
        t += 7, tl -= 7;
    else if (tl >= 8 && !strncasecmp(t, "https://", 8))
        t += 8, tl -= 8;
    else
        return tl >= 8 && memcmp(t, "/metrics", 8) == 0 &&
               (tl == 8 || t[8] == '?');
    size_t host = 0; /* the authority, then the path */
    while (host < tl && t[host] != '/' && t[host] != '?' && t[host] != '#')
        host++;
    if (host == 0 || host >= tl || t[host] != '/')
        return false;
    const char *slash = t + host;
    tl -= host;
    return tl >= 8 && memcmp(slash, "/metrics", 8) == 0 &&
           (tl == 8 || slash[8] == '?');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = data[0] ? data[0] : 1;
    data++;
    size--;
    size_t n = size < METRICS_REQUEST_MAX ? size : METRICS_REQUEST_MAX;
    /* A block of exactly n bytes, so that reading past it is caught. */
    char *req = malloc(n ? n : 1);
    if (req == NULL)
        abort();
    memcpy(req, data, n);

    size_t whole_scan = 0;
    size_t whole = metrics_head_end(req, n, &whole_scan);
    size_t len = 0, scan = 0, end = 0;
    while (end == 0 && len < n) {
        len = len + step < n ? len + step : n;
        end = metrics_head_end(req, len, &scan);
    }
    if (end != whole) {
        fprintf(stderr,
                "http: the head ends at %zu in pieces of %zu, at "
                "%zu in one\n",
                end, step, whole);
        abort();
    }
    bool head = false;
    /* Found: judged on what was read by then; else as the client left
     * it (a close before the end of the head). */
    int code = metrics_judge(req, end ? len : n, &head);
    if (code < 0 || code >= METRICS_CODE_COUNT) {
        fprintf(stderr, "http: verdict %d is no code\n", code);
        abort();
    }
    if (code == METRICS_200 && !looks_served(req, end ? len : n, head)) {
        fprintf(stderr, "http: 200 for a request that is not GET or HEAD "
                        "of /metrics\n");
        abort();
    }
    free(req);
    return 0;
}
