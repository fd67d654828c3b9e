# labrun: the lab's entry points. `make run` sets everything up and boots the default guest;
# `make test` runs the whole test suite. Both install what they need (apt, as root).

SWIFT        ?= swift
CONFIG       ?= release
LABRUN_BUILD := .build/$(CONFIG)/labrun
LABRUN       := $(LABRUN_BUILD)
# Integration tests and CI run under TCG: KVM is broken on the build machines.
TEST_ACCEL   ?= tcg

# Debian packages labrun, its guest builder and its tests need.
APT_PACKAGES := qemu-system-x86 qemu-utils busybox-static cpio xz-utils fakeroot e2fsprogs gdb

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
	@echo "make test         unit + integration tests (boots the real guest under QEMU)"
	@echo "make guest        build the tiny default guest (Debian kernel + busybox)"
	@echo "make clean        remove build products (never the images; see distclean)"

# --- set-up -----------------------------------------------------------------------------

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "make: need root to run: apt-get install$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(SWIFT) build -c $(CONFIG) --product labrun

guest: deps
	bash guest/build-tiny.sh .

# Built only when missing.
debian-rootfs.qcow2 guest-build/vmlinux:
	$(MAKE) guest

# --- the VM ------------------------------------------------------------------------------

run: deps build debian-rootfs.qcow2
	$(LABRUN) boot --debug

nodebug: deps build debian-rootfs.qcow2
	$(LABRUN) boot

shared: deps build debian-rootfs.qcow2
	$(LABRUN) boot --shared --debug

debug:
	gdb -q $(if $(wildcard guest-build/vmlinux),guest-build/vmlinux) -ex "target remote 127.0.0.1:$${GDB_PORT:-1234}"

# --- snapshots and images (NAME is passed through the environment, never spliced into the shell) ---

snapshot: build
	@if [ -z "$$NAME" ]; then echo "usage: make snapshot NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot create "$$NAME"

restore: build
	@if [ -z "$$NAME" ]; then echo "usage: make restore NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot restore "$$NAME"

delete: build
	@if [ -z "$$NAME" ]; then echo "usage: make delete NAME=<name>" >&2; exit 2; fi; \
	$(LABRUN) snapshot delete "$$NAME"

snapshots: build
	@$(LABRUN) snapshot list

reset: build
	@$(LABRUN) reset

info check status stop: build
	@$(LABRUN) $@

# --- tests -------------------------------------------------------------------------------

test: deps debian-rootfs.qcow2
	$(SWIFT) build --build-tests
	LABRUN_ACCEL=$(TEST_ACCEL) $(SWIFT) test

test-unit:
	$(SWIFT) test --skip IntegrationTests

test-integration: deps debian-rootfs.qcow2
	$(SWIFT) build --build-tests
	LABRUN_ACCEL=$(TEST_ACCEL) $(SWIFT) test --filter IntegrationTests

bench: deps build debian-rootfs.qcow2
	bash bench/run.sh

clean:
	rm -rf .build .labrun

distclean: clean
	@echo "removing the built guest and ALL image layers (runtime snapshots included)"
	rm -rf guest-build debian-rootfs-base.img debian-rootfs.qcow2 debian-runtime.qcow2 debian-runtime.qcow2.undo
