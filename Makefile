# hearsay: a Lua-scriptable gossip node speaking memberlist's wire protocol.
#
#   make            build bin/hearsay and the Lua module lib/hearsay/core.so
#   make test       install missing dependencies, build, run every check
#   make run        install missing dependencies, build, run a 3-agent cluster
#   make asan       the same checks under AddressSanitizer + UBSan
#   make fuzz       run each libFuzzer target for FUZZ_TIME seconds
#   make format     clang-format the C sources (make check-format verifies)
#   make docs       regenerate the configuration reference in docs/
#   make install    install under PREFIX (/usr/local), DESTDIR for staging
#   make uninstall  remove what make install installed
#   make deb        build a Debian package of the same files in build/

CC      ?= cc
# The pure layers (base, codec, core, the simulated io) see only these
# packages; libuv and Lua are for io/transport, lua/, agent/, cli/ and main.
PURE_PKGS := msgpack libcrypto zlib
PKGS    := lua5.4 libuv libcjson $(PURE_PKGS)
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PURE_CFLAGS := $(shell pkg-config --cflags $(PURE_PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wundef -Wno-format-nonliteral
OPT     ?= -O2 -g
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Isrc -fPIC -MMD -MP \
              $(EXTRA_CFLAGS)
CFLAGS_ALL  = $(BASE_CFLAGS) $(PKG_CFLAGS)
# $(BUILD)/poison holds a uv.h, lua.h, lauxlib.h and lualib.h that stop
# the build: the pure layers find them before the system's.
CFLAGS_PURE = $(BASE_CFLAGS) -I$(BUILD)/poison $(PURE_CFLAGS)
LDLIBS_ALL = $(EXTRA_LDFLAGS) $(PKG_LIBS) -lm

BUILD   ?= build
BIN     ?= bin
LIBDIR  ?= lib
Q       := @

# The layers, bottom up (docs/layout.md says what each may include;
# scripts/check-layers.sh holds them to it).
#   base   memory, buffers, logs, addresses, timers, text
#   codec  msgpack, LZW, the wire messages, keyring, TCP frames
#   core   the protocol: members, probes, gossip, streams, the store
#   io     the io seam's implementations: libuv sockets, the simulation
#   lua    the Lua binding: sandbox, hooks, the hearsay API, modules
#   agent  the agent: start-up, data dir, control endpoint, metrics
#   cli    the command line client
src_of = $(wildcard src/$(1)/*.c)
obj_of = $(patsubst src/%.c,$(BUILD)/%.o,$(1))
PURE_SRC := $(call src_of,base) $(call src_of,codec) $(call src_of,core) \
            $(wildcard src/io/sim*.c)
CORE_OBJ := $(call obj_of,$(PURE_SRC))
IO_OBJ   := $(call obj_of,$(filter-out src/io/sim%,$(call src_of,io)))
LUA_OBJ  := $(call obj_of,$(filter-out src/lua/module.c src/lua/mod_%.c,\
              $(call src_of,lua)))
AGENT_OBJ := $(call obj_of,$(call src_of,agent))
CLI_OBJ  := $(call obj_of,$(call src_of,cli))
RUNTIME_OBJ := $(IO_OBJ) $(LUA_OBJ) $(AGENT_OBJ) $(CLI_OBJ)
MODULE_OBJ  := $(call obj_of,src/lua/module.c $(wildcard src/lua/mod_*.c))
# What the Lua module links of the runtime: the Lua binding, the libuv
# transport of in-process nodes, and their start-up and joins, which they
# share with the agent (no CLI, control endpoint, metrics or data dir).
MODULE_RT_OBJ := $(IO_OBJ) $(LUA_OBJ) $(BUILD)/agent/join.o \
                 $(BUILD)/agent/setup.o

CTESTS  := $(patsubst spec/c/%.c,%,$(wildcard spec/c/test_*.c))

.PHONY: all clean ctest test run asan deps check busted lint docs layers \
        format check-format install install-files uninstall deb

all: $(BIN)/hearsay $(LIBDIR)/hearsay/core.so

POISON := $(addprefix $(BUILD)/poison/,uv.h lua.h lauxlib.h lualib.h)
$(POISON):
	@mkdir -p $(@D)
	$(Q)echo '#error "$(@F) is not for the base, codec and core layers (docs/layout.md)"' >$@

$(CORE_OBJ): $(BUILD)/%.o: src/%.c | $(POISON)
	@mkdir -p $(@D)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_PURE) -c $< -o $@

$(BUILD)/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

-include $(wildcard $(BUILD)/*.d $(BUILD)/*/*.d)

$(BIN) $(LIBDIR)/hearsay:
	$(Q)mkdir -p $@

$(BIN)/hearsay: $(BUILD)/main.o $(RUNTIME_OBJ) $(CORE_OBJ) | $(BIN)
	@echo "  LD $@"
	$(Q)$(CC) $^ -o $@ $(LDLIBS_ALL)

$(LIBDIR)/hearsay/core.so: $(MODULE_OBJ) $(MODULE_RT_OBJ) $(CORE_OBJ) | $(LIBDIR)/hearsay
	@echo "  LD $@"
	$(Q)$(CC) -shared -Wl,-z,defs $^ -o $@ $(LDLIBS_ALL)

$(BUILD)/test_%: spec/c/test_%.c $(wildcard spec/c/*.h) $(CORE_OBJ)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) $< $(CORE_OBJ) -o $@ $(LDLIBS_ALL)

# The transport check also needs libuv's side of the runtime.
$(BUILD)/test_transport: spec/c/test_transport.c $(wildcard spec/c/*.h) $(CORE_OBJ) $(IO_OBJ)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) $< $(CORE_OBJ) $(IO_OBJ) -o $@ $(LDLIBS_ALL)

# The data dir's check needs the agent's log.
WAL_OBJ := $(call obj_of,$(wildcard src/agent/wal*.c))
$(BUILD)/test_wal: spec/c/test_wal.c $(wildcard spec/c/*.h) $(CORE_OBJ) $(WAL_OBJ)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) $< $(CORE_OBJ) $(WAL_OBJ) -o $@ $(LDLIBS_ALL)

$(BUILD)/bench_%: scripts/bench/%.c $(CORE_OBJ) $(RUNTIME_OBJ)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) $< $(CORE_OBJ) $(RUNTIME_OBJ) -o $@ $(LDLIBS_ALL)

# The C style (.clang-format): `make format` rewrites, `make check-format`
# (part of make test) fails on any difference.
FORMAT_SRC = $(filter-out spec/c/lzw_vectors.h,$(wildcard src/*.[ch] \
             src/*/*.[ch] spec/c/*.[ch] spec/fuzz/*.[ch] scripts/bench/*.c))
format:
	$(Q)clang-format -i $(FORMAT_SRC)

check-format:
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRC) && \
	    echo "format: $(words $(FORMAT_SRC)) files as .clang-format has them"

# The layers include only what is below them.
layers:
	$(Q)./scripts/check-layers.sh

ctest: $(CTESTS:%=$(BUILD)/%)
	$(Q)set -e; for t in $(CTESTS); do $(BUILD)/$$t; done

# ===== Checks =====

deps:
	$(Q)./scripts/install-deps.sh

# `make test` works on a fresh machine: install, then build and check in a
# second make (pkg-config needs the packages to be there first).
test: deps
	$(Q)$(MAKE) --no-print-directory check

check: layers check-format all ctest busted lint fuzz-smoke valgrind
	$(Q)./scripts/check-leftovers.sh

busted: all
	$(Q)./scripts/run-specs.sh

lint:
	$(Q)luacheck -q --no-color lua spec examples dist/hearsay.lua \
	    dist/hearsay-test

# The generated part of docs/ (the configuration reference, from the key
# table of src/core/config_keys.c); `make test` fails when it is out of date.
docs: all
	$(Q)lua5.4 scripts/gen-docs.lua

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)exec ./scripts/local-cluster.sh 3

# The same checks with AddressSanitizer and UndefinedBehaviorSanitizer.
ASAN_DIR := build/asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
ASAN_CFLAGS := $(ASAN_FLAGS) -DHS_INVARIANTS
asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=$(ASAN_DIR)/obj \
	    BIN=$(ASAN_DIR)/bin LIBDIR=$(ASAN_DIR)/lib OPT="-O1 -g" \
	    EXTRA_CFLAGS="$(ASAN_CFLAGS)" EXTRA_LDFLAGS="$(ASAN_FLAGS)" \
	    all ctest
	$(Q)ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) \
	    $$($(CC) -print-file-name=libubsan.so)" \
	    HEARSAY_BIN=$(ASAN_DIR)/bin/hearsay \
	    ./scripts/run-specs.sh --cpath="./$(ASAN_DIR)/lib/?.so"
	$(Q)./scripts/check-leftovers.sh

# ===== Fuzzing =====
# libFuzzer targets (spec/fuzz/*.c) on the protocol core, built with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer. `make fuzz` runs each
# for FUZZ_TIME seconds from its committed seed corpus and prints a table;
# `make fuzz-smoke` (part of `make test`) runs each for a few seconds.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_SMOKE   ?= 3
FUZZ_DIR     := build/fuzz
# Targets on the agent's own doors (the control endpoint, the /metrics
# request parser, the config file loaders, the keyring file) link the
# runtime too.
FUZZ_AGENT_TARGETS := control http config_lua config_json keyring
FUZZ_TARGETS := packet stream reply lzw metadata packet_encrypted \
                stream_encrypted datadir tcp_frames sandbox patterns \
                $(FUZZ_AGENT_TARGETS)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -Isrc $(PKG_CFLAGS) \
                $(FUZZ_SAN) -DHS_INVARIANTS
fuzz_obj_of   = $(patsubst src/%.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_OBJ     := $(call fuzz_obj_of,$(PURE_SRC))
FUZZ_RT_OBJ  := $(FUZZ_OBJ) $(patsubst $(BUILD)/%,$(FUZZ_DIR)/obj/%,$(RUNTIME_OBJ))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_RT_OBJ)

$(FUZZ_DIR)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC (fuzz) $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@

-include $(wildcard $(FUZZ_DIR)/obj/*/*.d)

$(FUZZ_DIR)/fuzz_%: spec/fuzz/%.c spec/fuzz/fuzz.c $(wildcard spec/fuzz/*.h) \
                    $(FUZZ_OBJ)
	@echo "  LD (fuzz) $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< spec/fuzz/fuzz.c \
	    $(FUZZ_OBJ) -o $@ $(LDLIBS_ALL)

$(FUZZ_AGENT_TARGETS:%=$(FUZZ_DIR)/fuzz_%): $(FUZZ_DIR)/fuzz_%: \
                    spec/fuzz/%.c spec/fuzz/fuzz.c $(wildcard spec/fuzz/*.h) \
                    $(FUZZ_RT_OBJ)
	@echo "  LD (fuzz) $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< spec/fuzz/fuzz.c \
	    $(FUZZ_RT_OBJ) -o $@ $(LDLIBS_ALL)

# The script sandbox also needs the Lua binding layer.
FUZZ_LUA_OBJ := $(patsubst $(BUILD)/%,$(FUZZ_DIR)/obj/%,$(LUA_OBJ))
.SECONDARY: $(FUZZ_LUA_OBJ)
$(FUZZ_DIR)/fuzz_sandbox: spec/fuzz/sandbox.c spec/fuzz/fuzz.c \
                          $(wildcard spec/fuzz/*.h) $(FUZZ_OBJ) $(FUZZ_LUA_OBJ)
	@echo "  LD (fuzz) $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< spec/fuzz/fuzz.c \
	    $(FUZZ_OBJ) $(FUZZ_LUA_OBJ) -o $@ $(LDLIBS_ALL)

# The Lua patterns against Lua's own: the matcher alone.
$(FUZZ_DIR)/fuzz_patterns: spec/fuzz/patterns.c $(wildcard spec/fuzz/*.h) \
                           $(FUZZ_DIR)/obj/lua/pattern.o
	@echo "  LD (fuzz) $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< \
	    $(FUZZ_DIR)/obj/lua/pattern.o -o $@ $(LDLIBS_ALL)

# The seeds hearsay writes itself (spec/fuzz/seeds.c, the real encoders).
$(FUZZ_DIR)/seeds: spec/fuzz/seeds.c spec/fuzz/fuzz.c \
                  $(wildcard spec/fuzz/*.h) $(CORE_OBJ)
	@echo "  CC $<"
	$(Q)mkdir -p $(FUZZ_DIR)
	$(Q)$(CC) $(CFLAGS_ALL) $< spec/fuzz/fuzz.c $(CORE_OBJ) -o $@ \
	    $(LDLIBS_ALL)

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-corpus valgrind
fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)./scripts/fuzz.sh $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	$(Q)FUZZ_FRESH=1 ./scripts/fuzz.sh $(FUZZ_SMOKE) $(FUZZ_TARGETS)

# Rebuild the committed seed corpora from the captures and the encoders.
fuzz-corpus: all $(FUZZ_DIR)/seeds
	$(Q)lua5.4 scripts/fuzz-corpus.lua $(FUZZ_DIR)/seeds

# Two agents under valgrind: start, join, a kv put, graceful leave.
valgrind: all
	$(Q)./scripts/valgrind-check.sh

# ===== Installing =====
# `make install` puts the agent and hearsay-test in BINDIR, the Lua modules
# where lua5.4 looks by default for PREFIX /usr/local and /usr (the agent
# also looks in its own PREFIX/share/lua/5.4: src/lua/host.c), the docs
# and examples in DOCDIR, the systemd unit and a sysusers.d entry for its
# user, and a sample SYSCONFDIR/hearsay/hearsay.lua unless one is there.
# It builds what is missing first; `make install-files` only copies the
# build there is (BIN, LIBDIR). `make uninstall` removes the same files,
# and the config only while it is the sample unchanged.
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
BINDIR      ?= $(PREFIX)/bin
LUADIR      ?= $(PREFIX)/share/lua/5.4
LUACDIR     ?= $(PREFIX)/lib/lua/5.4
DOCDIR      ?= $(PREFIX)/share/doc/hearsay
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL     ?= install

LUA_MODS  := $(wildcard lua/hearsay/*.lua)
DOC_FILES := README.md CHANGELOG.md BENCHMARKS.md
DOC_PAGES := $(wildcard docs/*)
EXAMPLES  := $(wildcard examples/*)
CONF      := $(DESTDIR)$(SYSCONFDIR)/hearsay/hearsay.lua
INSTALLED := $(BINDIR)/hearsay $(BINDIR)/hearsay-test \
             $(LUA_MODS:lua/%=$(LUADIR)/%) $(LUACDIR)/hearsay/core.so \
             $(DOC_FILES:%=$(DOCDIR)/%) $(DOC_PAGES:%=$(DOCDIR)/%) \
             $(EXAMPLES:%=$(DOCDIR)/%) $(UNITDIR)/hearsay.service \
             $(SYSUSERSDIR)/hearsay.conf
INSTALL_DIRS := $(LUADIR)/hearsay $(LUACDIR)/hearsay $(DOCDIR)/docs \
                $(DOCDIR)/examples $(DOCDIR) $(SYSCONFDIR)/hearsay

install: all
	$(Q)$(MAKE) --no-print-directory install-files

install-files:
	$(Q)$(INSTALL) -d $(addprefix $(DESTDIR),$(BINDIR) $(UNITDIR) \
	    $(SYSUSERSDIR) $(INSTALL_DIRS))
	$(Q)$(INSTALL) -m 755 $(BIN)/hearsay dist/hearsay-test $(DESTDIR)$(BINDIR)
	$(Q)$(INSTALL) -m 644 $(LUA_MODS) $(DESTDIR)$(LUADIR)/hearsay
	$(Q)$(INSTALL) -m 644 $(LIBDIR)/hearsay/core.so $(DESTDIR)$(LUACDIR)/hearsay
	$(Q)$(INSTALL) -m 644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)
	$(Q)$(INSTALL) -m 644 $(DOC_PAGES) $(DESTDIR)$(DOCDIR)/docs
	$(Q)$(INSTALL) -m 644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples
	$(Q)sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@DOCDIR@|$(DOCDIR)|g' dist/hearsay.service.in \
	    > $(DESTDIR)$(UNITDIR)/hearsay.service
	$(Q)chmod 644 $(DESTDIR)$(UNITDIR)/hearsay.service
	$(Q)$(INSTALL) -m 644 dist/sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/hearsay.conf
	$(Q)if [ -e $(CONF) ]; then \
	    echo "install: kept $(CONF), the sample is $(DOCDIR)/hearsay.lua"; \
	else $(INSTALL) -m 644 dist/hearsay.lua $(CONF); fi
	$(Q)$(INSTALL) -m 644 dist/hearsay.lua $(DESTDIR)$(DOCDIR)/hearsay.lua
	@echo "install: hearsay in $(DESTDIR)$(PREFIX), its config in $(DESTDIR)$(SYSCONFDIR)/hearsay"

uninstall:
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALLED) $(DOCDIR)/hearsay.lua)
	$(Q)if cmp -s dist/hearsay.lua $(CONF); then rm -f $(CONF); \
	elif [ -e $(CONF) ]; then echo "uninstall: kept $(CONF) (changed)"; fi
	$(Q)for d in $(addprefix $(DESTDIR),$(INSTALL_DIRS)); do \
	    if [ -d "$$d" ]; then rmdir "$$d" 2>/dev/null || true; fi; done

# `make deb`: build/hearsay_VERSION_ARCH.deb, from the files make install
# stages for PREFIX /usr, with dpkg's own tools: dpkg-shlibdeps names the
# libraries' packages, dpkg-deb builds it (dpkg-dev comes with
# build-essential). The config is a conffile; the unit is not enabled.
DEB_VERSION := $(shell sed -n 's/^\#define HS_VERSION "\(.*\)"/\1/p' src/base/hs.h)
DEB_MAINTAINER ?= hearsay maintainers <hearsay@localhost>
DEB_DIR  := $(BUILD)/deb
DEB_ROOT := $(DEB_DIR)/debian/hearsay

deb: all
	$(Q)rm -rf $(DEB_DIR)
	$(Q)$(MAKE) --no-print-directory install-files PREFIX=/usr SYSCONFDIR=/etc \
	    DESTDIR=$(abspath $(DEB_ROOT)) >/dev/null
	$(Q)strip --strip-unneeded $(DEB_ROOT)/usr/bin/hearsay \
	    $(DEB_ROOT)/usr/lib/lua/5.4/hearsay/core.so
	$(Q)mkdir -p $(DEB_ROOT)/DEBIAN && printf \
	    'Source: hearsay\n\nPackage: hearsay\nArchitecture: any\n' \
	    > $(DEB_DIR)/debian/control
	$(Q)cd $(DEB_DIR) && dpkg-shlibdeps -O -edebian/hearsay/usr/bin/hearsay \
	    -edebian/hearsay/usr/lib/lua/5.4/hearsay/core.so \
	    | sed -n 's/^shlibs:Depends=//p' > shlibs
	$(Q)test -s $(DEB_DIR)/shlibs
	$(Q)size=$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1); \
	sed -e 's|@VERSION@|$(DEB_VERSION)|' \
	    -e "s|@ARCH@|$$(dpkg --print-architecture)|" \
	    -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' -e "s|@SIZE@|$$size|" \
	    -e "s|@DEPENDS@|lua5.4, $$(cat $(DEB_DIR)/shlibs)|" \
	    dist/deb/control.in > $(DEB_ROOT)/DEBIAN/control
	$(Q)echo /etc/hearsay/hearsay.lua > $(DEB_ROOT)/DEBIAN/conffiles
	$(Q)$(INSTALL) -m 755 dist/deb/postinst dist/deb/prerm dist/deb/postrm \
	    $(DEB_ROOT)/DEBIAN
	$(Q)cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
	    | LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums
	$(Q)dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) \
	    $(BUILD)/hearsay_$(DEB_VERSION)_$$(dpkg --print-architecture).deb

clean:
	rm -rf build bin lib
