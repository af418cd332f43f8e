/* PVH boot of an ELF kernel: its PT_LOAD segments into guest RAM, the PVH entry from its
 * notes, the initrd and command line placed, struct hvm_start_info written (layout in pvh.h). */
#include "pvh.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acpi.h"
#include "boot.h"
#include "bootfile.h"
#include "util.h"

#define PHDRS_MAX  64
#define NOTES_MAX  (64u << 10)	/* a PT_NOTE segment larger than this is not a kernel's */

/* The PVH ABI's structures, version 1 (all little-endian, naturally aligned). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct pvh_memmap_entry) == 24, "hvm_memmap_table_entry is 24 bytes");
_Static_assert(PVH_MEMMAP_ADDR + PVH_MEMMAP_MAX * 24 <= PVH_CMDLINE_ADDR, "memmap fits below the cmdline");

/* The PHYS32_ENTRY address in one PT_NOTE segment's notes, or 0. */
static uint64_t find_pvh_entry(const uint8_t *notes, uint64_t len)
{
	uint64_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= len) {
		Elf64_Nhdr nh;
		uint64_t name_at = off + sizeof(nh), desc_at, next;

		memcpy(&nh, notes + off, sizeof(nh));
		desc_at = name_at + ((nh.n_namesz + 3ull) & ~3ull);
		next = desc_at + ((nh.n_descsz + 3ull) & ~3ull);
		if (next > len)
			return 0;
		if (nh.n_type == PVH_XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    !memcmp(notes + name_at, "Xen", 4) && (nh.n_descsz == 4 || nh.n_descsz == 8)) {
			uint64_t entry = 0;
			memcpy(&entry, notes + desc_at, nh.n_descsz);	/* little-endian host and guest */
			return entry;
		}
		off = next;
	}
	return 0;
}

/* Loads the ELF's PT_LOAD segments at their physical addresses; *entry from its PVH note,
 * *end = the highest byte loaded + 1. */
static int load_elf(struct guest_memory *mem, const char *path, uint64_t *entry, uint64_t *end,
		    char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[PHDRS_MAX];
	uint64_t size;
	int fd = bootfile_open("kernel", path, &size, err, errlen);

	if (fd < 0)
		return -1;
	*entry = *end = 0;
	if (bootfile_read_at(fd, 0, &eh, sizeof(eh)) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		snprintf(err, errlen, "kernel %s: neither an x86-64 ELF vmlinux nor a bzImage", path);
		goto fail;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > PHDRS_MAX ||
	    bootfile_read_at(fd, eh.e_phoff, ph, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr)) < 0) {
		snprintf(err, errlen, "kernel %s: bad or unreadable program headers", path);
		goto fail;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type == PT_NOTE && !*entry && p->p_filesz <= NOTES_MAX) {
			uint8_t *notes = malloc(p->p_filesz ? p->p_filesz : 1);
			if (notes && bootfile_read_at(fd, p->p_offset, notes, p->p_filesz) == 0)
				*entry = find_pvh_entry(notes, p->p_filesz);
			free(notes);
		}
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > size || p->p_filesz > size - p->p_offset) {
			snprintf(err, errlen, "kernel %s: segment %u lies outside the file", path, i);
			goto fail;
		}
		dst = p->p_paddr >= MEM_MIN_SIZE ? memory_gpa_to_host(mem, p->p_paddr, p->p_memsz) : NULL;
		if (!dst) {
			snprintf(err, errlen, "kernel %s: segment %u (0x%llx bytes at 0x%llx) does not fit in "
				 "guest RAM above 1 MiB", path, i, (unsigned long long)p->p_memsz,
				 (unsigned long long)p->p_paddr);
			goto fail;
		}
		if (bootfile_read_at(fd, p->p_offset, dst, p->p_filesz) < 0) {
			snprintf(err, errlen, "kernel %s: read: %s", path, strerror(errno ? errno : EIO));
			goto fail;
		}
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		*end = MAX(*end, p->p_paddr + p->p_memsz);
	}
	if (!*entry || *entry > 0xffffffffull) {
		snprintf(err, errlen, "kernel %s: no PVH entry (Xen ELF note PHYS32_ENTRY, type 18): "
			 "a Linux kernel needs CONFIG_PVH=y", path);
		goto fail;
	}
	if (!*end) {
		snprintf(err, errlen, "kernel %s: no loadable segment", path);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

unsigned pvh_memmap(const struct guest_memory *mem, struct pvh_memmap_entry *out)
{
	uint64_t low = mem->slots[0].size;
	unsigned n = 0;

	out[n++] = (struct pvh_memmap_entry){ 0, MIN(low, PVH_LOW_RAM_END), E820_RAM, 0 };
	/* The EBDA, VGA and BIOS area, as firmware reports it (Linux adds it for PVH guests too). */
	out[n++] = (struct pvh_memmap_entry){ PVH_LOW_RAM_END, MEM_MIN_SIZE - PVH_LOW_RAM_END, E820_RESERVED, 0 };
	if (low > MEM_MIN_SIZE)
		out[n++] = (struct pvh_memmap_entry){ MEM_MIN_SIZE, low - MEM_MIN_SIZE, E820_RAM, 0 };
	/* KVM's identity-map page and TSS (boot.h): guest-visible memory the guest must not use. */
	out[n++] = (struct pvh_memmap_entry){ BOOT_IDMAP_ADDR, BOOT_TSS_ADDR + 0x3000 - BOOT_IDMAP_ADDR,
					      E820_RESERVED, 0 };
	if (mem->nr_slots > 1)
		out[n++] = (struct pvh_memmap_entry){ mem->slots[1].gpa, mem->slots[1].size, E820_RAM, 0 };
	return n;
}

int pvh_load(struct guest_memory *mem, const char *kernel, const char *initrd, const char *cmdline,
	     uint64_t *entry, char *err, size_t errlen)
{
	struct hvm_start_info *si = memory_gpa_to_host(mem, PVH_START_INFO_ADDR, sizeof(*si));
	struct hvm_modlist_entry *mod = memory_gpa_to_host(mem, PVH_MODLIST_ADDR, sizeof(*mod));
	struct pvh_memmap_entry *map = memory_gpa_to_host(mem, PVH_MEMMAP_ADDR,
							  PVH_MEMMAP_MAX * sizeof(*map));
	char *cl = memory_gpa_to_host(mem, PVH_CMDLINE_ADDR, PVH_CMDLINE_MAX);
	size_t cl_len = cmdline ? strlen(cmdline) : 0;
	uint64_t kernel_end;

	if (!si || !mod || !map || !cl) {
		snprintf(err, errlen, "guest RAM too small for the PVH boot structures");
		return -1;
	}
	if (cl_len >= PVH_CMDLINE_MAX) {
		snprintf(err, errlen, "kernel command line of %zu bytes: at most %d", cl_len,
			 PVH_CMDLINE_MAX - 1);
		return -1;
	}
	if (load_elf(mem, kernel, entry, &kernel_end, err, errlen) < 0)
		return -1;
	memset(mod, 0, sizeof(*mod));
	if (initrd && bootfile_load_initrd(mem, initrd, kernel_end, PVH_INITRD_CEILING, &mod->paddr,
					   &mod->size, err, errlen) < 0)
		return -1;
	memcpy(cl, cmdline ? cmdline : "", cl_len + 1);
	*si = (struct hvm_start_info){
		.magic = PVH_START_MAGIC,
		.version = 1,
		.nr_modules = initrd ? 1 : 0,
		.modlist_paddr = initrd ? PVH_MODLIST_ADDR : 0,
		.cmdline_paddr = PVH_CMDLINE_ADDR,
		.rsdp_paddr = ACPI_RSDP_ADDR,
		.memmap_paddr = PVH_MEMMAP_ADDR,
		.memmap_entries = pvh_memmap(mem, map),
	};
	log_info("PVH: kernel %s entry 0x%llx, end 0x%llx; initrd %s at 0x%llx (%llu bytes); "
		 "%u memory map entries", kernel, (unsigned long long)*entry,
		 (unsigned long long)kernel_end, initrd ? initrd : "none",
		 (unsigned long long)mod->paddr, (unsigned long long)mod->size, si->memmap_entries);
	for (unsigned i = 0; i < si->memmap_entries; i++)
		log_info("PVH: memory map [0x%016llx-0x%016llx] %s",
			 (unsigned long long)map[i].addr, (unsigned long long)(map[i].addr + map[i].size - 1),
			 map[i].type == E820_RAM ? "usable" : "reserved");
	return 0;
}
