# labrun: the lab's entry points. `make run` sets everything up and boots the default guest;
# `make test` runs the whole test suite. Both install what they need (apt, as root).

SWIFT        ?= swift
CONFIG       ?= release
# A statically linked Swift runtime halves labrun's start-up (6 ms -> 3 ms measured by the bench).
STATIC       := $(if $(filter release,$(CONFIG)),--static-swift-stdlib)
LABRUN_BUILD := .build/$(CONFIG)/labrun
# LABRUN=/path/to/labrun (command line or environment) runs another binary and never builds.
LABRUN       ?= $(LABRUN_BUILD)
# The binary to build first: labrun's own, only when LABRUN is not another one.
LABRUN_READY := $(if $(filter $(LABRUN_BUILD),$(LABRUN)),$(LABRUN_BUILD))
# Integration tests and CI run under TCG: KVM is broken on the build machines.
TEST_ACCEL   ?= tcg

# Debian packages labrun, its guest builder and its tests need.
APT_PACKAGES := qemu-system-x86 qemu-system-arm qemu-utils busybox-static cpio xz-utils fakeroot e2fsprogs gdb kmod

# The guest `make run` (nodebug, shared, debug, snapshot …) uses: the tiny one in this checkout, or
# the full Debian one in its own lab debian/ (`make rootfs` builds it and selects it). GUEST=tiny or
# GUEST=debian on the command line selects one and is remembered in .labrun-guest. LABRUN_LAB in
# the environment overrides both: labrun itself reads it.
GUEST_FILE := .labrun-guest
ifeq ($(origin GUEST),command line)
  ifeq ($(filter tiny debian,$(GUEST)),)
    $(error GUEST=$(GUEST): expected tiny or debian)
  endif
  $(shell echo '$(GUEST)' >$(GUEST_FILE))
else
  GUEST := $(if $(filter debian,$(shell cat $(GUEST_FILE) 2>/dev/null)),debian,tiny)
endif
GUEST_LAB   := $(if $(filter debian,$(GUEST)),debian,.)
GUEST_IMAGE := $(if $(filter debian,$(GUEST)),debian/debian-rootfs.qcow2,debian-rootfs.qcow2)
ifeq ($(GUEST)$(LABRUN_LAB),debian)
  export LABRUN_LAB := $(CURDIR)/debian
endif
# The Debian guest's builder runs mmdebstrap as root.
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo )

.PHONY: help run nodebug shared debug guest build deps test test-unit test-integration \
        snapshot restore delete snapshots reset info check status stop clean distclean bench

help:
	@echo "make run          build labrun and the default guest if missing, boot it (gdb stub on 127.0.0.1:1234)"
	@echo "make nodebug      the same without the gdb stub"
	@echo "make shared       boot with ./shared mounted in the guest at /mnt, and the gdb stub"
	@echo "make debug        gdb attached to the running VM"
	@echo "make snapshot NAME=x / restore NAME=x / delete NAME=x / snapshots"
	@echo "make reset        fresh runtime layer on the golden image (asks first; the old one is kept as undo)"
	@echo "make info / check / status / stop"
	@echo "make module M=dir / insmod M=dir / rmmod M=dir   build, load, unload a kernel module (examples/hello)"
	@echo "make test         unit + integration tests (boots the real guest under QEMU)"
	@echo "make guest        build the tiny default guest (Debian kernel + busybox)"
	@echo "make rootfs       build the full Debian guest in debian/ and make it the one \`make run\` boots"
	@echo "                  (GUEST=tiny / GUEST=debian on any make command switches; now: $(GUEST))"
	@echo "make guest-aarch64  build the tiny AArch64 guest in guest-aarch64/ (labrun init DIR --arch aarch64)"
	@echo "make test-slow    build the Debian guest and boot it in the slow tests (minutes)"
	@echo "make install      labrun, its completions and man page in PREFIX (/usr/local)"
	@echo "make clean        remove build products (never the images; see distclean)"

# --- set-up -----------------------------------------------------------------------------

# Quick when everything is there (make run must start in milliseconds): the tools first, and
# dpkg only when one is missing.
DEP_TOOLS := qemu-system-x86_64 qemu-system-aarch64 qemu-img busybox cpio xz fakeroot mkfs.ext4 gdb depmod
deps:
	@all=1; for t in $(DEP_TOOLS); do command -v $$t >/dev/null 2>&1 || all=0; done; [ $$all = 0 ] || exit 0; \
	missing=""; \
	for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "make: need root to run: apt-get install$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(SWIFT) build -c $(CONFIG) $(STATIC) --product labrun

# The binary, rebuilt only when a source changed: `make run` does not wait for swift build's
# own up-to-date check (0.7 s).
LABRUN_SOURCES := Package.swift $(shell find Sources -name '*.swift' 2>/dev/null)

guest: deps
	bash guest/build-tiny.sh .

# Built only when missing.
debian-rootfs.qcow2 guest-build/vmlinux:
	$(MAKE) guest

.PHONY: rootfs guest-aarch64 test-slow

# The full Debian bookworm guest, in its own lab directory debian/ (about 2 minutes, as root).
rootfs: deps
	$(AS_ROOT)bash guest/build-debian.sh debian
	@echo debian >$(GUEST_FILE)
	@echo "==> \`make run\` now boots the full Debian guest (debian/); \`make run GUEST=tiny\` switches back"

debian/debian-rootfs.qcow2:
	$(MAKE) rootfs

# The tiny AArch64 guest, in its own lab directory guest-aarch64/ (about 15 s).
guest-aarch64: deps
	bash guest/build-tiny.sh --arch aarch64 guest-aarch64

guest-aarch64/debian-rootfs.qcow2:
	$(MAKE) guest-aarch64

# --- the VM ------------------------------------------------------------------------------

run: deps $(LABRUN_READY) $(GUEST_IMAGE)
	$(LABRUN) boot --debug

nodebug: deps $(LABRUN_READY) $(GUEST_IMAGE)
	$(LABRUN) boot

shared: deps $(LABRUN_READY) $(GUEST_IMAGE)
	$(LABRUN) boot --shared --debug

# gdb on the running VM with the kernel's (and its modules') names: `labrun gdb`.
debug: $(LABRUN_READY)
	$(LABRUN) gdb

# --- snapshots and images ---------------------------------------------------------------
# These run the labrun that is already built (building it only when it is missing): they act
# on a VM that may be running, whose supervisor is that binary, so they never recompile first.
# `make ... LABRUN=/path/to/labrun` picks another binary. The lab is labrun's own choice
# (LABRUN_LAB, or this checkout).

$(LABRUN_BUILD): $(LABRUN_SOURCES)
	$(SWIFT) build -c $(CONFIG) $(STATIC) --product labrun
	@touch $@

# NAME reaches the recipe only as an environment variable holding exactly what was typed:
# $(value NAME) keeps make from expanding it (`$(shell …)` in a name is not run), and the
# recipe never splices it into its text; labrun refuses unsafe names itself.
# NAME itself is not exported: exporting would expand it.
unexport NAME
snapshot restore delete: export LABRUN_SNAPSHOT_NAME := $(value NAME)

snapshot: $(LABRUN_READY)
	@if [ -z "$$LABRUN_SNAPSHOT_NAME" ]; then echo "usage: make snapshot NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot create -- "$$LABRUN_SNAPSHOT_NAME"

restore: $(LABRUN_READY)
	@if [ -z "$$LABRUN_SNAPSHOT_NAME" ]; then echo "usage: make restore NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot restore -- "$$LABRUN_SNAPSHOT_NAME"

delete: $(LABRUN_READY)
	@if [ -z "$$LABRUN_SNAPSHOT_NAME" ]; then echo "usage: make delete NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot delete -- "$$LABRUN_SNAPSHOT_NAME"

snapshots: $(LABRUN_READY)
	@$(LABRUN) snapshot list

# Asks first (y/N); `make reset YES=1` does not. While the VM runs it is reset in place.
reset: $(LABRUN_READY)
	@$(LABRUN) reset $(if $(YES),--yes)

# Kernel modules (issue 14): build against the lab's kernel, load into / unload from the running
# guest. M=DIR holds a Kbuild or Makefile (examples/hello is a start).
.PHONY: module insmod rmmod
module insmod rmmod: export LABRUN_MODULE_DIR := $(value M)
module: $(LABRUN_READY)
	@if [ -z "$$LABRUN_MODULE_DIR" ]; then echo "usage: make module M=<dir>" >&2; exit 2; fi; \
	$(LABRUN) module build "$$LABRUN_MODULE_DIR"
insmod: $(LABRUN_READY)
	@if [ -z "$$LABRUN_MODULE_DIR" ]; then echo "usage: make insmod M=<dir>" >&2; exit 2; fi; \
	$(LABRUN) module load "$$LABRUN_MODULE_DIR"
rmmod: $(LABRUN_READY)
	@if [ -z "$$LABRUN_MODULE_DIR" ]; then echo "usage: make rmmod M=<dir>" >&2; exit 2; fi; \
	$(LABRUN) module unload "$$LABRUN_MODULE_DIR"

info check: $(LABRUN_READY)
	@$(LABRUN) $@

status stop: build
	@$(LABRUN) $@

# --- tests -------------------------------------------------------------------------------

# The whole run is kept in .build/test.log; when it fails, the failures are repeated at the end,
# where a CI log's tail shows them.
test: SHELL := /bin/bash
test: deps debian-rootfs.qcow2 guest-aarch64/debian-rootfs.qcow2 test-kernel
	$(SWIFT) build --build-tests
	@set -o pipefail; LABRUN_ACCEL=$(TEST_ACCEL) $(SWIFT) test --no-parallel 2>&1 | tee .build/test.log || \
	{ status=$$?; echo "==> failures (whole log: .build/test.log)"; \
	  grep -E '✘|recorded an issue|Expectation failed|error:' .build/test.log | grep -v '^✘ Test run' | head -60; exit $$status; }

# A kernel the lab was not built with, for KernelTests (--kernel with its own modules): Debian's
# cloud kernel, about 26 MB once, kept in guest-build/test-kernel. Without it (no network) those
# tests are skipped: a failed download does not fail the build.
.PHONY: test-kernel
test-kernel:
	-@bash guest/fetch-test-kernel.sh .

test-unit:
	$(SWIFT) test --skip IntegrationTests

test-integration: deps debian-rootfs.qcow2 guest-aarch64/debian-rootfs.qcow2 test-kernel
	$(SWIFT) build --build-tests
	LABRUN_ACCEL=$(TEST_ACCEL) $(SWIFT) test --no-parallel --filter IntegrationTests

# The slow tier: (re)builds the full Debian guest in debian/ (a no-op when it is up to date), then
# boots it under labrun: shell, gcc, agent, share, live snapshots.
test-slow: deps debian-rootfs.qcow2
	$(AS_ROOT)bash guest/build-debian.sh debian
	$(SWIFT) build --build-tests
	LABRUN_SLOW=1 LABRUN_ACCEL=$(TEST_ACCEL) $(SWIFT) test --filter SlowTests

# Issue 7 at full size: the fault, bad-input, security and load suites (200 live snapshot
# cycles, 50 live restores) and a minute of fuzzing with fresh seeds (scripts/fuzz.sh).
# `make test` runs the same suites at reduced load sizes.
.PHONY: test-faults
test-faults: deps debian-rootfs.qcow2
	$(SWIFT) build --build-tests
	LABRUN_ACCEL=$(TEST_ACCEL) LABRUN_LOAD_SCALE=full $(SWIFT) test --skip-build --no-parallel \
	  --filter 'IntegrationTests\.(Fault|Security|Load)'
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash scripts/fuzz.sh

bench: deps build debian-rootfs.qcow2
	bash bench/run.sh

# labrun, its completions and its man page where Debian expects them (PREFIX=/usr/local).
PREFIX ?= /usr/local
.PHONY: install uninstall
install: $(LABRUN_BUILD)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(LABRUN_BUILD) $(DESTDIR)$(PREFIX)/bin/labrun
	$(LABRUN_BUILD) __man > $(DESTDIR)$(PREFIX)/share/man/man1/labrun.1
	$(LABRUN_BUILD) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/labrun
	$(LABRUN_BUILD) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_labrun
	$(LABRUN_BUILD) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/labrun.fish
	@echo "installed labrun in $(DESTDIR)$(PREFIX)/bin (man labrun; completion for bash, zsh and fish)"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/labrun $(DESTDIR)$(PREFIX)/share/man/man1/labrun.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/labrun $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_labrun \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/labrun.fish

clean:
	rm -rf .build .labrun

distclean: clean
	@echo "removing the built guest and ALL image layers (runtime snapshots included)"
	rm -rf guest-build debian-rootfs-base.img debian-rootfs.qcow2 debian-runtime.qcow2 debian-runtime.qcow2.undo
	rm -rf debian guest-aarch64 $(GUEST_FILE) .labrun-checkpoints .labrun-fresh .labrun-suspended*
