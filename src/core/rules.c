/* rules.c: memberlist's state rules applied to the node (state.go:
 * aliveNode, suspectNode, deadNode, refute, mergeState), which refine SWIM
 * section 4.2 (suspicion with incarnation numbers): news about a member
 * is applied only if its incarnation is newer (alive) or at least as new
 * (suspect, dead); a node accused itself answers with a higher
 * incarnation. The table they change is members.c's. */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

static void broadcast_alive(struct node *nd, struct member *m)
{
    struct buf b = BUF_INIT;
    members_write_alive(m, &b);
    node_queue_alive(nd, m, &b);
    buf_free(&b);
}

void members_refute(struct node *nd, uint32_t accused)
{
    struct member *me = nd->self;
    uint32_t inc = nd->incarnation + 1;
    if (accused >= inc)
        inc = accused + 1;
    nd->incarnation = inc;
    me->incarnation = inc;
    node_awareness(nd, 1);
    nd->stats.refutations++;
    broadcast_alive(nd, me);
}

void members_announce_self(struct node *nd)
{
    struct member *me = nd->self;
    nd->incarnation++;
    me->incarnation = nd->incarnation;
    if (members_set_meta(me, nd->meta.data, nd->meta.len) == 0)
        broadcast_alive(nd, me);
}

static bool bad_versions(const struct wire_raw *vsn)
{
    if (vsn->n < 3)
        return false;
    uint8_t pmin = vsn->p[0], pmax = vsn->p[1];
    return pmin == 0 || pmax == 0 || pmin > pmax;
}

void members_on_alive(struct node *nd, const struct wire_alive *a,
                      bool bootstrap, const struct hs_addr *from)
{
    char ab[HS_ADDRSTRLEN], qb[160];
    const char *name = (const char *)a->node.p;
    size_t nlen = a->node.n;
    bool is_self =
        nlen == nd->self_name_len && memcmp(name, nd->cfg.name, nlen) == 0;

    /* During a leave, an alive about us must not bring us back. */
    if (nd->phase >= PHASE_LEAVING && is_self)
        return;
    if (nlen == 0 || memchr(name, 0, nlen) || nlen > CONFIG_NAME_MAX) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "bad node name");
        return;
    }
    if (bad_versions(&a->vsn)) {
        HS_WARN(nd->log,
                "ignoring alive for %s: protocol versions %u..%u are wrong",
                hs_log_quote(name, nlen, qb, sizeof qb), a->vsn.p[0],
                a->vsn.p[1]);
        node_count_drop(nd, NODE_DROP_VERSION, NULL, "alive", "versions");
        return;
    }
    struct hs_addr addr;
    if (addr_from_raw(a->addr.p, a->addr.n, a->port, &addr)) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "address is not 4 or 16 bytes");
        return;
    }
    if (a->meta.n > WIRE_META_MAX) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "meta over 512 bytes");
        return;
    }

    /* AliveDelegate: the hook sees a candidate copy of the member. */
    if (nd->hooks.allow_member && !is_self) {
        if (a->vsn.n < 6) {
            HS_WARN(nd->log, "ignoring alive for %s: no protocol versions",
                    hs_log_quote(name, nlen, qb, sizeof qb));
            return;
        }
        char why[256] = "";
        struct member cand = {0};
        char namebuf[CONFIG_NAME_MAX + 1];
        memcpy(namebuf, name, nlen);
        namebuf[nlen] = '\0';
        cand.name = namebuf;
        cand.name_len = nlen;
        cand.addr = addr;
        cand.meta = (uint8_t *)(uintptr_t)a->meta.p;
        cand.meta_len = (uint16_t)a->meta.n;
        cand.incarnation = a->incarnation;
        cand.state = MEMBER_ALIVE;
        memcpy(cand.vsn, a->vsn.p, 6);
        if (nd->hooks.allow_member(nd->hooks.ud, &cand, why, sizeof why)) {
            /* Its alive comes back with every gossip round: the first
             * refusal is news, the others are counted. */
            nd->stats.members_refused++;
            if (node_note_name(nd, NOTE_REFUSED, name, nlen))
                HS_WARN(nd->log,
                        "member refused: member=%s addr=%s reason=%s "
                        "(logged once per member; further refusals are "
                        "counted in members_refused)",
                        namebuf, addr_format(&addr, ab, sizeof ab),
                        why[0] ? why : "refused by allow_member");
            else
                HS_DEBUG(nd->log,
                         "member refused: member=%s addr=%s "
                         "reason=%s",
                         namebuf, addr_format(&addr, ab, sizeof ab),
                         why[0] ? why : "refused by allow_member");
            return;
        }
    }

    struct member *m = members_find(&nd->members, name, nlen);
    bool updates_addr = false;
    if (m == NULL) {
        if (!node_ip_allowed(nd, &addr)) {
            HS_WARN(nd->log,
                    "rejected member %s: %s is outside "
                    "cidrs_allowed",
                    hs_log_quote(name, nlen, qb, sizeof qb),
                    addr_ip_format(&addr, ab, sizeof ab));
            node_count_drop(nd, NODE_DROP_CIDR, &addr, "alive",
                            "address not allowed");
            return;
        }
        if (!is_self &&
            !members_admit(&nd->members, from, node_now(nd),
                           nd->cfg.max_new_members, nd->cfg.new_member_rate)) {
            char detail[96];
            snprintf(detail, sizeof detail,
                     "max_new_members (%d) then new_member_rate (%d/s) "
                     "used",
                     nd->cfg.max_new_members, nd->cfg.new_member_rate);
            node_refuse(nd, NODE_DROP_MEMBER_LIMIT, from, "new member", detail);
            return;
        }
        if (members_add(&nd->members, name, nlen, &addr, node_rand(nd), &m))
            return;
        if (is_self)
            nd->self = m; /* before the join event: its hooks may ask */
        if (a->vsn.n >= 6)
            memcpy(m->vsn, a->vsn.p, 6);
    } else if (!addr_eq(&m->addr, &addr)) {
        if (!node_ip_allowed(nd, &addr)) {
            node_count_drop(nd, NODE_DROP_CIDR, &addr, "alive",
                            "address not allowed");
            return;
        }
        uint64_t now = node_now(nd);
        bool reclaim = nd->cfg.dead_node_reclaim_time > 0 &&
                       now - m->state_change > nd->cfg.dead_node_reclaim_time;
        if (m->state == MEMBER_LEFT || (m->state == MEMBER_DEAD && reclaim)) {
            char ob[HS_ADDRSTRLEN];
            HS_INFO(nd->log,
                    "member address changed: member=%s old=%s "
                    "new=%s",
                    m->name, addr_format(&m->addr, ob, sizeof ob),
                    addr_format(&addr, ab, sizeof ab));
            updates_addr = true;
        } else {
            /* memberlist logs every claim; one ERROR per name is
             * enough, the rest are counted. */
            char ob[HS_ADDRSTRLEN];
            nd->stats.conflicts++;
            addr_format(&m->addr, ob, sizeof ob);
            addr_format(&addr, ab, sizeof ab);
            if (!node_note_name(nd, NOTE_CONFLICT, name, nlen))
                HS_DEBUG(nd->log,
                         "name conflict: member=%s known=%s claimed=%s "
                         "state=%s",
                         m->name, ob, ab, member_state_name(m->state));
            else if (is_self)
                HS_ERROR(nd->log,
                         "name conflict: another node claims our name: "
                         "member=%s ours=%s claimed=%s (logged once; "
                         "further claims are counted in conflicts)",
                         m->name, ob, ab);
            else
                HS_ERROR(nd->log,
                         "name conflict: member=%s known=%s claimed=%s "
                         "state=%s (logged once per name; further claims "
                         "are counted in conflicts)",
                         m->name, ob, ab, member_state_name(m->state));
            if (nd->hooks.on_conflict) {
                struct member other = *m;
                other.addr = addr;
                other.meta = (uint8_t *)(uintptr_t)a->meta.p;
                other.meta_len = (uint16_t)a->meta.n;
                other.incarnation = a->incarnation;
                other.suspicion = NULL;
                other.bcast = NULL;
                if (a->vsn.n >= 6)
                    memcpy(other.vsn, a->vsn.p, 6);
                nd->hooks.on_conflict(nd->hooks.ud, m, &other);
            }
            return;
        }
    }

    if (!is_self && !updates_addr && a->incarnation <= m->incarnation)
        return;
    if (is_self && a->incarnation < m->incarnation)
        return;

    suspicion_cancel(nd, m);
    int old_state = m->state;
    bool meta_changed = !member_meta_eq(m, &a->meta);

    if (!bootstrap && is_self) {
        uint8_t vsn[6];
        node_vsn(nd, vsn);
        if (a->incarnation == m->incarnation && !meta_changed &&
            a->vsn.n == 6 && memcmp(a->vsn.p, vsn, 6) == 0)
            return;
        members_refute(nd, a->incarnation);
        HS_WARN(nd->log,
                "refuting an alive message about us: inc=%u "
                "now=%u",
                a->incarnation, nd->incarnation);
        return;
    }

    if (a->vsn.n >= 6)
        memcpy(m->vsn, a->vsn.p, 6);
    m->incarnation = a->incarnation;
    if (meta_changed && members_set_meta(m, a->meta.p, a->meta.n))
        meta_changed = false;
    m->addr = addr;
    if (m->state != MEMBER_ALIVE)
        members_set_state(&nd->members, m, MEMBER_ALIVE, node_now(nd));
    /* Re-gossip the news (encoded from the updated member). */
    broadcast_alive(nd, m);

    if (old_state == MEMBER_DEAD || old_state == MEMBER_LEFT) {
        node_unnote_name(nd, m->name, m->name_len);
        if (!is_self)
            node_member_back(nd, m);
        if (!is_self)
            HS_INFO(nd->log, "member joined: member=%s addr=%s inc=%u", m->name,
                    addr_format(&m->addr, ab, sizeof ab), m->incarnation);
        node_event(nd, HOOK_JOIN, m);
    } else {
        if (old_state == MEMBER_SUSPECT) {
            HS_INFO(nd->log, "member alive again: member=%s inc=%u", m->name,
                    m->incarnation);
            node_event(nd, HOOK_ALIVE, m);
        }
        if (meta_changed) {
            HS_INFO(nd->log,
                    "member updated: member=%s inc=%u meta=%u "
                    "bytes",
                    m->name, m->incarnation, m->meta_len);
            node_event(nd, HOOK_UPDATE, m);
        }
    }
}

void members_on_suspect(struct node *nd, const struct wire_suspect *s)
{
    struct member *m =
        members_find(&nd->members, (const char *)s->node.p, s->node.n);
    if (m == NULL || s->incarnation < m->incarnation)
        return;
    uint64_t now = node_now(nd);
    if (m->suspicion) {
        if (suspicion_confirm(m->suspicion, (const char *)s->from.p, s->from.n,
                              now)) {
            struct buf b = BUF_INIT;
            wire_put_suspect(&b, s);
            node_queue_broadcast(nd, m, &b, false);
            buf_free(&b);
        }
        return;
    }
    if (m->state != MEMBER_ALIVE)
        return;
    char qb[160];
    if (m == nd->self) {
        members_refute(nd, s->incarnation);
        HS_WARN(nd->log, "refuting a suspicion about us: from=%s inc=%u",
                hs_log_quote(s->from.p, s->from.n, qb, sizeof qb),
                nd->incarnation);
        return;
    }
    struct buf b = BUF_INIT;
    wire_put_suspect(&b, s);
    node_queue_broadcast(nd, m, &b, false);
    buf_free(&b);

    m->incarnation = s->incarnation;
    members_set_state(&nd->members, m, MEMBER_SUSPECT, now);

    /* Lifeguard: expect k independent confirmations, two probe periods
     * short of the suspicion multiplier; none if too few nodes. */
    size_t n = members_count(&nd->members);
    int k = nd->cfg.suspicion_mult - 2;
    if ((long)n - 2 < k)
        k = 0;
    uint64_t min =
        suspicion_timeout(nd->cfg.suspicion_mult, n, nd->cfg.probe_interval);
    uint64_t max = (uint64_t)nd->cfg.suspicion_max_timeout_mult * min;
    suspicion_start(nd, m, (const char *)s->from.p, s->from.n, k, min, max,
                    now);
    HS_INFO(nd->log, "member suspect: member=%s inc=%u from=%s", m->name,
            m->incarnation, hs_log_quote(s->from.p, s->from.n, qb, sizeof qb));
    node_event(nd, HOOK_SUSPECT, m);
}

void members_on_dead(struct node *nd, const struct wire_suspect *d)
{
    struct member *m =
        members_find(&nd->members, (const char *)d->node.p, d->node.n);
    if (m == NULL || d->incarnation < m->incarnation)
        return;
    suspicion_cancel(nd, m);
    if (member_dead_or_left(m))
        return;
    char qb[160];
    struct buf b = BUF_INIT;
    if (m == nd->self) {
        if (nd->phase < PHASE_LEAVING) {
            /* A notice we sent ourselves (from = our name) is our own
             * graceful leave of an earlier run: peers remember it and
             * tell us when we are back, and refuting it is the way
             * back. Anyone else declared us dead. */
            bool ours = d->from.n == d->node.n &&
                        memcmp(d->from.p, d->node.p, d->node.n) == 0;
            members_refute(nd, d->incarnation);
            if (ours)
                HS_INFO(nd->log,
                        "refuting the record of our earlier leave: "
                        "inc=%u (back after a graceful leave)",
                        nd->incarnation);
            else
                HS_WARN(nd->log,
                        "refuting a death notice about us: from=%s "
                        "inc=%u",
                        hs_log_quote(d->from.p, d->from.n, qb, sizeof qb),
                        nd->incarnation);
            return;
        }
        /* Our own leave: gossip it and tell the waiter when done. */
        wire_put_dead(&b, d);
        node_queue_broadcast(nd, m, &b, true);
    } else {
        wire_put_dead(&b, d);
        node_queue_broadcast(nd, m, &b, false);
    }
    buf_free(&b);

    m->incarnation = d->incarnation;
    bool left =
        d->node.n == d->from.n && memcmp(d->node.p, d->from.p, d->node.n) == 0;
    members_set_state(&nd->members, m, left ? MEMBER_LEFT : MEMBER_DEAD,
                      node_now(nd));
    if (m != nd->self) {
        if (left) {
            HS_INFO(nd->log, "member left: member=%s inc=%u", m->name,
                    m->incarnation);
        } else {
            nd->stats.deaths++;
            node_member_failed(nd, m);
            HS_INFO(nd->log, "member dead: member=%s inc=%u from=%s", m->name,
                    m->incarnation,
                    hs_log_quote(d->from.p, d->from.n, qb, sizeof qb));
        }
    }
    node_event(nd, left ? HOOK_LEFT : HOOK_DEAD, m);
}

int node_force_leave(struct node *nd, const char *name, size_t len)
{
    if (nd->phase != PHASE_RUNNING)
        return HS_ESTATE;
    struct member *m = members_find(&nd->members, name, len);
    if (m == NULL)
        return HS_ENOTFOUND;
    if (m == nd->self)
        return HS_EINVAL;
    if (m->state == MEMBER_LEFT)
        return 0;
    if (m->state == MEMBER_ALIVE)
        return HS_EREFUSED;
    /* A dead message from the member itself is its leave (memberlist's
     * deadNode): those that see it alive or suspect take it, those that
     * see it dead already keep it dead until they reap it. */
    struct wire_suspect d = {m->incarnation, wire_raw(m->name, m->name_len),
                             wire_raw(m->name, m->name_len)};
    const char *was = member_state_name(m->state);
    struct buf b = BUF_INIT;
    suspicion_cancel(nd, m);
    wire_put_dead(&b, &d);
    node_queue_broadcast(nd, m, &b, false);
    buf_free(&b);
    members_set_state(&nd->members, m, MEMBER_LEFT, node_now(nd));
    node_member_back(nd, m); /* no more reconnection attempts */
    HS_INFO(nd->log, "member forced to leave: member=%s inc=%u was=%s", m->name,
            m->incarnation, was);
    node_event(nd, HOOK_LEFT, m);
    return 0;
}

void members_merge(struct node *nd, const struct wire_node_state *states,
                   size_t n, const struct hs_addr *from)
{
    for (size_t i = 0; i < n; i++) {
        const struct wire_node_state *r = &states[i];
        switch (r->state) {
        case WIRE_STATE_ALIVE: {
            struct wire_alive a = {r->incarnation, r->name, r->addr,
                                   r->port,        r->meta, r->vsn};
            members_on_alive(nd, &a, false, from);
            break;
        }
        case WIRE_STATE_LEFT: {
            struct wire_suspect d = {r->incarnation, r->name, r->name};
            members_on_dead(nd, &d);
            break;
        }
        case WIRE_STATE_DEAD:
        case WIRE_STATE_SUSPECT: {
            /* A remote "dead" never kills directly: suspect instead. */
            struct wire_suspect s = {r->incarnation, r->name,
                                     wire_raw(nd->cfg.name, nd->self_name_len)};
            members_on_suspect(nd, &s);
            break;
        }
        default:
            break;
        }
    }
}

static size_t rand_n(void *ud, size_t n)
{
    return node_rand_n(ud, n);
}

void members_reset(struct node *nd)
{
    struct members *t = &nd->members;
    uint64_t now = node_now(nd);
    for (size_t i = 0; i < t->n;) {
        struct member *m = t->order[i];
        if (m != nd->self && member_dead_or_left(m) &&
            now - m->state_change > nd->cfg.gossip_to_the_dead_time) {
            HS_DEBUG(nd->log, "member removed: member=%s state=%s", m->name,
                     member_state_name(m->state));
            probe_forget(nd, m);
            suspicion_cancel(nd, m);
            bqueue_disown(&nd->queue, &m->bcast);
            members_remove(t, m); /* moves the last member to i */
            continue;
        }
        i++;
    }
    members_shuffle(t, rand_n, nd);
}

/* One node's spoken versions against the cluster's common range. */
