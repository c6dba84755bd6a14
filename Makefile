# sagebridge - Clarity eCommerce <-> Sage 500 ERP spool-folder bridge.
#
#   make            build ./sagebridge (installs missing Debian packages as root); with
#                   PGO=0 without the profile-guided second compile (quicker to rebuild)
#   make test       every test: unit (cmocka), golden files, end to end
#   make run        convert the examples into spool/out/sage/ and show the result
#   make asan       build with ASan+UBSan and run the whole suite with it
#   make bench      performance table (see SPEC §10)
#   make format     clang-format the sources;  make lint: cppcheck + clang-tidy
#   make install    PREFIX=/usr/local DESTDIR=...

PREFIX  ?= /usr/local
DATADIR ?= $(PREFIX)/share/sagebridge
CC      ?= gcc
PKGS     = yajl libxml-2.0 libcrypto inih sqlite3 libarchive libisal libcurl
# linked: all but libcurl, which deliver.c loads (dlopen) when a delivery starts
LINKPKGS = $(filter-out libcurl,$(PKGS))
WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
# link-time optimisation for the release build: the hot path crosses modules (reader, record,
# template, writers) and inlining across them bought ~8 % (bench/RESULTS.md); not for asan.
# Fat objects: the unit tests link the same objects without running LTO again each time.
LTO     ?= -flto=auto -ffat-lto-objects
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -DSB_DATADIR='"$(DATADIR)"' \
             $(shell pkg-config --cflags $(PKGS))
LDLIBS   = $(shell pkg-config --libs $(LINKPKGS)) -lcsv -pthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# Profile-guided optimisation (PGO=1, the default): the sources are compiled twice, first
# instrumented into build/pgo/, whose binary converts a generated export (tools/pgo-train.sh),
# then into build/obj/ with the counts that run left.  --format both 0.95 of the time of the
# same build without it (bench/HISTORY.md, session 7).  Any source change retrains.
PGO     ?= 1
PGO_GEN  = -fprofile-generate -fprofile-update=atomic
ifeq ($(PGO),1)
PGO_LINK = -fprofile-use -fprofile-partial-training
PGO_USE  = $(PGO_LINK) -dumpdir build/pgo/
TRAINED  = build/pgo/.trained
endif

SRCS    := $(wildcard src/*.c)
LIBSRCS := $(filter-out src/main.c,$(SRCS))
OBJS    := $(SRCS:src/%.c=build/obj/%.o)
LIBOBJS := $(LIBSRCS:src/%.c=build/obj/%.o)
PGOOBJS := $(SRCS:src/%.c=build/pgo/%.o)
ASANOBJS := $(SRCS:src/%.c=build/asan/%.o)
ASANLIB := $(LIBSRCS:src/%.c=build/asan/%.o)
UNITS   := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test-deps test unit run asan bench format lint install clean
all: sagebridge

build/.deps: tools/deps.sh
	@mkdir -p build
	@tools/deps.sh build
	@touch $@

build/.test-deps: tools/deps.sh build/.deps
	@tools/deps.sh test
	@touch $@

deps: build/.deps
test-deps: build/.test-deps

# which build the objects in build/obj are from: switching PGO rebuilds them
build/.pgo-$(PGO): | build/.deps
	@rm -f build/.pgo-*
	@touch $@

build/obj/%.o: src/%.c $(wildcard src/*.h) $(TRAINED) build/.pgo-$(PGO) | build/.deps
	@mkdir -p build/obj
	$(CC) $(ALL_CFLAGS) $(LTO) $(PGO_USE) -c -o $@ $<

# archive.c without the profile: gcc 12 finds counts missing for one of its static functions
# ("Missing counts for called function join_feeder", an error with -Werror), and archiving is
# not on the paths the profile is for

build/pgo/%.o: src/%.c $(wildcard src/*.h) | build/.deps
	@mkdir -p build/pgo
	$(CC) $(ALL_CFLAGS) $(LTO) $(PGO_GEN) -c -o $@ $<

build/pgo/sagebridge: $(PGOOBJS)
	$(CC) $(ALL_CFLAGS) $(LTO) $(PGO_GEN) -o $@ $^ $(LDLIBS)

build/pgo/.trained: build/pgo/sagebridge tools/pgo-train.sh bench/gen-orders.py \
                    $(wildcard templates/*.xml templates/lookups/*.csv)
	tools/pgo-train.sh build/pgo
	@touch $@

build/asan/%.o: src/%.c $(wildcard src/*.h) | build/.deps
	@mkdir -p build/asan
	$(CC) $(ALL_CFLAGS) $(SAN) -c -o $@ $<

sagebridge: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LTO) $(PGO_LINK) -o $@ $^ $(LDLIBS)

sagebridge-asan: $(ASANOBJS)
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

build/tests/%: tests/unit/%.c $(LIBOBJS) | build/.test-deps
	@mkdir -p build/tests
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(LIBOBJS) $(LDLIBS) -lcmocka

build/tests-asan/%: tests/unit/%.c $(ASANLIB) | build/.test-deps
	@mkdir -p build/tests-asan
	$(CC) $(ALL_CFLAGS) $(SAN) -Isrc -o $@ $< $(ASANLIB) $(LDLIBS) -lcmocka

unit: $(UNITS:%=build/tests/%)

test: build/.test-deps sagebridge $(UNITS:%=build/tests/%)
	@SAGEBRIDGE_BIN=$(CURDIR)/sagebridge UNIT_DIR=$(CURDIR)/build/tests tests/run.sh

asan: build/.test-deps sagebridge-asan $(UNITS:%=build/tests-asan/%)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	 SAGEBRIDGE_BIN=$(CURDIR)/sagebridge-asan UNIT_DIR=$(CURDIR)/build/tests-asan tests/run.sh

run: sagebridge
	@tools/make-run.sh

bench: sagebridge
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "make bench: not built yet (issue 6)"; fi

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

lint: build/.deps
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	  --suppress=missingIncludeSystem --inline-suppr -D__GNUC__ src
	clang-tidy --quiet src/*.c -- -std=c17 -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS))

install: sagebridge
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR)/templates/lookups $(DESTDIR)$(DATADIR)/xsd
	install -m 0755 sagebridge $(DESTDIR)$(PREFIX)/bin/sagebridge
	install -m 0644 templates/*.xml templates/README.md $(DESTDIR)$(DATADIR)/templates/
	install -m 0644 templates/lookups/*.csv $(DESTDIR)$(DATADIR)/templates/lookups/
	install -m 0644 xsd/*.xsd $(DESTDIR)$(DATADIR)/xsd/

clean:
	rm -rf build sagebridge sagebridge-asan
