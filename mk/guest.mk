# mk/guest.mk -- the guest VM images, built from Debian packages (included by the top Makefile;
# run from the top of the tree).
#
#   make guest            build/guest/{vmlinux,initrd.img,rootfs.erofs}, rebuilding only what
#                         changed (file dependencies; the kernel package is downloaded once)
#   make guest-deps       apt-get install the host packages the build needs (guest/deps.sh)
#   make guest-smoke      boot the images under QEMU and check them (guest/smoke-boot.sh)
#   make guest-config-check  show how the guest's kernel options are built (y/m/missing)
#   make guest-clean      remove build/guest outputs, keep the downloaded kernel package
#   make guest-distclean  also forget the kernel package (the next build picks the newest)
#
# Variables:
#   GUEST_KERNEL_PKG       Debian package to take the kernel from, e.g.
#                          linux-image-6.1.0-57-amd64-unsigned; empty: the one already
#                          downloaded, else the newest linux-image-6.1.0-*-amd64 apt knows
#   GUEST_AGENT            executable installed as /usr/bin/cc-oci-runtime (bin/cc-oci-runtime)
#   GUEST_INITRD_COMPRESS  none (default: boots fastest under TCG) or lz4 (not tracked:
#                          run `make guest-clean` after changing it)
#
# Outputs other makefiles may use: $(GUEST_VMLINUX) $(GUEST_INITRD) $(GUEST_IMAGE).

GUEST_DIR             := build/guest
GUEST_PKG_DIR         := $(GUEST_DIR)/pkgs
GUEST_KROOT           := $(GUEST_DIR)/kernel
GUEST_VMLINUX         := $(GUEST_DIR)/vmlinux
GUEST_INITRD          := $(GUEST_DIR)/initrd.img
GUEST_IMAGE           := $(GUEST_DIR)/rootfs.erofs
GUEST_KERNEL_PKG      ?=
GUEST_AGENT           ?= bin/cc-oci-runtime
GUEST_INITRD_COMPRESS ?= none

GUEST_DEPS_STAMP      := $(GUEST_DIR)/.deps
GUEST_KERNEL_WANT     := $(GUEST_PKG_DIR)/kernel.want
GUEST_KERNEL_STAMP    := $(GUEST_KROOT)/.unpacked
# Host files copied into the images: a package upgrade rebuilds them.
GUEST_HOST_FILES      := /bin/busybox /usr/bin/crun /usr/sbin/criu /bin/tar

.PHONY: guest guest-deps guest-smoke guest-config-check guest-clean guest-distclean guest-FORCE

guest: $(GUEST_VMLINUX) $(GUEST_INITRD) $(GUEST_IMAGE)

guest-deps: $(GUEST_DEPS_STAMP)

$(GUEST_DEPS_STAMP): guest/deps.sh
	@mkdir -p $(@D)
	guest/deps.sh
	@touch $@

$(GUEST_HOST_FILES): | $(GUEST_DEPS_STAMP)

# The requested package name, rewritten only when it changes (so a new GUEST_KERNEL_PKG
# re-unpacks, and an unchanged one rebuilds nothing).
GUEST_KERNEL_WANT_VALUE := $(or $(strip $(GUEST_KERNEL_PKG)),auto)
ifneq ($(GUEST_KERNEL_WANT_VALUE),$(strip $(file <$(GUEST_KERNEL_WANT))))
$(GUEST_KERNEL_WANT): guest-FORCE
endif
$(GUEST_KERNEL_WANT):
	@mkdir -p $(@D)
	@echo '$(GUEST_KERNEL_WANT_VALUE)' >$@

guest-FORCE:

# Download (once) and unpack the kernel package with dpkg -x -- never installed into the
# host's /boot. The package has no modules.dep (depmod runs at install time): make one.
$(GUEST_KERNEL_STAMP): $(GUEST_KERNEL_WANT) guest/fetch-kernel.sh | $(GUEST_DEPS_STAMP)
	@set -e; \
	deb=$$(guest/fetch-kernel.sh $(GUEST_PKG_DIR) "$$(cat $(GUEST_KERNEL_WANT))"); \
	echo "  UNPACK  $$deb"; \
	rm -rf $(GUEST_KROOT); mkdir -p $(GUEST_KROOT); \
	dpkg -x "$$deb" $(GUEST_KROOT); \
	kver=$$(ls $(GUEST_KROOT)/lib/modules); \
	depmod -b $(GUEST_KROOT) "$$kver"; \
	echo "$$deb" >$@

$(GUEST_VMLINUX): $(GUEST_KERNEL_STAMP) guest/extract-vmlinux.sh
	@echo "  VMLINUX $@"
	@guest/extract-vmlinux.sh $$(ls $(GUEST_KROOT)/boot/vmlinuz-* | head -n 1) $@

$(GUEST_INITRD): $(GUEST_KERNEL_STAMP) guest/init guest/modules.list guest/mkinitrd.sh \
		guest/copy-modules.sh guest/resolve-modules.sh /bin/busybox
	@echo "  INITRD  $@"
	@guest/mkinitrd.sh $(GUEST_KROOT) guest/init guest/modules.list $@ $(GUEST_INITRD_COMPRESS)

$(GUEST_IMAGE): $(GUEST_AGENT) guest/mkrootfs.sh guest/criu-modules.list guest/layer-modules.list guest/copy-modules.sh \
		$(GUEST_KERNEL_STAMP) $(GUEST_HOST_FILES) | $(GUEST_DEPS_STAMP)
	@echo "  EROFS   $@"
	@mkdir -p $(@D)
	@guest/mkrootfs.sh $(GUEST_AGENT) $@ $(GUEST_KROOT) guest/criu-modules.list guest/layer-modules.list

guest-smoke: guest
	guest/smoke-boot.sh

guest-config-check: $(GUEST_KERNEL_STAMP)
	@grep -E '^(# )?CONFIG_(VIRTIO|VIRTIO_MMIO|VIRTIO_CONSOLE|VIRTIO_BLK|VIRTIO_NET|EROFS_FS|NET_9P|NET_9P_VIRTIO|9P_FS|9P_FSCACHE|NETFS_SUPPORT|FSCACHE|OVERLAY_FS|LIBCRC32C|CRYPTO_CRC32C|DEVTMPFS|TMPFS|PVH|RD_LZ4|BLK_DEV_INITRD|MODULE_SIG|MODULE_SIG_FORCE|MODULE_COMPRESS_[A-Z]*)[= ]' \
		$(GUEST_KROOT)/boot/config-*

guest-clean:
	rm -rf $(GUEST_KROOT) $(GUEST_VMLINUX) $(GUEST_INITRD) $(GUEST_INITRD).stage \
		$(GUEST_IMAGE) $(GUEST_IMAGE).stage $(GUEST_DIR)/*.tmp $(GUEST_DIR)/smoke \
		$(GUEST_DEPS_STAMP)

guest-distclean: guest-clean
	rm -rf $(GUEST_PKG_DIR)
