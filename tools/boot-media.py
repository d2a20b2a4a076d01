#!/usr/bin/env python3
"""Boot media for PCs: GRUB (Debian's grub-pc-bin and grub-efi-amd64-bin),
the seL4 kernel and a system image, as an ISO and as a disk image; and for
ARM boards what U-Boot loads.

    tools/boot-media.py --kernel K --system S [--iso OUT.iso] [--disk OUT.img]
                        [--multiboot 2|1]
    tools/boot-media.py --board-image B --elf OUT.elf [--disk OUT.img]

An ARM board's boot image (system-builder's: the loader with the kernel
and the system image) is one ELF for U-Boot's `bootelf`: `--elf` copies it,
`--disk` writes an SD card image with one FAT32 partition holding it as
dingo.elf, and boot.txt with the U-Boot commands (README, "Booting the
Sabre Lite").

Both media boot on a BIOS PC and on a UEFI-only PC, and both carry the same
grub.cfg: GRUB talks on COM1 and the screen, leaves the display in VGA text
mode where the firmware has one (BIOS), and boots the kernel with multiboot2
(the kernel then gets the ACPI RSDP from GRUB, which UEFI needs) or, with
`--multiboot 1`, with multiboot v1 (BIOS only: v1 carries no RSDP).

- The ISO comes from grub-mkrescue: El Torito for BIOS and UEFI, and a
  hybrid partition table, so it also boots when written to a stick.
- The disk image is what to write onto a USB stick (`dd`): an MBR with one
  FAT32 partition (type 0x0C, active) from 1 MiB. The partition holds
  EFI/BOOT/BOOTX64.EFI (the removable-media path every UEFI firmware
  tries) and /boot; the BIOS boot code is GRUB's boot.img in the MBR and its
  core.img in the gap before the partition, as grub-bios-setup would place
  them. Nothing is mounted: mtools writes the FAT, this script the rest.
  The partition stays writable, so a new system.elf can be copied onto the
  stick without rebuilding it.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

GRUB_PC = "/usr/lib/grub/i386-pc"
GRUB_EFI = "/usr/lib/grub/x86_64-efi"

SECTOR = 512
PART_START = 2048  # sectors: 1 MiB, where partitioning tools start
DISK_MIB = 40  # FAT32 wants at least 65525 clusters: 512-byte ones need ~33 MiB
PART_TYPE_FAT32_LBA = 0x0C
PART_ACTIVE = 0x80

# GRUB's boot.img (grub-core/boot/i386/pc/boot.S) and diskboot.img layout.
BOOT_CODE_END = 0x1B8  # MBR boot code ends where the disk signature starts
BOOT_KERNEL_SECTOR = 0x5C  # u64: LBA of core.img's first sector
BOOT_DRIVE_CHECK = 0x66  # a 2-byte jmp over the drive check; NOPs enable it
DISKBOOT_BLOCKLIST = SECTOR - 12  # u64 start, u16 sectors, u16 segment
CORE_SEGMENT = 0x820  # where diskboot loads the rest of core.img

# Modules built into the GRUB images, so that GRUB needs nothing from the
# medium but grub.cfg, the kernel and the system image.
MODULES_COMMON = ["normal", "configfile", "echo", "test", "serial", "terminal",
                  "multiboot2", "multiboot", "fat", "part_msdos", "part_gpt"]
MODULES_PC = ["biosdisk"]
MODULES_EFI = ["efi_gop", "efi_uga", "video", "all_video"]


def grub_cfg(multiboot):
    cmd, mod = ("multiboot2", "module2") if multiboot == 2 else ("multiboot", "module")
    return f"""\
# Written by tools/boot-media.py. GRUB shows its messages on COM1 and on
# the screen; the kernel and the system then print on COM1, the console
# PD (if the system has one) on the VGA text screen.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
# Text mode on BIOS PCs, so that the VGA text buffer is what is shown.
set gfxpayload=text
# disable_iommu: with VT-d on, the kernel would block every device's DMA
# until IOSpace mappings are made, and no driver makes them yet.
menuentry "seL4 (Dingo system)" {{
    {cmd} /boot/kernel.elf disable_iommu
    {mod} /boot/system.elf system.elf
    boot
}}
"""


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"boot-media: {cmd[0]} failed (status {proc.returncode}):\n{proc.stdout.strip()}")


def stage(root, kernel, system, multiboot):
    """The files both media carry, under root/boot."""
    os.makedirs(os.path.join(root, "boot", "grub"))
    shutil.copy(kernel, os.path.join(root, "boot", "kernel.elf"))
    shutil.copy(system, os.path.join(root, "boot", "system.elf"))
    with open(os.path.join(root, "boot", "grub", "grub.cfg"), "w") as f:
        f.write(grub_cfg(multiboot))


def make_iso(root, out):
    # No fonts, locales or themes: GRUB runs in text mode on serial and VGA.
    run(["grub-mkrescue", "-o", out, "--fonts=", "--locales=", "--themes=",
         root, "--", "-volid", "DINGO"])


def mbr_entry(start, sectors):
    # CHS fields say "beyond CHS" (1023/254/63): firmware that still reads
    # them takes the LBA fields instead.
    chs = bytes([0xFE, 0xFF, 0xFF])
    return struct.pack("<B3sB3sII", PART_ACTIVE, chs, PART_TYPE_FAT32_LBA, chs, start, sectors)


def make_disk(root, out, work):
    total = DISK_MIB * 1024 * 1024 // SECTOR
    part_sectors = total - PART_START

    core = os.path.join(work, "core.img")
    # "(,msdos1)": partition 1 of whichever disk the BIOS booted from.
    run(["grub-mkimage", "-O", "i386-pc", "-o", core, "-p", "(,msdos1)/boot/grub",
         *MODULES_COMMON, *MODULES_PC])
    efi = os.path.join(work, "BOOTX64.EFI")
    # No device in the prefix: the partition GRUB itself was loaded from.
    run(["grub-mkimage", "-O", "x86_64-efi", "-o", efi, "-p", "/boot/grub",
         *MODULES_COMMON, *MODULES_EFI])

    with open(core, "rb") as f:
        core_img = bytearray(f.read())
    core_sectors = (len(core_img) + SECTOR - 1) // SECTOR
    if 1 + core_sectors > PART_START:
        sys.exit(f"boot-media: core.img has {core_sectors} sectors; the gap before the partition holds {PART_START - 1}")
    core_img += bytes(core_sectors * SECTOR - len(core_img))
    # diskboot (core.img's first sector) loads the rest: sectors 2.. here.
    struct.pack_into("<QHH", core_img, DISKBOOT_BLOCKLIST, 2, core_sectors - 1, CORE_SEGMENT)

    with open(os.path.join(GRUB_PC, "boot.img"), "rb") as f:
        mbr = bytearray(f.read())
    if len(mbr) != SECTOR:
        sys.exit(f"boot-media: {GRUB_PC}/boot.img is {len(mbr)} bytes, expected {SECTOR}")
    struct.pack_into("<Q", mbr, BOOT_KERNEL_SECTOR, 1)
    # Trust DL only for hard disks (as grub-bios-setup does for them).
    mbr[BOOT_DRIVE_CHECK:BOOT_DRIVE_CHECK + 2] = b"\x90\x90"
    mbr[BOOT_CODE_END:] = bytes(SECTOR - BOOT_CODE_END)
    mbr[0x1BE:0x1CE] = mbr_entry(PART_START, part_sectors)
    mbr[0x1FE:0x200] = b"\x55\xAA"

    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.truncate(total * SECTOR)
        f.write(mbr)
        f.write(core_img)

    fat = f"{tmp}@@{PART_START * SECTOR}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")

    def mtool(*cmd):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            sys.exit(f"boot-media: {' '.join(cmd)} failed:\n{proc.stdout.strip()}")

    mtool("mformat", "-i", fat, "-F", "-T", str(part_sectors), "-h", "64", "-s", "32",
          "-H", str(PART_START), "-v", "DINGO", "::")
    mtool("mmd", "-i", fat, "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub")
    mtool("mcopy", "-i", fat, efi, "::/EFI/BOOT/BOOTX64.EFI")
    for name in ("kernel.elf", "system.elf", "grub/grub.cfg"):
        mtool("mcopy", "-i", fat, os.path.join(root, "boot", name), "::/boot/" + name)
    os.replace(tmp, out)


# What to type at the U-Boot prompt of an i.MX6 board (Sabre Lite); the
# address is where the file is staged, not where it runs (bootelf copies
# its segments to their own addresses: the loader at 0x20000000).
UBOOT_COMMANDS = """\
# U-Boot commands for the Dingo boot image (dingo.elf):
# from this SD card's first partition:
fatload mmc 0:1 0x30000000 dingo.elf
bootelf 0x30000000
# or over the network (a TFTP server with dingo.elf):
#   dhcp; tftpboot 0x30000000 dingo.elf; bootelf 0x30000000
"""


def make_sd(files, out, work):
    """An SD card image: an MBR with one FAT32 partition from 1 MiB
    holding `files` (name: path), nothing else."""
    total = DISK_MIB * 1024 * 1024 // SECTOR
    part_sectors = total - PART_START
    mbr = bytearray(SECTOR)
    mbr[0x1BE:0x1CE] = mbr_entry(PART_START, part_sectors)
    mbr[0x1BE] = 0  # not "active": U-Boot reads the partition by number
    mbr[0x1FE:0x200] = b"\x55\xAA"
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.truncate(total * SECTOR)
        f.write(mbr)
    fat = f"{tmp}@@{PART_START * SECTOR}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for cmd in (["mformat", "-i", fat, "-F", "-T", str(part_sectors), "-h", "64", "-s", "32",
                 "-H", str(PART_START), "-v", "DINGO", "::"],
                *(["mcopy", "-i", fat, path, "::/" + name] for name, path in files.items())):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            sys.exit(f"boot-media: {' '.join(cmd)} failed:\n{proc.stdout.strip()}")
    os.replace(tmp, out)


def board_media(a):
    if not os.path.isfile(a.board_image):
        sys.exit(f"boot-media: {a.board_image}: no such file (build it with make BOARD=...)")
    if not (a.elf or a.disk):
        sys.exit("boot-media: nothing to write (give --elf, --disk or both)")
    if a.elf:
        shutil.copy(a.board_image, a.elf)
        print(f"boot-media: {a.elf} (for U-Boot's bootelf; {os.path.getsize(a.elf) >> 10} KiB)")
    if a.disk:
        with tempfile.TemporaryDirectory(prefix="boot-media-") as work:
            commands = os.path.join(work, "boot.txt")
            with open(commands, "w") as f:
                f.write(UBOOT_COMMANDS)
            make_sd({"dingo.elf": a.board_image, "boot.txt": commands}, a.disk, work)
        print(f"boot-media: {a.disk} ({DISK_MIB} MiB SD card image, MBR + FAT32: dingo.elf, boot.txt)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board-image", help="an ARM board's boot image (system-builder --boot-image)")
    ap.add_argument("--elf", help="with --board-image: copy it here")
    ap.add_argument("--kernel", help="the seL4 kernel ELF (64-bit is fine)")
    ap.add_argument("--system", help="the system image (root task ELF)")
    ap.add_argument("--iso", help="write the ISO here")
    ap.add_argument("--disk", help="write the disk image here")
    ap.add_argument("--multiboot", type=int, choices=[1, 2], default=2)
    a = ap.parse_args()
    if a.board_image:
        return board_media(a)
    if not (a.kernel and a.system):
        sys.exit("boot-media: --kernel and --system, or --board-image")
    for path in (a.kernel, a.system):
        if not os.path.isfile(path):
            sys.exit(f"boot-media: {path}: no such file (build it with make)")
    if not (a.iso or a.disk):
        sys.exit("boot-media: nothing to write (give --iso, --disk or both)")
    with tempfile.TemporaryDirectory(prefix="boot-media-") as work:
        root = os.path.join(work, "root")
        stage(root, a.kernel, a.system, a.multiboot)
        if a.iso:
            make_iso(root, a.iso)
            print(f"boot-media: {a.iso} ({os.path.getsize(a.iso) >> 20} MiB, multiboot{'2' if a.multiboot == 2 else ' v1'})")
        if a.disk:
            make_disk(root, a.disk, work)
            print(f"boot-media: {a.disk} ({DISK_MIB} MiB, MBR + FAT32, multiboot{'2' if a.multiboot == 2 else ' v1'})")


if __name__ == "__main__":
    main()
