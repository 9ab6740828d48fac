# cc-oci-runtime. `./configure` is optional: without it the defaults below apply.
-include config.mk
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DATADIR ?= /usr/share
QEMU_PATH ?= /usr/bin/qemu-system-x86_64
DEFAULTSDIR = $(DATADIR)/defaults/cc-oci-runtime
CC_KERNEL ?= $(DEFAULTSDIR)/vmlinux
CC_IMAGE ?= $(DEFAULTSDIR)/rootfs.erofs
CC_INITRD ?= $(DEFAULTSDIR)/initrd.img
DESTDIR ?=

BUN := node_modules/.bin/bun
TSC := node_modules/.bin/tsc
BIOME := node_modules/.bin/biome
VERSION := $(shell sed -n 's/^  "version": "\(.*\)",/\1/p' package.json)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SOURCES := $(shell find src -name '*.ts' 2>/dev/null)
NODE_STAMP := node_modules/.package-lock.json
BIN := bin/cc-oci-runtime
TOP := $(CURDIR)

.PHONY: all deps check typecheck lint test test-unit test-vm test-e2e install uninstall demo dist bench bench-template bench-guest clean format local-config

all: $(BIN) build/defaults/hypervisor.args build/defaults/vm.json guest local-config

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_STAMP)
	bash guest/deps.sh

$(BIN): $(NODE_STAMP) $(SOURCES) config.mk.stamp
	@mkdir -p bin
	$(BUN) build --compile --minify --bytecode src/main.ts --outfile $@ \
	  --define 'CC_BUILD_VERSION="$(VERSION)"' --define 'CC_BUILD_COMMIT="$(COMMIT)"' \
	  --define 'CC_BUILD_SYSCONFDIR="$(SYSCONFDIR)"' --define 'CC_BUILD_DATADIR="$(DATADIR)"'

# Rebuild the executable when ./configure changed the directories baked into it.
config.mk.stamp: $(wildcard config.mk)
	@touch $@

# Default configuration, pointing at the installed guest (what `make install` ships).
build/defaults/%: data/%.in config.mk.stamp
	@mkdir -p build/defaults
	sed -e 's|{{QEMU_PATH}}|$(QEMU_PATH)|g' -e 's|{{KERNEL}}|$(CC_KERNEL)|g' \
	    -e 's|{{IMAGE}}|$(CC_IMAGE)|g' -e 's|{{INITRD}}|$(CC_INITRD)|g' $< > $@

# The same, pointing at this build tree: used by the tests and `make demo` without installing.
build/local/%: data/%.in
	@mkdir -p build/local
	sed -e 's|{{QEMU_PATH}}|$(QEMU_PATH)|g' -e 's|{{KERNEL}}|$(TOP)/build/guest/vmlinux|g' \
	    -e 's|{{IMAGE}}|$(TOP)/build/guest/rootfs.erofs|g' -e 's|{{INITRD}}|$(TOP)/build/guest/initrd.img|g' $< > $@

local-config: build/local/hypervisor.args build/local/vm.json

-include mk/guest.mk

typecheck: $(NODE_STAMP)
	$(TSC) -p .

lint: $(NODE_STAMP)
	$(BIOME) check .

format: $(NODE_STAMP)
	$(BIOME) check --write .

# The test command of the README. Its summary line is printed by tests/summary.ts.
check: all typecheck lint
	$(BUN) run tests/run.ts

test-unit: $(NODE_STAMP)
	$(BUN) run tests/run.ts unit

test-vm: all
	$(BUN) run tests/run.ts vm

test-e2e: all
	$(BUN) run tests/run.ts e2e

install: all
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/cc-oci-runtime
	install -D -m 0644 build/defaults/hypervisor.args $(DESTDIR)$(DEFAULTSDIR)/hypervisor.args
	install -D -m 0644 build/defaults/vm.json $(DESTDIR)$(DEFAULTSDIR)/vm.json
	install -D -m 0644 build/guest/vmlinux $(DESTDIR)$(DEFAULTSDIR)/vmlinux
	install -D -m 0644 build/guest/initrd.img $(DESTDIR)$(DEFAULTSDIR)/initrd.img
	install -D -m 0644 build/guest/rootfs.erofs $(DESTDIR)$(DEFAULTSDIR)/rootfs.erofs

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cc-oci-runtime
	rm -f $(addprefix $(DESTDIR)$(DEFAULTSDIR)/,hypervisor.args vm.json vmlinux initrd.img rootfs.erofs)
	-rmdir $(DESTDIR)$(DEFAULTSDIR) 2>/dev/null

# One tarball for air-gapped hosts: executable, guest, default configuration, install.sh.
# Built for --prefix=/usr (what install.sh installs into).
DIST := build/dist/cc-oci-runtime-$(VERSION)
dist: all
	@test "$(DATADIR)" = /usr/share || { echo "make dist: configure with --prefix=/usr (DATADIR is $(DATADIR))"; exit 1; }
	rm -rf $(DIST) && mkdir -p $(DIST)/bin $(DIST)/defaults
	cp $(BIN) $(DIST)/bin/
	cp build/defaults/hypervisor.args build/defaults/vm.json $(DIST)/defaults/
	cp build/guest/vmlinux build/guest/initrd.img build/guest/rootfs.erofs $(DIST)/defaults/
	cp data/install.sh README.md $(DIST)/
	tar -C build/dist -czf $(DIST).tar.gz $(notdir $(DIST))
	@echo "make dist: $(DIST).tar.gz"

demo: deps all
	bash tests/demo.sh

bench: all
	$(BUN) run bench/run.ts

# cc-oci-runtime with and without CC_OCI_TEMPLATE=1 (and the QEMU floor) in every section.
bench-template: all
	$(BUN) run bench/run.ts --template on --runtimes cc,floor

bench-guest: all
	$(BUN) run bench/guest.ts

clean:
	rm -rf bin build/defaults build/local build/test-results build/dist config.mk.stamp
