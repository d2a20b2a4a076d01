# Dingo driver runtime on seL4: build, run and test.
#
#   make run     build everything (debug flavour) and boot it in QEMU
#   make test    host unit tests + boot tests in QEMU; ends with "N passed, N failed"
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

.PHONY: all run test clean prereqs lint kernel-debug kernel-release image-debug image-release

all: image-debug

prereqs:
	@tools/prereqs.sh

# kernel/build.sh hashes its inputs and rebuilds only when they changed.
kernel-debug kernel-release: kernel-%: prereqs
	@kernel/build.sh $* $(BUILD)/kernel/$*

image-debug image-release: image-%: kernel-%
	@echo "[user $*] building the monitor (cargo)"
	@SEL4_KERNEL_OUT=$(BUILD)/kernel/$* $(SEL4_CARGO) --target-dir target/sel4-$* $(cargo_profile_$*) -p monitor
	@mkdir -p $(BUILD)/$*
	@cp target/sel4-$*/$(TARGET)/$(cargo_outdir_$*)/monitor $(BUILD)/$*/image.elf

# A small raw disk behind QEMU's usb-storage device.
$(DISK):
	@mkdir -p $(BUILD)
	@truncate -s 4M $@

run: image-debug $(DISK)
	@qemu/qemu.py run --kernel $(BUILD)/kernel/debug/kernel32.elf --image $(BUILD)/debug/image.elf --disk $(DISK)

test: image-debug image-release $(DISK)
	@SEL4_KERNEL_OUT=$(BUILD)/kernel/debug python3 tests/run.py --build $(BUILD)

lint: kernel-debug
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --workspace --all-targets --exclude monitor --exclude sel4-start -- -D warnings
	SEL4_KERNEL_OUT=$(BUILD)/kernel/debug cargo clippy --config .cargo/sel4.toml --target $(TARGET) --target-dir target/sel4-debug -p monitor -p sel4-start -- -D warnings
	cargo fmt --all --check

clean:
	rm -rf $(BUILD) target
