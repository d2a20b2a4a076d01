#!/usr/bin/env bash
# Builds the seL4 5.0.0 kernel for one board in one configuration, from the
# source carried by the crates.io package sel4-sys (pinned in sel4/sel4/Cargo.toml,
# checksummed in Cargo.lock), with the patches in sel4/kernel/patches applied
# (every patch to every board: each touches only its architecture's files,
# or both).
#
#   sel4/kernel/build.sh debug|release OUTDIR [BOARD]
#
# BOARD is pc (x86_64, pc99; the default) or sabrelite (32-bit ARM, imx6,
# Cortex-A9). OUTDIR receives:
#   kernel.elf                 the kernel
#   kernel32.elf               (pc) the same as ELF32: QEMU's multiboot wants it
#   include/                   the config (autoconf.h) and libsel4 headers the
#                              kernel's own generators make from its XML files;
#                              the sel4 bindings crate reads these, and
#                              include/board says which architecture they are for
#   build.log                  the full compiler output
#   stamp                      hash of every input; equal stamp = no rebuild
#
# The kernel source is copied into OUTDIR and patched there; it is never part
# of the repository.
set -euo pipefail

usage="usage: sel4/kernel/build.sh debug|release OUTDIR [pc|sabrelite]"
flavor=${1:?$usage}
out=${2:?$usage}
board=${3:-pc}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
venv=$root/build/venv

say() { printf '[kernel %s %s] %s\n' "$board" "$flavor" "$*"; }
die() { printf '[kernel %s %s] error: %s\n' "$board" "$flavor" "$*" >&2; exit 1; }

case $flavor in
    # DEBUG=1 turns on kernel printing and the debug syscalls (see patch 0003).
    debug) make_flags=(DEBUG=1) ;;
    release) make_flags=() ;;
    *) die "unknown flavor '$flavor' (expected debug or release)" ;;
esac
# gcc 12 warns on code this kernel version was written for; -Werror would stop.
cflags="-Wno-address-of-packed-member -Wno-array-bounds"
# What differs per board: the kernel's make variables, the compiler, and
# where the generators' inputs live in libsel4.
case $board in
    pc)
        board_flags=(ARCH=x86 PLAT=pc99 SEL4_ARCH=x86_64)
        cc=gcc
        arch=x86 sel4_arch=x86_64 plat=pc99 target=x86_64-unknown-linux-gnu ;;
    sabrelite)
        # This kernel's 32-bit ARM code saves no FPU state, so nothing in
        # it (or in user code) may use the FPU: soft float throughout.
        board_flags=(ARCH=arm PLAT=imx6 CPU=cortex-a9 ARMV=armv7-a TOOLPREFIX=arm-linux-gnueabihf-)
        cflags="$cflags -mfloat-abi=soft"
        cc=arm-linux-gnueabihf-gcc
        arch=arm sel4_arch=aarch32 plat=imx6 target=armv7a-none-eabi ;;
    *) die "unknown board '$board' (expected pc or sabrelite)" ;;
esac
command -v "$cc" >/dev/null || die "no $cc (tools/prereqs.sh installs it)"

# --- Python venv for the kernel's code generators -------------------------
venv_key=$(sha256sum "$here/requirements.txt" | cut -c1-16)
if [ "$(cat "$venv/.key" 2>/dev/null)" != "$venv_key" ]; then
    say "creating Python venv for the kernel's generators ($venv)"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (is python3-venv installed?)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
        || die "pip could not install sel4/kernel/requirements.txt"
    echo "$venv_key" > "$venv/.key"
fi

# --- Kernel source from the registry -------------------------------------
mkdir -p "$root/build"
# cargo metadata downloads the pinned package (checksummed by Cargo.lock) and
# tells where cargo unpacked it.
manifest=$(cd "$root" && cargo metadata --format-version 1 2>"$root/build/cargo-metadata.err" \
    | python3 -c 'import json,sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "sel4-sys": print(p["manifest_path"]); break') \
    || die "cargo metadata failed: $(tail -n 3 "$root/build/cargo-metadata.err")"
[ -n "$manifest" ] || die "sel4-sys is not in the cargo dependency graph (sel4/sel4/Cargo.toml pins it)"
src=$(dirname "$manifest")/seL4
[ -f "$src/VERSION" ] || die "no seL4 tree under $(dirname "$manifest")"

# --- Up to date? -----------------------------------------------------------
key=$( {
    echo "board=$board flavor=$flavor make_flags=${make_flags[*]:-} ${board_flags[*]} cflags=$cflags"
    echo "source=$manifest version=$(cat "$src/VERSION")"
    "$cc" --version | head -n 1
    cat "$0" "$here"/patches/*.patch
} | sha256sum | cut -c1-64)
if [ -f "$out/kernel.elf" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
    say "up to date ($out)"
    exit 0
fi

# --- Copy, patch, build ----------------------------------------------------
start=$(date +%s)
say "building seL4 $(cat "$src/VERSION") into $out (log: $out/build.log)"
rm -rf "$out"
mkdir -p "$out"
cp -r "$src" "$out/src"
for p in "$here"/patches/*.patch; do
    say "patch $(basename "$p")"
    patch -d "$out/src" -p1 --batch --quiet < "$p" || die "patch $(basename "$p") does not apply"
done

kmake() {
    rm -rf "$out/obj"
    mkdir -p "$out/obj"
    (cd "$out/obj" && PATH="$venv/bin:$PATH" CFLAGS="$cflags" \
        make -f ../src/Makefile SOURCE_ROOT=../src "${board_flags[@]}" \
        "${make_flags[@]}" -j"$(nproc)") > "$out/build.log" 2>&1
}
if ! kmake; then
    # Two of the kernel's generators may write ply's parser table at the
    # same time under -j (seen once on ARM: "parsetab has no attribute
    # _tabversion"); a second run finds the table written.
    if grep -q _tabversion "$out/build.log"; then
        say "generators raced on ply's parser table; building once more"
        kmake || { tail -n 20 "$out/build.log" >&2; die "kernel build failed; full log: $out/build.log"; }
    else
        tail -n 20 "$out/build.log" >&2
        die "kernel build failed; full log: $out/build.log"
    fi
fi
cp "$out/obj/kernel.elf" "$out/kernel.elf"
if [ "$board" = pc ]; then
    objcopy -O elf32-i386 "$out/kernel.elf" "$out/kernel32.elf"
fi

# --- libsel4 headers for the bindings ----------------------------------------
# Invocation labels and syscall numbers depend on the config, so they come
# from the kernel's own generators, run on this very tree.
lib=$out/src/libsel4
inc=$out/include
mkdir -p "$inc/sel4/arch" "$inc/sel4/sel4_arch"
cp "$out/src/include/plat/$plat/autoconf.h" "$inc/autoconf.h"
gen() { PATH="$venv/bin:$PATH" python "$@" || die "generator failed: $*"; }
gen "$lib/tools/invocation_header_gen.py" --libsel4 \
    --xml "$lib/include/interfaces/sel4.xml" --dest "$inc/sel4/invocation.h"
gen "$lib/tools/invocation_header_gen.py" --libsel4 --sel4_arch \
    --xml "$lib/sel4_arch_include/$sel4_arch/interfaces/sel4arch.xml" --dest "$inc/sel4/sel4_arch/invocation.h"
gen "$lib/tools/invocation_header_gen.py" --libsel4 --arch \
    --xml "$lib/arch_include/$arch/interfaces/sel4arch.xml" --dest "$inc/sel4/arch/invocation.h"
gen "$lib/tools/syscall_header_gen.py" \
    --xml "$lib/include/api/syscall.xml" --libsel4_header "$inc/sel4/syscall.h"
# The bindings' build script compiles a probe against these trees, with
# this compiler, for this architecture (it checks the Rust target too).
echo "$out/src/libsel4" > "$inc/libsel4-path"
{
    echo "board=$board"
    echo "arch=$arch"
    echo "sel4_arch=$sel4_arch"
    echo "plat=$plat"
    echo "cc=$cc"
    echo "target=$target"
} > "$inc/board"
# The kernel Makefile passes these on the command line, not in autoconf.h;
# libsel4's headers (debug syscalls) depend on them too.
{
    echo "/* Defines the kernel was built with beyond autoconf.h ($flavor). */"
    if [ "$flavor" = debug ]; then
        echo "#define CONFIG_DEBUG_BUILD 1"
        echo "#define CONFIG_PRINTING 1"
    fi
} > "$inc/kernel_defines.h"

echo "$key" > "$out/stamp"
say "done in $(( $(date +%s) - start ))s"
