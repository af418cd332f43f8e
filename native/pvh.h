/* Linux through its PVH entry: an uncompressed ELF kernel (vmlinux) whose Xen ELF note
 * PHYS32_ENTRY (type 18) names a 32-bit entry point, started flat in protected mode, paging
 * off, with EBX = the guest-physical address of a struct hvm_start_info.
 *
 * Guest-physical layout the helper writes (the GDT of boot.h stays at 0x1000):
 *   0x2000  struct hvm_start_info (56 bytes)
 *   0x2100  the module list: one hvm_modlist_entry, the initrd (if any)
 *   0x2200  the memory map: hvm_memmap_table_entry[] (e820 types)
 *   0x3000  the command line, NUL-terminated, at most PVH_CMDLINE_MAX bytes with the NUL
 *   kernel  its PT_LOAD segments at their p_paddr (1 MiB and up)
 *   initrd  page-aligned, ending at the top of RAM below min(3 GiB, PVH_INITRD_CEILING),
 *           above the kernel */
#ifndef QVMM_PVH_H
#define QVMM_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

#define PVH_START_INFO_ADDR 0x2000ull
#define PVH_MODLIST_ADDR    0x2100ull
#define PVH_MEMMAP_ADDR     0x2200ull
#define PVH_CMDLINE_ADDR    0x3000ull
#define PVH_CMDLINE_MAX     2048		/* x86 Linux's COMMAND_LINE_SIZE */
#define PVH_INITRD_CEILING  0x38000000ull	/* 896 MiB: what the bzImage protocol promises */
#define PVH_LOW_RAM_END     0x9fc00ull		/* conventional memory, below the EBDA/VGA area */

#define PVH_START_MAGIC 0x336ec578u
#define PVH_XEN_ELFNOTE_PHYS32_ENTRY 18

#define E820_RAM      1
#define E820_RESERVED 2

struct pvh_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

#define PVH_MEMMAP_MAX 5

/* The e820 map of guest RAM as memory.c lays it out: conventional memory below 640 KiB (the rest
 * up to 1 MiB reserved), RAM from
 * 1 MiB up to the 3 GiB hole and from 4 GiB on, and the pages KVM's TSS and identity map use
 * just below 4 GiB reserved. Returns the number of entries (at most PVH_MEMMAP_MAX). */
unsigned pvh_memmap(const struct guest_memory *mem, struct pvh_memmap_entry *out);

/* Loads kernel (ELF64 vmlinux with a PVH note), initrd (optional, NULL) and cmdline into guest
 * RAM and writes hvm_start_info; *entry gets the PVH entry point. -1 with err on refusal. */
int pvh_load(struct guest_memory *mem, const char *kernel, const char *initrd, const char *cmdline,
	     uint64_t *entry, char *err, size_t errlen);

#endif
