#!/usr/bin/env bash
# Checks the host tools the build needs. A missing one is reported in one
# line; as root on Debian or Ubuntu it is installed with apt-get instead
# (set NO_APT=1 to only report). Exit status 1 if anything is still missing.
#   tools/prereqs.sh          what building, running and testing need
#   tools/prereqs.sh --docs   also graphviz, for make docs
#   tools/prereqs.sh --fuzz   also a C++ compiler, for libFuzzer (make fuzz, make lint)
#   tools/prereqs.sh --bench  also cpio and dpkg-deb, for the Linux baseline (make bench)
set -u

# command (or a file, for packages that ship no command) : Debian package :
# what it is for
needs=(
    # The one Rust toolchain for the host tools and every board (see
    # rust-toolchain.toml): Debian's, because it ships the standard
    # library's source, from which cargo builds `core` for 32-bit ARM.
    "/usr/bin/rustc:rustc-web:compiling (the Rust toolchain rust-toolchain.toml names)"
    "/usr/bin/cargo:cargo-web:building (the Rust toolchain rust-toolchain.toml names)"
    "/usr/lib/rustlib/src/rust/library/core/Cargo.toml:rust-web-src:building core for ARM (-Zbuild-std)"
    "/usr/bin/cargo-clippy:rust-web-clippy:make lint"
    "/usr/bin/rustfmt:rustfmt-web:make lint"
    "qemu-system-x86_64:qemu-system-x86:running the system"
    "xmllint:libxml2-utils:the seL4 build's XML checks"
    "gcc:gcc:the seL4 kernel and the bindings probe"
    "objcopy:binutils:making the kernel multiboot-loadable"
    "patch:patch:applying sel4/kernel/patches"
    "python3:python3:the seL4 code generators"
    "spin:spin:tingu verify (model-checking the protocols; gcc compiles SPIN's verifier)"
    # Boot media (make image; the boot tests boot them as a PC would).
    "/usr/lib/grub/i386-pc/boot.img:grub-pc-bin:GRUB for BIOS PCs on the boot media"
    "/usr/lib/grub/x86_64-efi/kernel.img:grub-efi-amd64-bin:GRUB for UEFI PCs on the boot media"
    "xorriso:xorriso:writing the ISO (grub-mkrescue)"
    "mformat:mtools:the FAT partition of the disk image, without mounting it"
    "/usr/share/ovmf/OVMF.fd:ovmf:UEFI firmware for booting the media in QEMU"
    # The i.MX6 Sabre Lite board (BOARD=sabrelite).
    "arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf:the seL4 kernel for ARM, the ARM bindings probe and linking ARM programs"
    "qemu-system-arm:qemu-system-arm:running the Sabre Lite system"
)
if [ "${1:-}" = --docs ]; then
    needs+=("dot:graphviz:drawing the protocol statecharts")
fi
if [ "${1:-}" = --bench ]; then
    needs+=("cpio:cpio:the Linux baseline's initramfs (bench/linux)" "dpkg-deb:dpkg:unpacking the Linux baseline's packages")
fi
if [ "${1:-}" = --fuzz ]; then
    needs+=("g++:g++:building libFuzzer (the libfuzzer-sys crate)")
fi

have() {
    case $1 in
        python3) command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null ;;
        /*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null ;;
    esac
}

missing=()
for n in "${needs[@]}"; do
    IFS=: read -r cmd pkg why <<<"$n"
    have "$cmd" || missing+=("$cmd:$pkg:$why")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# python3 without venv is Debian's split-out python3-venv.
pkgs=()
for m in "${missing[@]}"; do
    IFS=: read -r cmd pkg why <<<"$m"
    [ "$cmd" = python3 ] && command -v python3 >/dev/null && pkg=python3-venv
    pkgs+=("$pkg")
done

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null && [ -z "${NO_APT:-}" ]; then
    for m in "${missing[@]}"; do
        IFS=: read -r cmd pkg why <<<"$m"
        echo "prereqs: $cmd missing (needed for $why); installing Debian package(s) with apt-get"
    done
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq >/tmp/prereqs-apt.log 2>&1; then
        echo "prereqs: apt-get update failed; see /tmp/prereqs-apt.log"
        exit 1
    fi
    # QEMU's packages break each other across versions. A machine may come
    # with one of them from another release (seen: qemu-utils 10.0 from
    # backports, whose origin is not configured), which then blocks the
    # distribution's qemu-system-x86; that one is brought to the version
    # being installed (the project is tested on Debian 12's QEMU 7.2).
    case " ${pkgs[*]} " in *" qemu-system-"*)
        want=$(apt-cache policy qemu-system-common | awk '/Candidate:/ {print $2}')
        for p in $(dpkg-query -W -f='${Package}\n' 'qemu-*' 2>/dev/null); do
            have=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null)
            case $have in "install ok installed "*) ;; *) continue ;; esac
            case " ${pkgs[*]} " in *" $p "*) continue ;; esac
            if [ -n "$want" ] && [ "${have##* }" != "$want" ] && apt-cache madison "$p" | grep -qF "| $want |"; then
                echo "prereqs: $p ${have##* } conflicts with QEMU $want; installing $p=$want beside it"
                pkgs+=("$p=$want")
            fi
        done ;;
    esac
    # --reinstall also restores a command removed from an installed package.
    if ! apt-get install -y -qq --reinstall --allow-downgrades "${pkgs[@]}" >>/tmp/prereqs-apt.log 2>&1; then
        echo "prereqs: apt-get install ${pkgs[*]} failed; see /tmp/prereqs-apt.log"
        exit 1
    fi
    still=()
    for m in "${missing[@]}"; do
        IFS=: read -r cmd pkg why <<<"$m"
        have "$cmd" || still+=("$cmd")
    done
    [ ${#still[@]} -eq 0 ] && exit 0
    echo "prereqs: still missing after apt-get: ${still[*]}"
    exit 1
fi

for m in "${missing[@]}"; do
    IFS=: read -r cmd pkg why <<<"$m"
    [ "$cmd" = python3 ] && command -v python3 >/dev/null && pkg=python3-venv
    echo "prereqs: missing $cmd (needed for $why); run: sudo apt-get install $pkg"
done
exit 1
