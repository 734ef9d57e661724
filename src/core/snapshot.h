/* snapshot.h: the files of the agent's data directory, and loading them
 * at start-up (agent/wal_snap.c writes them while the agent runs).
 *
 * DIR holds:
 *   hearsay-G.log      the log of generation G: every change the store
 *                      applied, one record each, appended and fsynced in
 *                      groups (a crash can leave a torn last record)
 *   hearsay-G-I.seg    piece I of the snapshot of generation G: entries
 *                      in key order, each piece written to I.tmp, fsynced
 *                      and renamed, so it is whole or absent
 *   hearsay.members    the members the node knew (tmp, fsync, rename)
 *   hearsay.snapshot   the single-file snapshot of earlier releases: read
 *                      (first) so that an upgrade keeps its data, then
 *                      removed by the first snapshot in pieces
 * G and I are 16 and 8 hex digits. Every file starts with a 16-byte
 * header (8-byte magic, 8-byte generation) followed by records:
 *   u32 length of what follows the CRC, u32 CRC-32 of the length's four
 *   bytes and what follows, u8 type, the payload.
 * Loading applies every entry as a last-writer-wins merge, so the order
 * of the files and any overlap between them never matters: a snapshot
 * taken while the store changes is correct once the log written since it
 * began is replayed on top.
 *
 * What is bad is reported and never applied: a segment, members or
 * legacy file that is cut short or fails its checksum is set aside as
 * NAME.corrupt-<time>; a log is cut at its first bad record (the bytes
 * cut are set aside when they are more than a record torn by a crash). */
#ifndef HS_SNAPSHOT_H
#define HS_SNAPSHOT_H

#include "base/buf.h"
#include "base/log.h"
#include "core/config.h"
#include "core/node.h"

#define SNAPSHOT_HEADER 16
#define SNAPSHOT_RECORD_HEAD 9 /* length, CRC, type */
/* A record holds one entry at most: a value of up to 1 GiB
 * (metadata_max_value's bound) and its key, origin and fields. */
#define SNAPSHOT_RECORD_MAX ((1u << 30) + (64u << 10))

enum {
    SNAPSHOT_REC_ENTRY = 1,   /* metadata_entry_encode */
    SNAPSHOT_REC_STATE = 2,   /* metadata_state_encode */
    SNAPSHOT_REC_END = 3,     /* a segment's last: u64 entries, its last key */
    SNAPSHOT_REC_MEMBERS = 4, /* msgpack [[name, "ip:port"], ...] */
};

enum {
    SNAPSHOT_LOG,
    SNAPSHOT_SEG,
    SNAPSHOT_MEMBERS
};

/* ===== Writing (the bytes; agent/wal*.c do the files) ===== */

/* The 16-byte header of a file of that kind. */
void snapshot_put_header(struct buf *b, int kind, uint64_t gen);
/* A record is begun (its head reserved), its payload appended to b, and
 * ended (length and CRC filled in). */
size_t snapshot_record_begin(struct buf *b, int type);
void snapshot_record_end(struct buf *b, size_t at);
/* The payload of a MEMBERS record: every member the node knows but
 * itself, whatever its state (after a whole cluster stops the others
 * are left or dead, and they are the ones to find again). */
int snapshot_members_encode(const struct node *nd, struct buf *out);

/* File names under dir. */
void snapshot_log_path(char *out, size_t n, const char *dir, uint64_t gen);
void snapshot_seg_path(char *out, size_t n, const char *dir, uint64_t gen,
                       uint32_t idx);
void snapshot_members_path(char *out, size_t n, const char *dir);
void snapshot_legacy_path(char *out, size_t n, const char *dir);

/* ===== Loading ===== */

/* A segment found at start-up, and the last key it holds (segments are
 * removed once a newer snapshot has covered that key). */
struct snapshot_seg {
    uint64_t gen;
    uint32_t idx;
    bool empty; /* no entries: covered by anything */
    uint16_t lastlen;
    char last[256 + 1];
    uint64_t bytes;
};

struct snapshot_log {
    uint64_t gen;
    uint64_t bytes;
};

/* What snapshot_open found: what agent/wal.c starts from. */
struct snapshot_files {
    struct snapshot_seg *segs;
    size_t nsegs;
    struct snapshot_log *logs;
    size_t nlogs;
    uint64_t max_gen;          /* of every file seen, bad ones included */
    uint64_t snapshot_bytes;   /* of the segments */
    uint64_t log_bytes;        /* of the logs, as loaded */
    bool legacy;               /* hearsay.snapshot was loaded */
    bool damaged;              /* something was cut or set aside */
    uint64_t entries, records; /* applied from segments, from logs */
};

/* Check, before anything is loaded, that DIR can be the data dir: it is
 * created (0700) when missing, and must be a directory in which a file
 * can be written (one is made and removed again). Returns 0, or an error
 * with a sentence in err ("data_dir DIR is not a writable directory"). */
int snapshot_check_dir(const char *dir, char *err, size_t errlen);

/* Load DIR into the node's (empty) store: the legacy snapshot, then the
 * segments, then the logs; the members it lists (as name/ip:port) are
 * added to `rejoin`. DIR is created (0700) when missing. Returns 0 (bad
 * files are reported and set aside, or cut), or an error with a sentence
 * in err when the directory is unusable or memory runs out. */
int snapshot_open(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, struct snapshot_files *out,
                  char *err, size_t errlen);
void snapshot_files_free(struct snapshot_files *f);
/* snapshot_open, keeping nothing of what it found. */
int snapshot_load(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, char *err, size_t errlen);

/* Key order of the store (metadata_scan's): bytewise, shorter first. */
int snapshot_key_cmp(const char *a, size_t al, const char *b, size_t bl);

#endif
