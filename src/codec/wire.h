/* wire.h: memberlist's wire protocol: message types, bodies, framing.
 *
 * Pure: bytes in, structs out, no clock, no member table, no I/O. Encoders
 * emit exactly what memberlist 0.2.2 emits (sorted map keys, raw strings,
 * smallest unsigned integers; shared reference sections 2-5); decoders
 * accept what Go accepts (any key order, unknown keys skipped, missing keys
 * zero, a struct sent as an array in Go declaration order, bin for
 * strings, an array of small integers for []byte).
 *
 * Decoded structs hold views (struct wire_raw) into the input or into the
 * caller's struct wire_scratch: both must outlive the struct. */
#ifndef HS_WIRE_H
#define HS_WIRE_H

#include "base/buf.h"
#include "codec/mp.h"

/* Message type: the first byte of every message. */
enum wire_type {
    WIRE_PING = 0,
    WIRE_INDIRECT_PING = 1,
    WIRE_ACK = 2,
    WIRE_SUSPECT = 3,
    WIRE_ALIVE = 4,
    WIRE_DEAD = 5,
    WIRE_PUSHPULL = 6,
    WIRE_COMPOUND = 7,
    WIRE_USER = 8,
    WIRE_COMPRESS = 9,
    WIRE_ENCRYPT = 10,
    WIRE_NACK = 11,
    WIRE_HASCRC = 12,
    WIRE_ERR = 13,
    WIRE_TYPE_COUNT = 14,
    WIRE_LABEL = 244
};

const char *wire_type_name(int type);

/* memberlist protocol versions we speak (section 11). */
#define WIRE_PROTO_MIN 1
#define WIRE_PROTO_MAX 5
/* Node states in push/pull (NodeStateType). */
enum {
    WIRE_STATE_ALIVE,
    WIRE_STATE_SUSPECT,
    WIRE_STATE_DEAD,
    WIRE_STATE_LEFT
};

#define WIRE_META_MAX 512        /* MetaMaxSize */
#define WIRE_COMPOUND_MAX 255    /* parts per compound message */
#define WIRE_COMPOUND_OVERHEAD 2 /* per part: its u16 length */
#define WIRE_COMPOUND_HEADER 2   /* type byte + count byte */
#define WIRE_CRC_OVERHEAD 5

/* A string or []byte field: a view into the input or scratch space.
 * `set` is false for nil or a missing key (encoded as nil, or left out
 * when the field is omitempty). */
struct wire_raw {
    const uint8_t *p;
    uint32_t n;
    bool set;
};

static inline struct wire_raw wire_raw(const void *p, size_t n)
{
    return (struct wire_raw){p, (uint32_t)n, true};
}
struct wire_raw wire_str(const char *s);
/* Compare a raw field with a C string. */
bool wire_raw_eq(struct wire_raw r, const char *s);

/* Room for []byte fields sent as arrays of integers (the caller's
 * memory). WIRE_SCRATCH declares one on the stack. */
struct wire_scratch {
    uint8_t *p;
    size_t cap;
    size_t used;
};
#define WIRE_SCRATCH(var)    \
    uint8_t var##_mem[1024]; \
    struct wire_scratch var = {var##_mem, sizeof var##_mem, 0}

/* ===== Bodies (section 4) ===== */

struct wire_ping {
    uint32_t seq;
    struct wire_raw node;
    struct wire_raw source_addr; /* omitempty */
    uint16_t source_port;        /* omitempty */
    struct wire_raw source_node; /* omitempty */
};

struct wire_indirect_ping {
    uint32_t seq;
    struct wire_raw target;
    uint16_t port;
    struct wire_raw node;
    bool nack;
    struct wire_raw source_addr;
    uint16_t source_port;
    struct wire_raw source_node;
};

struct wire_ack {
    uint32_t seq;
    struct wire_raw payload;
};

struct wire_nack {
    uint32_t seq;
};

struct wire_err {
    struct wire_raw error;
};

/* suspect and dead share a shape */
struct wire_suspect {
    uint32_t incarnation;
    struct wire_raw node;
    struct wire_raw from;
};

struct wire_alive {
    uint32_t incarnation;
    struct wire_raw node;
    struct wire_raw addr;
    uint16_t port;
    struct wire_raw meta;
    struct wire_raw vsn; /* 6 bytes: pmin pmax pcur dmin dmax dcur */
};

struct wire_pushpull_header {
    int64_t nodes;
    int64_t user_state_len;
    bool join;
};

struct wire_user_header {
    int64_t len;
};

struct wire_node_state {
    struct wire_raw name;
    struct wire_raw addr;
    uint16_t port;
    struct wire_raw meta;
    uint32_t incarnation;
    int64_t state;
    struct wire_raw vsn;
};

struct wire_compress {
    uint8_t algo;
    struct wire_raw buf;
};

/* Room for any of the bodies above. */
union wire_body {
    struct wire_ping ping;
    struct wire_indirect_ping indirect_ping;
    struct wire_ack ack;
    struct wire_nack nack;
    struct wire_err err;
    struct wire_suspect suspect;
    struct wire_alive alive;
    struct wire_pushpull_header pushpull;
    struct wire_user_header user_header;
    struct wire_node_state node_state;
    struct wire_compress compress;
};

/* ===== Schema (wire_schema.c) =====
 * Each body's fields as memberlist's Go struct has them: the msgpack key
 * exactly as on the wire, in sorted key order (the order Go writes them),
 * the position in the Go declaration (the order of the array form), and
 * where the value lives in the body's C struct. The encoders and decoders
 * below walk these tables, and so does everything else that lists a
 * body's fields (the Lua module's codec). */
enum wire_kind {
    WIRE_K_U8,   /* uint8_t */
    WIRE_K_U16,  /* uint16_t */
    WIRE_K_U32,  /* uint32_t */
    WIRE_K_I64,  /* int64_t */
    WIRE_K_BOOL, /* bool */
    WIRE_K_STR,  /* struct wire_raw; a Go string: never written as nil */
    WIRE_K_RAW   /* struct wire_raw; a Go []byte (also addresses): nil
                  * when unset, or an array of small integers on input */
};

enum wire_field_flag {
    WIRE_F_OMITEMPTY = 1, /* left out when zero or empty */
    WIRE_F_LENGTH = 2,    /* a count or length of what follows the map
                           * (node states, user state, a user message):
                           * the writer of what follows sets it */
    WIRE_F_INNER = 4      /* the bytes of another message (compress's Buf),
                           * which readers show in its place */
};

struct wire_field {
    const char *key; /* NUL-terminated */
    uint8_t klen;
    uint8_t kind;  /* enum wire_kind */
    uint8_t flags; /* enum wire_field_flag */
    uint8_t decl;  /* position in the Go declaration */
    uint16_t off;  /* offset in the body's C struct */
};

struct wire_schema {
    const char *name; /* names the body in errors */
    const struct wire_field *fields;
    uint8_t n;
    uint16_t size; /* of the body's C struct */
};

/* The node states of a push/pull: not a message type of their own. */
#define WIRE_SCHEMA_NODE_STATE 0x100

/* The schema of a message type's msgpack body: the header for push/pull
 * and for a user message on a stream, suspect's for dead, the node
 * states for WIRE_SCHEMA_NODE_STATE. NULL for the types without one
 * (compound, encrypt, has-crc, label, unknown). */
const struct wire_schema *wire_schema(int type);

/* A field's value in the body m: integers and bools as int64_t, strings
 * and byte strings as views. The setters convert as a C cast to the
 * field's type does. */
int64_t wire_field_int(const struct wire_field *f, const void *m);
struct wire_raw wire_field_raw(const struct wire_field *f, const void *m);
void wire_field_set_int(const struct wire_field *f, void *m, int64_t v);
void wire_field_set_raw(const struct wire_field *f, void *m, struct wire_raw v);

/* Encode the body m as the map of schema s (no type byte); decode one
 * into m (zeroed first; s->size bytes). Error conventions: those of the
 * encoders and decoders below. */
void wire_put_struct(struct buf *b, const struct wire_schema *s, const void *m);
int wire_get_struct(struct mp_reader *r, const struct wire_schema *s, void *m,
                    struct wire_scratch *sc, const char **why);

/* Encoders append the type byte (except for node states and the stream
 * headers that follow a type byte) and the msgpack map. Errors stick in
 * the buf. */
void wire_put_ping(struct buf *b, const struct wire_ping *m);
void wire_put_indirect_ping(struct buf *b, const struct wire_indirect_ping *m);
void wire_put_ack(struct buf *b, const struct wire_ack *m);
void wire_put_nack(struct buf *b, const struct wire_nack *m);
void wire_put_err(struct buf *b, const struct wire_err *m);
void wire_put_suspect(struct buf *b, const struct wire_suspect *m);
void wire_put_dead(struct buf *b, const struct wire_suspect *m);
void wire_put_alive(struct buf *b, const struct wire_alive *m);
/* Type byte 6 and the header. */
void wire_put_pushpull_header(struct buf *b,
                              const struct wire_pushpull_header *m);
void wire_put_node_state(struct buf *b, const struct wire_node_state *m);
/* Type byte 8 and the stream user-message header. */
void wire_put_user_header(struct buf *b, int64_t len);
/* A compress message wrapping `len` bytes (LZW). */
void wire_put_compress(struct buf *b, const uint8_t *msg, size_t len);
/* Type byte `type` and the body m as wire_schema(type) has it: what the
 * encoders above write for the types with a schema. */
void wire_put_body(struct buf *b, int type, const void *m);

/* Decoders read one body (the type byte already consumed) from r. They
 * return 0, HS_ETRUNC or HS_EBADMSG; on error *why names the field. */
int wire_get_ping(struct mp_reader *r, struct wire_ping *m,
                  struct wire_scratch *s, const char **why);
int wire_get_indirect_ping(struct mp_reader *r, struct wire_indirect_ping *m,
                           struct wire_scratch *s, const char **why);
int wire_get_ack(struct mp_reader *r, struct wire_ack *m,
                 struct wire_scratch *s, const char **why);
int wire_get_nack(struct mp_reader *r, struct wire_nack *m,
                  struct wire_scratch *s, const char **why);
int wire_get_err(struct mp_reader *r, struct wire_err *m,
                 struct wire_scratch *s, const char **why);
int wire_get_suspect(struct mp_reader *r, struct wire_suspect *m,
                     struct wire_scratch *s, const char **why);
int wire_get_alive(struct mp_reader *r, struct wire_alive *m,
                   struct wire_scratch *s, const char **why);
int wire_get_pushpull_header(struct mp_reader *r,
                             struct wire_pushpull_header *m,
                             struct wire_scratch *s, const char **why);
int wire_get_node_state(struct mp_reader *r, struct wire_node_state *m,
                        struct wire_scratch *s, const char **why);
int wire_get_user_header(struct mp_reader *r, struct wire_user_header *m,
                         struct wire_scratch *s, const char **why);
int wire_get_compress(struct mp_reader *r, struct wire_compress *m,
                      struct wire_scratch *s, const char **why);

/* ===== Framing (section 5) ===== */

uint32_t wire_crc32(const uint8_t *p, size_t n);

/* Compound: `07 count len_1..len_n msg_1..msg_n`. */
struct wire_part {
    const uint8_t *p;
    size_t n;
};
/* Append a compound of n (1..255) parts, each shorter than 64 KiB. */
int wire_put_compound(struct buf *b, const struct wire_part *parts, size_t n);
/* Split a compound body (after the type byte). Complete parts go to
 * parts[0..*n); *truncated counts the parts the buffer ended before.
 * HS_EBADMSG when even the length table is cut short. */
int wire_split_compound(const uint8_t *p, size_t len,
                        struct wire_part parts[WIRE_COMPOUND_MAX], size_t *n,
                        size_t *truncated);
/* Prefix `0c crc32` to the message already in b from offset `start`. */
int wire_add_crc(struct buf *b, size_t start);

struct wire_limits {
    size_t max_decompressed; /* bytes out of one compress message */
    int max_depth;           /* nesting of compound/compress */
};

/* Called for each leaf message of a packet: its type and the bytes after
 * the type byte. */
typedef void (*wire_leaf_fn)(void *ud, uint8_t type, const uint8_t *body,
                             size_t len);

/* Walk a datagram as memberlist's receive path does: a hasCrc frame at the
 * outermost level (checked and stripped), then compound and compress at
 * any depth up to the limit. Leaves found before an error are delivered.
 * Returns 0 or the first error with *why set; *truncated counts compound
 * parts lost to a short buffer. */
int wire_walk_packet(const uint8_t *p, size_t len,
                     const struct wire_limits *lim, wire_leaf_fn fn, void *ud,
                     size_t *truncated, const char **why);

/* Decompress the body of a compress message (after the type byte):
 * HS_EDECOMPRESS for a bad LZW stream, HS_EUNSUPP for another algorithm,
 * HS_ETOOBIG past max_out, HS_EBADMSG for a malformed envelope. */
int wire_decompress(const uint8_t *body, size_t len, size_t max_out,
                    struct buf *out, const char **why);

/* ===== The hearsay envelope =====
 * hearsay's own user messages and push/pull user state start with
 * `e8 'H' 'S' 01 kind fromlen from...` then the body. Serf reads the first
 * byte of a user message as its message type and ignores unknown ones, and
 * ignores user state not starting with 02, so foreign clusters ignore ours.
 * Payloads without the envelope are foreign and passed on raw. */
#define WIRE_ENVELOPE_MAGIC0 0xe8
enum wire_envelope_kind {
    WIRE_ENV_USER = 1,      /* a user message to one node: hearsay.send */
    WIRE_ENV_STATE = 2,     /* push/pull user state */
    WIRE_ENV_META = 3,      /* cluster metadata */
    WIRE_ENV_RUMOR = 4,     /* a gossiped user message: hearsay.broadcast;
                          * the body starts with the origin's 8-byte
                          * sequence number, so that every node passes it
                          * on once and delivers it once */
    WIRE_ENV_META_REQ = 5,  /* metadata: a sync or fetch request (stream) */
    WIRE_ENV_META_RESP = 6, /* metadata: its answer (stream) */
    WIRE_ENV_KEYS_REQ = 7,  /* keyring: an operation on the keyring of the
                            * receiver (stream, always encrypted) */
    WIRE_ENV_KEYS_RESP = 8  /* keyring: its answer (stream) */
};

struct wire_envelope {
    uint8_t kind;
    const char *from;
    size_t fromlen;
    const uint8_t *body;
    size_t len;
};

void wire_put_envelope(struct buf *b, uint8_t kind, const char *from,
                       size_t fromlen);
/* 0 with *e filled, HS_ENOTFOUND when p is not an envelope (a foreign
 * payload), or HS_EBADMSG when it claims to be one but is cut short. */
int wire_get_envelope(const uint8_t *p, size_t n, struct wire_envelope *e);

/* ===== Streams (section 10) =====
 * A stream carries one message, possibly compressed (and, with a keyring,
 * encrypted). wire_scan_stream finds where the message in a growing
 * buffer ends, resuming where the last call stopped. */
struct wire_stream_scan {
    int phase;
    size_t off;          /* first byte not yet accounted for */
    uint64_t nodes_left; /* push/pull node states still to skip */
    int64_t user_len;    /* push/pull user state / user message length */
    uint8_t type;
};

void wire_stream_scan_init(struct wire_stream_scan *s);
/* Returns 0 with *end set when a whole message is in p[0..len),
 * HS_ETRUNC when more bytes are needed (*need: a lower bound on the total
 * length), or an error. `max_nodes` bounds a push/pull node count. */
int wire_scan_stream(struct wire_stream_scan *s, const uint8_t *p, size_t len,
                     uint64_t max_nodes, uint64_t max_user, size_t *end,
                     size_t *need, const char **why);

#endif
