# Dingo driver runtime on seL4: build, run and test.
#
#   make run     build everything (debug flavour) and boot system.xml in QEMU
#   make test    host unit tests, tingu verify on the protocols, boot tests in QEMU; ends with "N passed, N failed"
#   make bench   benchmarks under QEMU -icount; figures as ratios to a baseline of the same run
#   make docs    every Tingu protocol as a statechart: build/docs/<protocol>.svg
#   make image   boot media for PCs: build/dingo.img (for a USB stick) and build/dingo.iso
#   make fuzz    fuzz tingu, system-builder and the ring (FUZZ_SECONDS each, default 60)
#   make clean   remove build outputs
#
# Boards: BOARD=pc (x86_64; the default) or BOARD=sabrelite (the i.MX6 Sabre
# Lite, 32-bit ARM): `make run BOARD=sabrelite`, `make image BOARD=sabrelite`.
# `make test` builds and boots both.
#
# Flavours: debug (kernel printing on; run and test) and release (no
# printing; benchmarks). Each has its own kernel under build/kernel/<flavour>
# and its own cargo target dir target/sel4-<flavour> (for the Sabre Lite:
# build/sabrelite/kernel/<flavour>, build/sabrelite/<flavour>,
# target/sel4-sabrelite-<flavour>).

BUILD  := $(CURDIR)/build
BOARD  ?= pc

# What differs per board: the Rust target, where its outputs go, and (ARM)
# core built from the toolchain's library source.
ifeq ($(BOARD),pc)
TARGET    := x86_64-unknown-linux-gnu
BOARD_OUT := $(BUILD)
TARGET_PREFIX := target/sel4-
BUILD_STD :=
else ifeq ($(BOARD),sabrelite)
TARGET    := armv7a-none-eabi
BOARD_OUT := $(BUILD)/sabrelite
TARGET_PREFIX := target/sel4-sabrelite-
# RUSTC_BOOTSTRAP: -Zbuild-std is unstable; Debian's stable toolchain has
# the library source for it (rust-web-src). See README, Toolchain.
BUILD_STD := -Zbuild-std=core,compiler_builtins,alloc -Zbuild-std-features=compiler-builtins-mem
export RUSTC_BOOTSTRAP := 1
else
$(error unknown BOARD '$(BOARD)' (known: pc, sabrelite))
endif
# The bare-metal link setup lives in .cargo/sel4.toml, shared by every program.
SEL4_CARGO := cargo build --config .cargo/sel4.toml --target $(TARGET) $(BUILD_STD)

cargo_profile_debug :=
cargo_profile_release := --release
cargo_outdir_debug := debug
cargo_outdir_release := release

DISK := $(BUILD)/usb-disk.img

# Crates built for seL4 (everything else is a host crate, the workspace's
# default members). PD crates hold the protection domains' binaries; each
# says so in its own Cargo.toml ([package.metadata.dingo] pd = true, and
# boards = [...] unless it is for the pc only). Evaluated when a recipe
# needs them, after the prerequisite step (which installs cargo).
PD_CRATES = $(shell tools/pd-crates.sh $(BOARD))
SEL4_CRATES = monitor sel4-start microkit dingo-pd $(PD_CRATES)
# The ARM boards' boot loader (sel4/loader).
LOADER_CRATES := $(if $(filter sabrelite,$(BOARD)),loader)

.PHONY: all run test bench faults docs fuzz clean prereqs lint kernel-debug kernel-release image-debug image-release image media-test board-images

all: image-debug

prereqs:
	@tools/prereqs.sh

# sel4/kernel/build.sh hashes its inputs and rebuilds only when they changed.
kernel-debug kernel-release: kernel-%: prereqs
	@sel4/kernel/build.sh $* $(BOARD_OUT)/kernel/$* $(BOARD)

# Every system description: the example system and the test systems, and
# the benchmarks (images bench-<name>). In bench/systems/ipc.xml the monitor
# measures the raw kernel baseline too; bench/systems/dingo-port.xml carries
# its own.
# The Sabre Lite's: its example system and its test systems.
ifeq ($(BOARD),pc)
SYSTEMS := system.xml $(wildcard tests/systems/*.xml)
BENCH_SYSTEMS := $(wildcard bench/systems/*.xml)
# The net bench's images (bench-net-<name>), measured by bench/net/run.py.
NET_BENCH_SYSTEMS := $(wildcard bench/net/*.xml)
# The block bench's images (bench-blk-<name>), measured by bench/blk/run.py.
BLK_BENCH_SYSTEMS := $(wildcard bench/blk/*.xml)
# The USB disk bench's image (bench-usb-<name>), measured by bench/usb/run.py.
USB_BENCH_SYSTEMS := $(wildcard bench/usb/*.xml)
else
SYSTEMS := $(BOARD).xml $(wildcard tests/systems/$(BOARD)/*.xml)
BENCH_SYSTEMS :=
NET_BENCH_SYSTEMS :=
BLK_BENCH_SYSTEMS :=
USB_BENCH_SYSTEMS :=
endif

# Per flavour: the monitor and every PD (one cargo build), the bare monitor
# image (monitor.elf: no plan, self-test only), and one image per system
# description (system-builder validates it, embeds the plan, writes a report).
image-debug image-release: image-%: kernel-%
	@[ -n "$(PD_CRATES)" ] || { echo "tools/pd-crates.sh found no PD crates for $(BOARD) (does cargo metadata work here?)"; exit 1; }
	@echo "[user $(BOARD) $*] building the monitor and the PDs (cargo)"
	@SEL4_KERNEL_OUT=$(BOARD_OUT)/kernel/$* $(SEL4_CARGO) --target-dir $(TARGET_PREFIX)$* $(cargo_profile_$*) -p monitor $(LOADER_CRATES:%=-p %) $(PD_CRATES:%=-p %)
	@cargo build -q -p system-builder
	@mkdir -p $(BOARD_OUT)/$*
	@cp $(TARGET_PREFIX)$*/$(TARGET)/$(cargo_outdir_$*)/monitor $(BOARD_OUT)/$*/monitor.elf
	@for l in $(LOADER_CRATES); do cp $(TARGET_PREFIX)$*/$(TARGET)/$(cargo_outdir_$*)/$$l $(BOARD_OUT)/$*/$$l.elf; done
	@for xml in $(SYSTEMS) $(BENCH_SYSTEMS) $(NET_BENCH_SYSTEMS) $(BLK_BENCH_SYSTEMS) $(USB_BENCH_SYSTEMS); do \
	    name=$$(basename $$xml .xml); \
	    case $$xml in bench/net/*) name=bench-net-$$name;; bench/blk/*) name=bench-blk-$$name;; bench/usb/*) name=bench-usb-$$name;; bench/*) name=bench-$$name;; esac; \
	    baseline=$$([ $$name = bench-ipc ] && echo --monitor-bench); \
	    boot=$$([ -n "$(LOADER_CRATES)" ] && echo --loader $(BOARD_OUT)/$*/loader.elf \
	        --kernel $(BOARD_OUT)/kernel/$*/kernel.elf --boot-image $(BOARD_OUT)/$*/$$name-boot.elf); \
	    target/debug/system-builder $$xml --board $(BOARD) --monitor $(BOARD_OUT)/$*/monitor.elf $$baseline $$boot \
	        --search-path $(TARGET_PREFIX)$*/$(TARGET)/$(cargo_outdir_$*) \
	        -o $(BOARD_OUT)/$*/$$name.elf --report $(BOARD_OUT)/$*/$$name-report.txt || exit 1; \
	done
	@# The bare monitor (no plan: self-test only) booted by the loader.
	@if [ -n "$(LOADER_CRATES)" ]; then \
	    target/debug/system-builder --board $(BOARD) --boot-only --loader $(BOARD_OUT)/$*/loader.elf \
	        --kernel $(BOARD_OUT)/kernel/$*/kernel.elf --monitor $(BOARD_OUT)/$*/monitor.elf \
	        --boot-image $(BOARD_OUT)/$*/monitor-boot.elf || exit 1; \
	fi

# The other board's images, for make test.
board-images:
	@$(MAKE) --no-print-directory BOARD=sabrelite image-debug

# The raw disk behind QEMU's usb-storage device: 16 MiB of a known pattern
# (tests/pds/usb-check/src/lib.rs: word w of block b is
# 0x5a5a000000000000 | b << 16 | w, block 0 starts with the label) that
# the USB test reads back.
$(DISK): tests/pds/usb-check/src/lib.rs
	@mkdir -p $(BUILD)
	@python3 -c 'import struct, sys; \
	    f = open(sys.argv[1], "wb"); \
	    [f.write((b"DINGO USB DISK 1" + struct.pack("<62Q", *[0x5a5a000000000000 | w for w in range(2, 64)])) if b == 0 \
	     else struct.pack("<64Q", *[0x5a5a000000000000 | b << 16 | w for w in range(64)])) for b in range(32768)]' $@

# The TCG plugin counting guest instructions for the net bench (QEMU ships
# no plugin header; the plugin declares the few entry points it uses).
PLUGIN := $(BUILD)/insn-count.so
$(PLUGIN): bench/net/insn-count.c
	@mkdir -p $(BUILD)
	@gcc -shared -fPIC -O2 -Wall -Wextra -o $@ $<

# The net bench's Linux baseline (bench/linux/build.py: Debian's kernel and
# busybox, fetched by pinned version with apt-get, and an initramfs).
LINUX_BASELINE := $(BUILD)/linux/initramfs.cpio
$(LINUX_BASELINE): bench/linux/build.py bench/linux/udp-echo.c
	@tools/prereqs.sh --bench
	@python3 bench/linux/build.py --out $(BUILD)/linux

bench: image-release $(DISK) $(PLUGIN) $(LINUX_BASELINE)
	@python3 bench/run.py --build $(BUILD) $(patsubst bench/systems/%.xml,bench-%,$(BENCH_SYSTEMS))
	@cargo build -q --release -p net-peer
	@python3 bench/net/run.py --build $(BUILD) --plugin $(PLUGIN) --linux $(BUILD)/linux
	@python3 bench/blk/run.py --build $(BUILD) --plugin $(PLUGIN)
	@python3 bench/usb/run.py --build $(BUILD) --plugin $(PLUGIN)

# Statecharts of the protocol library (components.tingu only combines them).
PROTOCOLS := $(filter-out %/components.tingu,$(wildcard tingu/dingo-protocols/*.tingu))

docs:
	@tools/prereqs.sh --docs
	@cargo build -q -p tingu
	@mkdir -p $(BUILD)/docs
	@for f in $(PROTOCOLS); do \
	    target/debug/tingu dot $$f -o $(BUILD)/docs/$$(basename $$f .tingu).dot || exit 1; \
	done
	@for d in $(BUILD)/docs/*.dot; do dot -Tsvg $$d -o $${d%.dot}.svg || exit 1; done
	@ls $(BUILD)/docs/*.svg | sed 's/^/docs: /'

ifeq ($(BOARD),pc)
# Boot media for PCs (tools/boot-media.py): GRUB, the debug kernel (it
# prints on COM1) and the image of system SYSTEM (default: system.xml's;
# any name under build/debug/ works, e.g. SYSTEM=timer), as a disk image to
# write onto a USB stick and as an ISO. Each boots on BIOS and UEFI PCs.
SYSTEM ?= system
MEDIA_KERNEL := $(BUILD)/kernel/debug/kernel.elf
image: image-debug
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/$(SYSTEM).elf \
	    --iso $(BUILD)/dingo.iso --disk $(BUILD)/dingo.img

# Media only the boot tests use: the example system (it ends its run;
# system.xml's stays up) as ISO and disk image and booted by GRUB with
# multiboot v1 (BIOS only), the screen console's test system, and the full
# system (its network is checked from the host on each medium).
media-test: image-debug
	@mkdir -p $(BUILD)/media
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/example.elf \
	    --iso $(BUILD)/media/example.iso --disk $(BUILD)/media/example.img
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/example.elf \
	    --multiboot 1 --iso $(BUILD)/media/multiboot1.iso
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/console.elf \
	    --iso $(BUILD)/media/console.iso
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/system.elf \
	    --iso $(BUILD)/media/system.iso --disk $(BUILD)/media/system.img

# Coverage-guided fuzzing with libFuzzer (from the libfuzzer-sys crate) on
# stable Rust: LLVM's SanitizerCoverage through plain -C flags, for the
# target only (--target keeps build scripts uninstrumented). Not part of
# `make test`; the inputs that once failed are host tests there. Program
# images for system-builder's inputs come from the debug build if present.
FUZZ_SECONDS ?= 60
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

# The fault campaign (tests/faults.py): 1000 faults into the RTL8139
# driver during a UDP echo stream; prints its figures.
faults: image-debug
	@cargo build -q -p net-peer
	@python3 tests/faults.py --build $(BUILD)
	@python3 tests/faults.py --build $(BUILD) --system usb-faults

fuzz:
	@tools/prereqs.sh --fuzz
	@echo "[fuzz] building the fuzz targets (instrumented) and scale"
	@RUSTFLAGS="$(FUZZ_RUSTFLAGS)" cargo build -q --release -p fuzz --target $(TARGET) --target-dir target/fuzz \
	    --bin fuzz-tingu --bin fuzz-system-builder --bin fuzz-ring
	@cargo build -q --release -p fuzz --bin scale
	@target/release/scale $(BUILD)/fuzz/scale
	@python3 fuzz/run.py --seconds $(FUZZ_SECONDS) --bin-dir target/fuzz/$(TARGET)/release \
	    --out $(BUILD)/fuzz --image-dir target/sel4-debug/$(TARGET)/debug

run: image-debug $(DISK)
	@qemu/qemu.py run --kernel $(BUILD)/kernel/debug/kernel32.elf --image $(BUILD)/debug/system.elf --disk $(DISK)

test: image-debug image-release $(DISK) image media-test board-images
	@SEL4_KERNEL_OUT=$(BUILD)/kernel/debug python3 tests/run.py --build $(BUILD)

lint: kernel-debug
	@tools/prereqs.sh --fuzz
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --all-targets -- -D warnings
	cargo clippy -p fuzz --all-targets -- -D warnings
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --config .cargo/sel4.toml --target $(TARGET) --target-dir target/sel4-debug $(SEL4_CRATES:%=-p %) -- -D warnings
	@$(MAKE) --no-print-directory BOARD=sabrelite lint
	cargo fmt --all --check
else
# What an ARM board's U-Boot loads: the boot image of system SYSTEM
# (default: $(BOARD).xml's), an ELF for `bootelf`, alone and on an SD card
# image (one FAT partition); README, "Booting the Sabre Lite", has the
# U-Boot commands.
SYSTEM ?= $(BOARD)
image: image-debug
	@tools/boot-media.py --board-image $(BOARD_OUT)/debug/$(SYSTEM)-boot.elf \
	    --elf $(BOARD_OUT)/dingo.elf --disk $(BOARD_OUT)/dingo-sd.img

run: image-debug
	@qemu/qemu.py run --board $(BOARD) --image $(BOARD_OUT)/debug/$(SYSTEM)-boot.elf

test:
	@$(MAKE) --no-print-directory BOARD=pc test

lint: kernel-debug
	SEL4_KERNEL_OUT=$(BOARD_OUT)/kernel/debug $(SEL4_CARGO:build=clippy) --target-dir $(TARGET_PREFIX)debug $(SEL4_CRATES:%=-p %) $(LOADER_CRATES:%=-p %) -- -D warnings
endif

clean:
	rm -rf $(BUILD) target
