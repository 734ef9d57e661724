/* text.h: bytes as text for JSON, shared by the control endpoint and the
 * CLI: is it valid UTF-8 (then it can travel as a JSON string), and
 * base64 (standard alphabet, as Go's encoding/json writes []byte) for
 * when it is not. */
#ifndef HS_TEXT_H
#define HS_TEXT_H

#include <stdio.h>

#include "base/hs.h"

/* Length of the valid UTF-8 sequence at p (n > 0 bytes left): no NUL, no
 * overlong form, no surrogate, at most U+10FFFF; 0 if not valid. */
size_t text_utf8_seq(const uint8_t *p, size_t n);
/* True when all n bytes are valid UTF-8 without NUL: they can be a JSON
 * string, and a C string, as they are. */
bool text_utf8_valid(const void *p, size_t n);

/* Characters base64 needs for n bytes, with padding (n below
 * SIZE_MAX / 2). */
size_t text_base64_len(size_t n);
/* Write text_base64_len(n) characters and a NUL to out. */
void text_base64_encode(const void *p, size_t n, char *out);
/* Most bytes n characters of base64 decode to. */
size_t text_base64_max(size_t n);
/* Decode n characters (padding optional, no whitespace) into out, which
 * has room for text_base64_max(n) bytes. Returns 0 with the length in
 * *outlen, or HS_EINVAL. */
int text_base64_decode(const char *s, size_t n, uint8_t *out, size_t *outlen);

/* Print `text` as a paragraph indented by `indent` spaces and wrapped at
 * 78 columns (help texts). */
void text_wrap(FILE *f, const char *text, int indent);

#endif
