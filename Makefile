# hearsay: a Lua-scriptable gossip node speaking memberlist's wire protocol.
#
#   make            build bin/hearsay and the Lua module lib/hearsay/core.so
#   make test       install missing dependencies, build, run every check
#   make run        install missing dependencies, build, run a 3-agent cluster
#   make asan       the same checks under AddressSanitizer + UBSan
#   make format     clang-format the C sources (check-format verifies)

CC      ?= cc
PKGS    := lua5.4 libuv msgpack libcrypto zlib libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wundef -Wno-format-nonliteral
OPT     ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(PKG_CFLAGS) -fPIC $(EXTRA_CFLAGS)
LDFLAGS_ALL = $(EXTRA_LDFLAGS)

BUILD   ?= build
BIN     ?= bin
LIBDIR  ?= lib

# The protocol core: pure C, no libuv, no Lua.
CORE    := hs buf log addr mp lzw wire config timers members broadcast suspicion probe stream pushpull node
CORE_OBJ := $(CORE:%=$(BUILD)/%.o)

CTESTS  := $(patsubst spec/c/%.c,%,$(wildcard spec/c/test_*.c))

.PHONY: all clean ctest
all: $(CORE_OBJ)

$(BUILD)/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD):
	mkdir -p $@

$(BUILD)/test_%: spec/c/test_%.c spec/c/test.h $(CORE_OBJ)
	$(CC) $(CFLAGS_ALL) $< $(CORE_OBJ) -o $@ $(LDFLAGS_ALL) $(PKG_LIBS) -lm

ctest: $(CTESTS:%=$(BUILD)/%)
	@set -e; for t in $(CTESTS); do $(BUILD)/$$t; done

clean:
	rm -rf build bin lib
