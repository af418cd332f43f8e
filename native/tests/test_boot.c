/* Boot setup without KVM: boot_load into plain memory posing as guest RAM, then the boot
 * vCPU's registers. The segment registers are decoded from the GDT entries in that memory and
 * must be what the helper always set by hand: flat, present, DPL 0, accessed code (0xb) and
 * data (3), L=1 for long mode and D/B=1 for protected mode. Plus descriptor round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot.h"
#include "check.h"
#include "gdt.h"
#include "acpi.h"
#include "bzimage.h"
#include "pvh.h"

#include <elf.h>

#define RAM (2u << 20)

struct rig {
	struct vm vm;
	char image_path[64];
	int image_fd;
};

static void rig_up(struct rig *r, enum boot_mode mode, uint64_t load)
{
	static const uint8_t image[] = { 0xf4, 0xeb, 0xfd };	/* hlt; jmp back */

	memset(r, 0, sizeof(*r));
	r->vm.mem.memfd = -1;
	r->vm.mem.size = RAM;
	r->vm.mem.host = calloc(1, RAM);
	r->vm.mem.slots[0] = (struct mem_slot){ 0, RAM, r->vm.mem.host };
	r->vm.mem.nr_slots = 1;
	r->image_fd = memfd_create("boot-test-image", 0);
	CHECK(write(r->image_fd, image, sizeof(image)) == sizeof(image));
	snprintf(r->image_path, sizeof(r->image_path), "/proc/self/fd/%d", r->image_fd);
	r->vm.cfg = (struct vm_config){ .mode = mode, .image = r->image_path, .load_addr = load,
					.entry = load + 1, .nr_vcpus = 1 };
	r->vm.nr_vcpus = 1;
}

static void rig_down(struct rig *r)
{
	free(r->vm.mem.host);
	close(r->image_fd);
}

static uint64_t u64_at(struct rig *r, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, r->vm.mem.host + gpa, 8);
	return v;
}

static void expect_flat(const struct kvm_segment *s, uint16_t sel, uint8_t type, int l, int db)
{
	CHECK_EQ(s->base, 0);
	CHECK_EQ(s->limit, 0xffffffff);
	CHECK_EQ(s->selector, sel);
	CHECK_EQ(s->type, type);
	CHECK_EQ(s->present, 1);
	CHECK_EQ(s->dpl, 0);
	CHECK_EQ(s->db, db);
	CHECK_EQ(s->s, 1);
	CHECK_EQ(s->l, l);
	CHECK_EQ(s->g, 1);
	CHECK_EQ(s->avl, 0);
	CHECK_EQ(s->unusable, 0);
}

/* What KVM_GET_SREGS gives before setup matters only where the setup keeps it. */
static void kvm_like_sregs(struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	s->apic_base = 0xfee00900;
	s->tr.type = 0xb;
	s->tr.present = 1;
}

static void test_long_mode(void)
{
	struct rig r;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char err[256] = "";

	rig_up(&r, BOOT_LONG, 0x100000);
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_EQ(u64_at(&r, 0x1000), 0);				/* null */
	CHECK_EQ(u64_at(&r, 0x1008), 0x00af9b000000ffffull);	/* 64-bit code */
	CHECK_EQ(u64_at(&r, 0x1010), 0x00cf93000000ffffull);	/* data */
	CHECK_EQ(u64_at(&r, 0x1018), 0x00cf9b000000ffffull);	/* 32-bit code */
	CHECK_EQ(u64_at(&r, BOOT_PML4_ADDR), BOOT_PDPT_ADDR | 3);
	for (uint64_t gib = 0; gib < 4; gib++)			/* the first 4 GiB at least */
		CHECK_EQ(u64_at(&r, BOOT_PDPT_ADDR + gib * 8), (BOOT_PD_ADDR + gib * 0x1000) | 3);
	CHECK_EQ(u64_at(&r, BOOT_PDPT_ADDR + 4 * 8), 0);
	CHECK_EQ(u64_at(&r, BOOT_PD_ADDR), 0x83);			/* 2 MiB, present, writable */
	CHECK_EQ(u64_at(&r, BOOT_PD_ADDR + 8), 0x200083);
	CHECK_EQ(u64_at(&r, BOOT_PD_ADDR + (4 * 512 - 1) * 8), 0xffe00083ull);
	CHECK_EQ(r.vm.mem.host[0x100000], 0xf4);			/* the image */
	CHECK_EQ(r.vm.mem.host[0x100002], 0xfd);

	kvm_like_sregs(&sregs);
	CHECK_EQ(boot_cpu_state(&r.vm, &sregs, &regs, err, sizeof(err)), 0);
	expect_flat(&sregs.cs, BOOT_SEL_CODE64, 0xb, 1, 0);
	expect_flat(&sregs.ds, BOOT_SEL_DATA, 0x3, 0, 1);
	expect_flat(&sregs.es, BOOT_SEL_DATA, 0x3, 0, 1);
	expect_flat(&sregs.fs, BOOT_SEL_DATA, 0x3, 0, 1);
	expect_flat(&sregs.gs, BOOT_SEL_DATA, 0x3, 0, 1);
	expect_flat(&sregs.ss, BOOT_SEL_DATA, 0x3, 0, 1);
	CHECK_EQ(sregs.gdt.base, BOOT_GDT_ADDR);
	CHECK_EQ(sregs.gdt.limit, 31);
	CHECK_EQ(sregs.cr0, 0x80010033);	/* PG WP NE ET MP PE */
	CHECK_EQ(sregs.cr3, BOOT_PML4_ADDR);
	CHECK_EQ(sregs.cr4, 0x20);		/* PAE */
	CHECK_EQ(sregs.efer, 0x500);		/* LMA LME */
	CHECK_EQ(sregs.apic_base, 0xfee00900);	/* kept */
	CHECK_EQ(sregs.tr.type, 0xb);
	CHECK_EQ(regs.rip, 0x100001);
	CHECK_EQ(regs.rflags, 2);
	CHECK_EQ(regs.rsp | regs.rax | regs.r15, 0);
	rig_down(&r);
}

static void test_protected_mode(void)
{
	struct rig r;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char err[256] = "";

	rig_up(&r, BOOT_PROTECTED, 0x200000 - 3);
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), 0);
	CHECK_EQ(u64_at(&r, 0x1018), 0x00cf9b000000ffffull);
	CHECK_EQ(u64_at(&r, BOOT_PML4_ADDR), 0);			/* no paging */
	CHECK_EQ(r.vm.mem.host[RAM - 1], 0xfd);			/* the last bytes of RAM */
	kvm_like_sregs(&sregs);
	CHECK_EQ(boot_cpu_state(&r.vm, &sregs, &regs, err, sizeof(err)), 0);
	expect_flat(&sregs.cs, BOOT_SEL_CODE32, 0xb, 0, 1);
	expect_flat(&sregs.ss, BOOT_SEL_DATA, 0x3, 0, 1);
	CHECK_EQ(sregs.cr0, 0x33);		/* NE ET MP PE */
	CHECK_EQ(sregs.cr3 | sregs.cr4 | sregs.efer, 0);
	CHECK_EQ(regs.rip, 0x200000 - 2);
	rig_down(&r);
}

static void test_refusals(void)
{
	struct rig r;
	char err[256] = "";

	rig_up(&r, BOOT_LONG, 0x9f000);
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "load address below 0xa0000") != NULL);
	r.vm.cfg.load_addr = RAM - 2;		/* 3 bytes do not fit in 2 */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "does not fit in guest RAM") != NULL);
	r.vm.mem.slots[0].gpa = 0x10000;		/* no RAM where the GDT goes */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK_STR(err, "guest RAM too small for the boot GDT");
	rig_down(&r);
}

static void test_descriptor_round_trip(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;	/* a fixed sequence of descriptors */
	struct kvm_segment s;
	unsigned same = 1;

	for (int i = 0; i < 10000; i++) {
		struct seg_desc d;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		d = (struct seg_desc){ (uint32_t)x, (uint32_t)(x >> 32) & 0xfffff,
				       (uint8_t)(x >> 52), (uint8_t)(x >> 60) };
		gdt_segment(gdt_encode(&d), (uint16_t)i, &s);
		same &= s.base == d.base && s.selector == (uint16_t)i &&
			s.limit == ((d.flags & 8) ? (d.limit << 12) | 0xfff : d.limit) &&
			s.type == (d.access & 0xf) && s.s == ((d.access >> 4) & 1) &&
			s.dpl == ((d.access >> 5) & 3) && s.present == (d.access >> 7) &&
			s.avl == (d.flags & 1) && s.l == ((d.flags >> 1) & 1) &&
			s.db == ((d.flags >> 2) & 1) && s.g == (d.flags >> 3) &&
			s.unusable == !s.present;
	}
	CHECK(same);
	gdt_segment(0, 0, &s);			/* the null descriptor */
	CHECK_EQ(s.present, 0);
	CHECK_EQ(s.unusable, 1);
}

/* A minimal ELF kernel in a memfd: one PT_LOAD of 3 bytes (memsz 0x2000) at 1 MiB and a PT_NOTE
 * holding the Xen PHYS32_ENTRY note (8-byte descriptor) naming 1 MiB + 1; with_note 0 leaves it out. */
static int fake_kernel(int with_note, char *path, size_t pathlen)
{
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr ph[2];
		Elf64_Nhdr nh;
		char name[4];
		uint64_t entry;
		uint8_t code[3];
	} __attribute__((packed)) k;
	int fd = memfd_create("pvh-test-kernel", 0);

	memset(&k, 0, sizeof(k));
	memcpy(k.eh.e_ident, ELFMAG, SELFMAG);
	k.eh.e_ident[EI_CLASS] = ELFCLASS64;
	k.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	k.eh.e_machine = EM_X86_64;
	k.eh.e_phoff = offsetof(typeof(k), ph);
	k.eh.e_phentsize = sizeof(Elf64_Phdr);
	k.eh.e_phnum = with_note ? 2 : 1;
	k.ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = offsetof(typeof(k), code),
				.p_paddr = 0x100000, .p_filesz = 3, .p_memsz = 0x2000 };
	k.ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = offsetof(typeof(k), nh),
				.p_filesz = sizeof(Elf64_Nhdr) + 4 + 8 };
	k.nh = (Elf64_Nhdr){ .n_namesz = 4, .n_descsz = 8, .n_type = PVH_XEN_ELFNOTE_PHYS32_ENTRY };
	memcpy(k.name, "Xen", 4);
	k.entry = 0x100001;
	memcpy(k.code, "\xf4\xeb\xfd", 3);
	CHECK(write(fd, &k, sizeof(k)) == (ssize_t)sizeof(k));
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static void test_pvh(void)
{
	struct rig r;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char kpath[64], ipath[64], err[256] = "";
	int kfd = fake_kernel(1, kpath, sizeof(kpath)), ifd = memfd_create("pvh-test-initrd", 0);
	uint8_t *ram;

	CHECK(write(ifd, "initrd!", 7) == 7);
	snprintf(ipath, sizeof(ipath), "/proc/self/fd/%d", ifd);
	rig_up(&r, BOOT_PVH, 0);
	r.vm.cfg.kernel = kpath;
	r.vm.cfg.initrd = ipath;
	r.vm.cfg.cmdline = "console=ttyS0";
	ram = r.vm.mem.host;
	memset(ram + 0x100000, 0xaa, 0x2000);		/* the bss part must come out zeroed */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), 0);
	CHECK_EQ(r.vm.cfg.entry, 0x100001);
	CHECK(!memcmp(ram + 0x100000, "\xf4\xeb\xfd\0", 4) && ram[0x101fff] == 0);
	/* hvm_start_info: magic, version 1, one module, cmdline, the RSDP, memmap of 4 entries */
	CHECK_EQ(*(uint32_t *)(ram + 0x2000), PVH_START_MAGIC);
	CHECK_EQ(*(uint32_t *)(ram + 0x2004), 1);
	CHECK_EQ(*(uint32_t *)(ram + 0x200c), 1);
	CHECK_EQ(u64_at(&r, 0x2010), PVH_MODLIST_ADDR);
	CHECK_EQ(u64_at(&r, 0x2018), PVH_CMDLINE_ADDR);
	CHECK_EQ(u64_at(&r, 0x2020), ACPI_RSDP_ADDR);
	CHECK_EQ(u64_at(&r, 0x2028), PVH_MEMMAP_ADDR);
	CHECK_EQ(*(uint32_t *)(ram + 0x2030), 4);
	CHECK_STR((char *)ram + PVH_CMDLINE_ADDR, "console=ttyS0");
	/* the initrd: page-aligned at the top of the 2 MiB of RAM */
	CHECK_EQ(u64_at(&r, PVH_MODLIST_ADDR), RAM - 0x1000);
	CHECK_EQ(u64_at(&r, PVH_MODLIST_ADDR + 8), 7);
	CHECK(!memcmp(ram + RAM - 0x1000, "initrd!", 7));
	/* the map: low RAM, the reserved BIOS area, RAM from 1 MiB, KVM's pages below 4 GiB */
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 0), 0);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 8), 0x9fc00);
	CHECK_EQ(*(uint32_t *)(ram + PVH_MEMMAP_ADDR + 16), E820_RAM);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 24), 0x9fc00);
	CHECK_EQ(*(uint32_t *)(ram + PVH_MEMMAP_ADDR + 40), E820_RESERVED);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 48), 0x100000);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 56), RAM - 0x100000);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 72), BOOT_IDMAP_ADDR);
	CHECK_EQ(u64_at(&r, PVH_MEMMAP_ADDR + 80), 0x4000);
	/* the PVH ABI's CPU state */
	kvm_like_sregs(&sregs);
	CHECK_EQ(boot_cpu_state(&r.vm, &sregs, &regs, err, sizeof(err)), 0);
	CHECK_EQ(sregs.cr0, 0x11);
	CHECK_EQ(sregs.cr3 | sregs.cr4 | sregs.efer, 0);
	expect_flat(&sregs.cs, BOOT_SEL_CODE32, 0xb, 0, 1);
	expect_flat(&sregs.ss, BOOT_SEL_DATA, 0x3, 0, 1);
	CHECK_EQ(regs.rip, 0x100001);
	CHECK_EQ(regs.rbx, PVH_START_INFO_ADDR);
	CHECK_EQ(regs.rflags, 2);
	rig_down(&r);
	close(kfd);
	close(ifd);
}

static void test_pvh_refusals(void)
{
	struct rig r;
	char kpath[64], err[256] = "";
	int kfd;

	rig_up(&r, BOOT_PVH, 0);
	r.vm.cfg.kernel = r.image_path;		/* a flat binary, not an ELF */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "neither an x86-64 ELF vmlinux nor a bzImage") != NULL);
	kfd = fake_kernel(0, kpath, sizeof(kpath));
	r.vm.cfg.kernel = kpath;
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "no PVH entry") != NULL);
	close(kfd);
	kfd = fake_kernel(1, kpath, sizeof(kpath));
	r.vm.cfg.kernel = kpath;
	r.vm.cfg.initrd = "/nonexistent-initrd";
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "initrd /nonexistent-initrd: No such file") != NULL);
	r.vm.cfg.initrd = NULL;
	{
		static char longline[PVH_CMDLINE_MAX + 1];
		memset(longline, 'x', PVH_CMDLINE_MAX);
		r.vm.cfg.cmdline = longline;
		CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
		CHECK(strstr(err, "at most 2047") != NULL);
	}
	close(kfd);
	rig_down(&r);
}

static uint8_t sum_bytes(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum;
}

static uint32_t u32_at(struct rig *r, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, r->vm.mem.host + gpa, 4);
	return v;
}

/* An ACPI table at gpa: its signature, and its bytes sum to 0 over the length it states. */
static void expect_table(struct rig *r, uint64_t gpa, const char *sig)
{
	CHECK(!memcmp(r->vm.mem.host + gpa, sig, 4));
	CHECK_EQ(sum_bytes(r->vm.mem.host + gpa, u32_at(r, gpa + 4)), 0);
}

static void test_acpi_tables(void)
{
	struct rig r;
	const uint8_t *ram, *madt;
	char err[256] = "";

	rig_up(&r, BOOT_PVH, 0);
	ram = r.vm.mem.host;
	CHECK_EQ(acpi_build(&r.vm.mem, 2, err, sizeof(err)), 0);
	/* RSDP revision 2: both checksums, the XSDT */
	CHECK(!memcmp(ram + ACPI_RSDP_ADDR, "RSD PTR ", 8));
	CHECK_EQ(ram[ACPI_RSDP_ADDR + 15], 2);
	CHECK_EQ(sum_bytes(ram + ACPI_RSDP_ADDR, 20), 0);
	CHECK_EQ(sum_bytes(ram + ACPI_RSDP_ADDR, 36), 0);
	CHECK_EQ(u64_at(&r, ACPI_RSDP_ADDR + 24), ACPI_XSDT_ADDR);
	expect_table(&r, ACPI_XSDT_ADDR, "XSDT");
	CHECK_EQ(u32_at(&r, ACPI_XSDT_ADDR + 4), 36 + 16);
	CHECK_EQ(u64_at(&r, ACPI_XSDT_ADDR + 36), ACPI_FADT_ADDR);
	CHECK_EQ(u64_at(&r, ACPI_XSDT_ADDR + 44), ACPI_MADT_ADDR);
	/* FADT 6: hardware-reduced with a reset register, the DSDT, the sleep registers' ports */
	expect_table(&r, ACPI_FADT_ADDR, "FACP");
	CHECK_EQ(u32_at(&r, ACPI_FADT_ADDR + 4), 276);
	CHECK_EQ(ram[ACPI_FADT_ADDR + 8], 6);
	CHECK_EQ(u32_at(&r, ACPI_FADT_ADDR + 112), (1u << 20) | (1u << 10));
	CHECK_EQ(ram[ACPI_FADT_ADDR + 116], 1);				/* reset register: system I/O */
	CHECK_EQ(u64_at(&r, ACPI_FADT_ADDR + 120), ACPI_RESET_PORT);
	CHECK_EQ(ram[ACPI_FADT_ADDR + 128], ACPI_RESET_VALUE);
	CHECK_EQ(u64_at(&r, ACPI_FADT_ADDR + 140), ACPI_DSDT_ADDR);
	CHECK_EQ(u64_at(&r, ACPI_FADT_ADDR + 248), ACPI_SLEEP_CONTROL_PORT);
	CHECK_EQ(u64_at(&r, ACPI_FADT_ADDR + 260), ACPI_SLEEP_STATUS_PORT);
	/* DSDT: just \_S5_ = { 5, 5 } */
	expect_table(&r, ACPI_DSDT_ADDR, "DSDT");
	CHECK(!memcmp(ram + ACPI_DSDT_ADDR + 36, "\x08_S5_\x12\x06\x02\x0a\x05\x0a\x05", 12));
	CHECK_EQ(u32_at(&r, ACPI_DSDT_ADDR + 4), 36 + 12);
	/* MADT: two enabled local APICs with ids 0 and 1, then the IOAPIC */
	expect_table(&r, ACPI_MADT_ADDR, "APIC");
	madt = ram + ACPI_MADT_ADDR;
	CHECK_EQ(u32_at(&r, ACPI_MADT_ADDR + 4), 36 + 8 + 2 * 8 + 12);
	CHECK_EQ(u32_at(&r, ACPI_MADT_ADDR + 36), ACPI_LAPIC_ADDR);
	for (unsigned i = 0; i < 2; i++) {
		const uint8_t *e = madt + 44 + i * 8;
		CHECK(e[0] == 0 && e[1] == 8 && e[2] == i && e[3] == i && e[4] == 1);
	}
	CHECK(madt[60] == 1 && madt[61] == 12 && madt[62] == 0);
	CHECK_EQ(u32_at(&r, ACPI_MADT_ADDR + 64), ACPI_IOAPIC_ADDR);
	/* refusals */
	CHECK_EQ(acpi_build(&r.vm.mem, 0, err, sizeof(err)), -1);
	CHECK_STR(err, "0 vCPUs: a Linux guest's MADT holds 1 to 255");
	CHECK_EQ(acpi_build(&r.vm.mem, 256, err, sizeof(err)), -1);
	rig_down(&r);
}

/* A minimal bzImage in a memfd: one setup sector after the boot sector, a setup header of
 * protocol `version` (relocatable, preferred address 1 MiB, init_size 0x3000, 64-bit entry),
 * then 0x300 bytes of "kernel". */
static int fake_bzimage(uint16_t version, char *path, size_t pathlen)
{
	static uint8_t k[1024 + 0x300];
	int fd = memfd_create("bzimage-test-kernel", 0);

	memset(k, 0, sizeof(k));
	k[0x1f1] = 1;						/* setup_sects */
	k[0x1fe] = 0x55, k[0x1ff] = 0xaa;
	k[0x201] = 0x266 - 0x202;				/* the header ends at 0x266 */
	memcpy(k + 0x202, "HdrS", 4);
	memcpy(k + 0x206, &version, 2);
	k[0x211] = 0x80;					/* loadflags: CAN_USE_HEAP, kept */
	*(uint32_t *)(k + 0x22c) = 0x7fffffff;			/* initrd_addr_max */
	k[0x234] = 1;						/* relocatable */
	k[0x236] = 1;						/* XLF_KERNEL_64 */
	*(uint32_t *)(k + 0x238) = 255;				/* cmdline_size */
	*(uint64_t *)(k + 0x258) = 0x100000;			/* pref_address */
	*(uint32_t *)(k + 0x260) = 0x3000;			/* init_size */
	memset(k + 1024, 0x90, 0x300);
	CHECK(write(fd, k, sizeof(k)) == (ssize_t)sizeof(k));
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static void test_bzimage(void)
{
	struct rig r;
	struct framebuffer fb = { .width = 640, .height = 480, .stride = 2560,
				  .size = 2560 * 480, .gpa = 0xd0000000 };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char kpath[64], ipath[64], err[256] = "";
	int kfd = fake_bzimage(0x020f, kpath, sizeof(kpath)), ifd = memfd_create("bz-initrd", 0);
	const uint8_t *ram, *bp;

	CHECK(write(ifd, "initrd!", 7) == 7);
	snprintf(ipath, sizeof(ipath), "/proc/self/fd/%d", ifd);
	CHECK(bzimage_detect(kpath));
	CHECK(!bzimage_detect(ipath));
	rig_up(&r, BOOT_BZIMAGE, 0);
	r.vm.cfg.kernel = kpath;
	r.vm.cfg.initrd = ipath;
	r.vm.cfg.cmdline = "console=ttyS0";
	r.vm.fb = &fb;
	ram = r.vm.mem.host;
	bp = ram + BZ_BOOT_PARAMS_ADDR;
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_EQ(r.vm.cfg.entry, 0x100000 + 0x200);
	CHECK(ram[0x100000] == 0x90 && ram[0x1002ff] == 0x90);
	/* the setup header copied, then what a loader fills in */
	CHECK(!memcmp(bp + 0x202, "HdrS", 4));
	CHECK_EQ(*(uint32_t *)(bp + 0x260), 0x3000);
	CHECK_EQ(bp[0x210], 0xff);				/* type_of_loader */
	CHECK_EQ(bp[0x211], 0x81);				/* LOADED_HIGH | CAN_USE_HEAP */
	CHECK_EQ(*(uint32_t *)(bp + 0x228), BZ_CMDLINE_ADDR);
	CHECK_STR((char *)ram + BZ_CMDLINE_ADDR, "console=ttyS0");
	CHECK_EQ(*(uint32_t *)(bp + 0x218), RAM - 0x1000);	/* initrd at the top of RAM */
	CHECK_EQ(*(uint32_t *)(bp + 0x21c), 7);
	CHECK(!memcmp(ram + RAM - 0x1000, "initrd!", 7));
	CHECK_EQ(*(uint64_t *)(bp + 0x070), ACPI_RSDP_ADDR);
	expect_table(&r, ACPI_MADT_ADDR, "APIC");
	/* e820: the same four ranges as PVH's map, in 20-byte entries */
	CHECK_EQ(bp[0x1e8], 4);
	CHECK_EQ(*(uint64_t *)(bp + 0x2d0 + 20 * 2), 0x100000);
	CHECK_EQ(*(uint64_t *)(bp + 0x2d0 + 20 * 2 + 8), RAM - 0x100000);
	CHECK_EQ(*(uint32_t *)(bp + 0x2d0 + 20 * 2 + 16), E820_RAM);
	CHECK_EQ(*(uint32_t *)(bp + 0x2d0 + 20 * 1 + 16), E820_RESERVED);
	/* screen_info: an EFI framebuffer, 32 bpp x8r8g8b8 */
	CHECK_EQ(bp[0x0f], 0x70);
	CHECK_EQ(*(uint16_t *)(bp + 0x12), 640);
	CHECK_EQ(*(uint16_t *)(bp + 0x14), 480);
	CHECK_EQ(*(uint16_t *)(bp + 0x16), 32);
	CHECK_EQ(*(uint32_t *)(bp + 0x18), 0xd0000000);
	CHECK_EQ(*(uint16_t *)(bp + 0x24), 2560);
	CHECK(!memcmp(bp + 0x26, "\x08\x10\x08\x08\x08\x00\x08\x18", 8));
	/* the 64-bit entry: long mode, __BOOT_CS 0x10 and __BOOT_DS 0x18, RSI = zero page */
	kvm_like_sregs(&sregs);
	CHECK_EQ(boot_cpu_state(&r.vm, &sregs, &regs, err, sizeof(err)), 0);
	expect_flat(&sregs.cs, 0x10, 0xb, 1, 0);
	expect_flat(&sregs.ds, 0x18, 0x3, 0, 1);
	CHECK_EQ(sregs.cr3, BOOT_PML4_ADDR);
	CHECK_EQ(sregs.efer & 0x500, 0x500);
	CHECK_EQ(regs.rip, 0x100200);
	CHECK_EQ(regs.rsi, BZ_BOOT_PARAMS_ADDR);
	CHECK_EQ(u64_at(&r, BOOT_PML4_ADDR) & ~0xfffull, BOOT_PDPT_ADDR);
	rig_down(&r);
	close(kfd);

	/* refusals: an old protocol, a kernel larger than RAM allows, a long command line */
	kfd = fake_bzimage(0x0206, kpath, sizeof(kpath));
	rig_up(&r, BOOT_BZIMAGE, 0);
	r.vm.cfg.kernel = kpath;
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "boot protocol 2.06 without a 64-bit entry") != NULL);
	close(kfd);
	kfd = fake_bzimage(0x020f, kpath, sizeof(kpath));
	r.vm.cfg.kernel = kpath;
	r.vm.cfg.cmdline = "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x"
			   "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x"
			   "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x"
			   "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x";	/* 276 bytes; the kernel takes 255 */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "at most 255") != NULL);
	r.vm.cfg.cmdline = NULL;
	r.vm.cfg.initrd = "/nonexistent-initrd";
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "initrd /nonexistent-initrd: No such file") != NULL);
	r.vm.cfg.initrd = NULL;
	r.vm.mem.slots[0].size = 0x101000;		/* 4 KiB above 1 MiB: no room for init_size */
	CHECK_EQ(boot_load(&r.vm, err, sizeof(err)), -1);
	CHECK(strstr(err, "needs 0x3000 bytes at 0x100000: give the VM more memory") != NULL);
	close(kfd);
	rig_down(&r);
	close(ifd);
}

int main(void)
{
	RUN(test_acpi_tables);
	RUN(test_bzimage);
	RUN(test_pvh);
	RUN(test_pvh_refusals);
	RUN(test_long_mode);
	RUN(test_protected_mode);
	RUN(test_refusals);
	RUN(test_descriptor_round_trip);
	return check_done("boot");
}
