/* hooks.h: how the protocol core reaches user code (memberlist's
 * delegates). Every hook is optional: a NULL pointer means the documented
 * default. Hooks run on the loop thread and must return quickly; the Lua
 * binding layer enforces a budget on the scripts behind them.
 *
 * Members are lent for the duration of the call: a hook that wants to keep
 * anything copies it. */
#ifndef HS_HOOKS_H
#define HS_HOOKS_H

#include "base/buf.h"

struct member;
struct meta_change;

/* Membership events seen by on_member. */
enum hook_event {
    HOOK_JOIN,    /* new member, or back from dead/left (NotifyJoin) */
    HOOK_UPDATE,  /* its private data changed (NotifyUpdate) */
    HOOK_SUSPECT, /* suspected of failure */
    HOOK_ALIVE,   /* a suspicion was cleared (refuted) */
    HOOK_DEAD,    /* declared failed (NotifyLeave) */
    HOOK_LEFT,    /* left gracefully (NotifyLeave) */
    HOOK_EVENT_COUNT
};

const char *hook_event_name(int event);

struct hooks {
    void *ud;
    /* NodeMeta: write this node's private data (at most `limit` bytes)
     * to out. Return 0, or an error to keep the previous value. */
    int (*node_meta)(void *ud, size_t limit, struct buf *out);
    /* EventDelegate, plus suspect/alive. */
    void (*on_member)(void *ud, int event, const struct member *m);
    /* NotifyMsg: a user message arrived by gossip or stream. `from` is
     * the sending node's name when a hearsay node sent it (the hearsay
     * envelope, wire.h), else NULL (a foreign payload, given raw). */
    void (*on_message)(void *ud, const char *from, size_t fromlen,
                       const uint8_t *p, size_t n);
    /* AliveDelegate: return 0 to accept the member, or an error with a
     * reason in `why` (at most whylen bytes) to ignore the message. */
    int (*allow_member)(void *ud, const struct member *candidate, char *why,
                        size_t whylen);
    /* MergeDelegate: a join would merge these members; return 0 to
     * accept, or an error with a reason to refuse the join. */
    int (*allow_merge)(void *ud, const struct member *const *ms, size_t n,
                       char *why, size_t whylen);
    /* ConflictDelegate: same name, other address. */
    void (*on_conflict)(void *ud, const struct member *existing,
                        const struct member *other);
    /* PingDelegate. */
    int (*ack_payload)(void *ud, struct buf *out);
    void (*on_ping)(void *ud, const struct member *m, uint64_t rtt_ms,
                    const uint8_t *payload, size_t n);
    /* Cluster metadata (metadata.h): validate_metadata returns 0 to accept
     * a write, local or remote, or an error with a reason in `why`;
     * on_metadata hears every write applied. */
    int (*validate_metadata)(void *ud, const struct meta_change *c, char *why,
                             size_t whylen);
    void (*on_metadata)(void *ud, const struct meta_change *c);
    /* Delegate.LocalState / MergeRemoteState (push/pull user state). */
    int (*local_state)(void *ud, bool join, struct buf *out);
    void (*merge_remote_state)(void *ud, const uint8_t *p, size_t n, bool join);
};

#endif
