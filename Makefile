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
# Flavours: debug (kernel printing on; run and test) and release (no
# printing; benchmarks). Each has its own kernel under build/kernel/<flavour>
# and its own cargo target dir target/sel4-<flavour>.

BUILD  := $(CURDIR)/build
TARGET := x86_64-unknown-linux-gnu
# The bare-metal link setup lives in .cargo/sel4.toml, shared by every program.
SEL4_CARGO := cargo build --config .cargo/sel4.toml --target $(TARGET)

cargo_profile_debug :=
cargo_profile_release := --release
cargo_outdir_debug := debug
cargo_outdir_release := release

DISK := $(BUILD)/usb-disk.img

# Crates built for seL4 (everything else is a host crate, the workspace's
# default members). PD crates hold the protection domains' binaries; each
# says so in its own Cargo.toml ([package.metadata.dingo] pd = true).
PD_CRATES := $(shell tools/pd-crates.sh)
ifeq ($(PD_CRATES),)
$(error tools/pd-crates.sh found no PD crates (does `cargo metadata` work here?))
endif
SEL4_CRATES := monitor sel4-start microkit dingo-pd $(PD_CRATES)

.PHONY: all run test bench docs fuzz clean prereqs lint kernel-debug kernel-release image-debug image-release image media-test

all: image-debug

prereqs:
	@tools/prereqs.sh

# sel4/kernel/build.sh hashes its inputs and rebuilds only when they changed.
kernel-debug kernel-release: kernel-%: prereqs
	@sel4/kernel/build.sh $* $(BUILD)/kernel/$*

# Every system description: the example system and the test systems, and
# the benchmarks (images bench-<name>). In bench/systems/ipc.xml the monitor
# measures the raw kernel baseline too; bench/systems/dingo-port.xml carries
# its own.
SYSTEMS := system.xml $(wildcard tests/systems/*.xml)
BENCH_SYSTEMS := $(wildcard bench/systems/*.xml)
# The net bench's images (bench-net-<name>), measured by bench/net/run.py.
NET_BENCH_SYSTEMS := $(wildcard bench/net/*.xml)

# Per flavour: the monitor and every PD (one cargo build), the bare monitor
# image (monitor.elf: no plan, self-test only), and one image per system
# description (system-builder validates it, embeds the plan, writes a report).
image-debug image-release: image-%: kernel-%
	@echo "[user $*] building the monitor and the PDs (cargo)"
	@SEL4_KERNEL_OUT=$(BUILD)/kernel/$* $(SEL4_CARGO) --target-dir target/sel4-$* $(cargo_profile_$*) -p monitor $(PD_CRATES:%=-p %)
	@cargo build -q -p system-builder
	@mkdir -p $(BUILD)/$*
	@cp target/sel4-$*/$(TARGET)/$(cargo_outdir_$*)/monitor $(BUILD)/$*/monitor.elf
	@for xml in $(SYSTEMS) $(BENCH_SYSTEMS) $(NET_BENCH_SYSTEMS); do \
	    name=$$(basename $$xml .xml); \
	    case $$xml in bench/net/*) name=bench-net-$$name;; bench/*) name=bench-$$name;; esac; \
	    baseline=$$([ $$name = bench-ipc ] && echo --monitor-bench); \
	    target/debug/system-builder $$xml --monitor $(BUILD)/$*/monitor.elf $$baseline \
	        --search-path target/sel4-$*/$(TARGET)/$(cargo_outdir_$*) \
	        -o $(BUILD)/$*/$$name.elf --report $(BUILD)/$*/$$name-report.txt || exit 1; \
	done

# A small raw disk behind QEMU's usb-storage device.
$(DISK):
	@mkdir -p $(BUILD)
	@truncate -s 4M $@

# The TCG plugin counting guest instructions for the net bench (QEMU ships
# no plugin header; the plugin declares the few entry points it uses).
PLUGIN := $(BUILD)/insn-count.so
$(PLUGIN): bench/net/insn-count.c
	@mkdir -p $(BUILD)
	@gcc -shared -fPIC -O2 -Wall -Wextra -o $@ $<

bench: image-release $(DISK) $(PLUGIN)
	@python3 bench/run.py --build $(BUILD) $(patsubst bench/systems/%.xml,bench-%,$(BENCH_SYSTEMS))
	@cargo build -q --release -p net-peer
	@python3 bench/net/run.py --build $(BUILD) --plugin $(PLUGIN)

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
# multiboot v1 (BIOS only), and the screen console's test system.
media-test: image-debug
	@mkdir -p $(BUILD)/media
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/example.elf \
	    --iso $(BUILD)/media/example.iso --disk $(BUILD)/media/example.img
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/example.elf \
	    --multiboot 1 --iso $(BUILD)/media/multiboot1.iso
	@tools/boot-media.py --kernel $(MEDIA_KERNEL) --system $(BUILD)/debug/console.elf \
	    --iso $(BUILD)/media/console.iso

# Coverage-guided fuzzing with libFuzzer (from the libfuzzer-sys crate) on
# stable Rust: LLVM's SanitizerCoverage through plain -C flags, for the
# target only (--target keeps build scripts uninstrumented). Not part of
# `make test`; the inputs that once failed are host tests there. Program
# images for system-builder's inputs come from the debug build if present.
FUZZ_SECONDS ?= 60
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

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

test: image-debug image-release $(DISK) image media-test
	@SEL4_KERNEL_OUT=$(BUILD)/kernel/debug python3 tests/run.py --build $(BUILD)

lint: kernel-debug
	@tools/prereqs.sh --fuzz
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --all-targets -- -D warnings
	cargo clippy -p fuzz --all-targets -- -D warnings
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --config .cargo/sel4.toml --target $(TARGET) --target-dir target/sel4-debug $(SEL4_CRATES:%=-p %) -- -D warnings
	cargo fmt --all --check

clean:
	rm -rf $(BUILD) target
