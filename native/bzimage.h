/* Linux through the x86 boot protocol (version 2.12 and later): a bzImage's protected-mode
 * kernel loaded at its preferred address, the zero page (struct boot_params) with the setup
 * header, e820 map, command line, initrd, ACPI RSDP and the framebuffer as screen_info, and the
 * boot vCPU started at the kernel's 64-bit entry (load address + 0x200) with RSI = the zero page,
 * in long mode on the boot page tables (boot.h).
 *
 * Guest-physical layout the helper writes (the GDT and page tables of boot.h stay where they are):
 *   0x3000  the command line, NUL-terminated, at most BZ_CMDLINE_MAX bytes with the NUL
 *   0x7000  struct boot_params (4 KiB)
 *   kernel  the bytes after the setup sectors, at pref_address (relocatable kernels) or 1 MiB,
 *           with init_size bytes of room
 *   initrd  page-aligned at the top of RAM below min(3 GiB, initrd_addr_max), above the kernel's
 *           init_size */
#ifndef QVMM_BZIMAGE_H
#define QVMM_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "framebuffer.h"
#include "memory.h"

#define BZ_CMDLINE_ADDR     0x3000ull
#define BZ_CMDLINE_MAX      2048
#define BZ_BOOT_PARAMS_ADDR 0x7000ull
#define BZ_ENTRY64_OFFSET   0x200

/* 1 if the file at path carries the boot protocol's setup header ("HdrS" at 0x202), else 0. */
int bzimage_detect(const char *path);

/* Loads kernel (a bzImage), initrd (optional, NULL) and cmdline and writes the zero page, with
 * fb (optional) handed over as an EFI framebuffer (what efifb binds to; VIDEO_TYPE_EFI) and the
 * RSDP at rsdp; *entry gets the 64-bit entry point. -1 with err on refusal. */
int bzimage_load(struct guest_memory *mem, const char *kernel, const char *initrd,
		 const char *cmdline, const struct framebuffer *fb, uint64_t rsdp, uint64_t *entry,
		 char *err, size_t errlen);

#endif
