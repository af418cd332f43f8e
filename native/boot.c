/* Boot setup: build a GDT (and identity page tables for long mode), load what boots — a flat
 * image, or Linux through pvh.c or bzimage.c with acpi.c's tables — and start the boot vCPU
 * directly in protected or long mode at the entry point. */
#include "boot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi.h"
#include "bzimage.h"
#include "gdt.h"
#include "pvh.h"
#include "util.h"

#define PTE_P   (1ull << 0)
#define PTE_RW  (1ull << 1)
#define PTE_PS  (1ull << 7)

#define CR0_PE  (1ull << 0)
#define CR0_MP  (1ull << 1)
#define CR0_ET  (1ull << 4)
#define CR0_NE  (1ull << 5)
#define CR0_WP  (1ull << 16)
#define CR0_PG  (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

/* The boot GDT: flat 4 GiB segments, present, DPL 0, accessed. The segment registers of the
 * boot vCPU are derived from these same entries (boot_setup_vcpu). */
static const struct seg_desc boot_gdt[BOOT_GDT_ENTRIES] = {
	[0] = { 0 },							/* null */
	[BOOT_SEL_CODE64 >> 3] = { 0, 0xfffff, 0x9b, 0xa },		/* code, L=1, G=1 */
	[BOOT_SEL_DATA >> 3] = { 0, 0xfffff, 0x93, 0xc },		/* data, D/B=1, G=1 */
	[BOOT_SEL_CODE32 >> 3] = { 0, 0xfffff, 0x9b, 0xc },		/* code, D/B=1, G=1 */
};

/* The boot protocol's 64-bit entry wants __BOOT_CS = 0x10 (code) and __BOOT_DS = 0x18 (data). */
#define LINUX_SEL_CODE64 0x10
#define LINUX_SEL_DATA   0x18
static const struct seg_desc linux_gdt[BOOT_GDT_ENTRIES] = {
	[0] = { 0 },
	[1] = { 0 },
	[LINUX_SEL_CODE64 >> 3] = { 0, 0xfffff, 0x9b, 0xa },
	[LINUX_SEL_DATA >> 3] = { 0, 0xfffff, 0x93, 0xc },
};

/* What the boot vCPU starts with in each mode: the GDT and the selectors loaded from it. */
struct boot_segments {
	const struct seg_desc *gdt;
	uint16_t cs, ds;
	int long_mode;
};

static struct boot_segments boot_segments(enum boot_mode mode)
{
	switch (mode) {
	case BOOT_LONG: return (struct boot_segments){ boot_gdt, BOOT_SEL_CODE64, BOOT_SEL_DATA, 1 };
	case BOOT_BZIMAGE: return (struct boot_segments){ linux_gdt, LINUX_SEL_CODE64, LINUX_SEL_DATA, 1 };
	case BOOT_PROTECTED:
	case BOOT_PVH: break;
	}
	return (struct boot_segments){ boot_gdt, BOOT_SEL_CODE32, BOOT_SEL_DATA, 0 };
}

static int load_image(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	struct stat st;
	uint8_t *dst;
	ssize_t n;
	int fd;

	fd = open(c->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "image %s: %s", c->image, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size == 0 || c->load_addr < BOOT_AREA_END) {
		snprintf(err, errlen, "image %s: %s", c->image, st.st_size == 0 ? "empty" :
			 "load address below 0xa0000 would overlap the boot GDT/page tables");
		close(fd);
		return -1;
	}
	dst = memory_gpa_to_host(&vm->mem, c->load_addr, (uint64_t)st.st_size);
	if (!dst) {
		snprintf(err, errlen, "image %s (%lld bytes) at 0x%llx does not fit in guest RAM",
			 c->image, (long long)st.st_size, (unsigned long long)c->load_addr);
		close(fd);
		return -1;
	}
	for (off_t off = 0; off < st.st_size; off += n) {
		n = read(fd, dst + off, (size_t)(st.st_size - off));
		if (n <= 0) {
			snprintf(err, errlen, "image %s: read: %s", c->image, n < 0 ? strerror(errno) : "short");
			close(fd);
			return -1;
		}
	}
	close(fd);
	if (c->entry < c->load_addr || c->entry >= c->load_addr + (uint64_t)st.st_size)
		log_warn("entry 0x%llx lies outside the image", (unsigned long long)c->entry);
	return 0;
}

static int build_page_tables(struct vm *vm, char *err, size_t errlen)
{
	uint64_t top = MAX(memory_top(&vm->mem), MEM_HIGH_START);	/* the hole too: framebuffer */
	uint64_t gib = (top + (1ull << 30) - 1) >> 30, i, j;
	uint64_t *pml4, *pdpt, *pd;

	if (BOOT_PD_ADDR + gib * 0x1000 > BOOT_AREA_END) {
		snprintf(err, errlen, "guest-physical space of %llu GiB is too large to identity-map",
			 (unsigned long long)gib);
		return -1;
	}
	pml4 = memory_gpa_to_host(&vm->mem, BOOT_PML4_ADDR, 0x1000);
	pdpt = memory_gpa_to_host(&vm->mem, BOOT_PDPT_ADDR, 0x1000);
	pd = memory_gpa_to_host(&vm->mem, BOOT_PD_ADDR, gib * 0x1000);
	if (!pml4 || !pdpt || !pd) {
		snprintf(err, errlen, "guest RAM too small for the boot page tables");
		return -1;
	}
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	pml4[0] = BOOT_PDPT_ADDR | PTE_P | PTE_RW;
	for (i = 0; i < gib; i++) {
		pdpt[i] = (BOOT_PD_ADDR + i * 0x1000) | PTE_P | PTE_RW;
		for (j = 0; j < 512; j++)
			pd[i * 512 + j] = ((i << 30) | (j << 21)) | PTE_P | PTE_RW | PTE_PS;
	}
	return 0;
}

int boot_load(struct vm *vm, char *err, size_t errlen)
{
	uint64_t *gdt = memory_gpa_to_host(&vm->mem, BOOT_GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	struct boot_segments seg = boot_segments(vm->cfg.mode);

	if (!gdt) {
		snprintf(err, errlen, "guest RAM too small for the boot GDT");
		return -1;
	}
	for (unsigned i = 0; i < BOOT_GDT_ENTRIES; i++)
		gdt[i] = gdt_encode(&seg.gdt[i]);
	if (seg.long_mode && build_page_tables(vm, err, errlen) < 0)
		return -1;
	if (boot_mode_is_linux(vm->cfg.mode) && acpi_build(&vm->mem, vm->nr_vcpus, err, errlen) < 0)
		return -1;
	if (vm->cfg.mode == BOOT_PVH)
		return pvh_load(&vm->mem, vm->cfg.kernel, vm->cfg.initrd, vm->cfg.cmdline,
				&vm->cfg.entry, err, errlen);
	if (vm->cfg.mode == BOOT_BZIMAGE)
		return bzimage_load(&vm->mem, vm->cfg.kernel, vm->cfg.initrd, vm->cfg.cmdline, vm->fb,
				    ACPI_RSDP_ADDR, &vm->cfg.entry, err, errlen);
	return load_image(vm, err, errlen);
}

int boot_cpu_state(struct vm *vm, struct kvm_sregs *sregs, struct kvm_regs *regs, char *err,
		   size_t errlen)
{
	/* The GDT boot_load wrote: the segment registers are what loading its selectors gives. */
	const uint64_t *gdt = memory_gpa_to_host(&vm->mem, BOOT_GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	struct boot_segments seg = boot_segments(vm->cfg.mode);
	int lm = seg.long_mode;

	if (!gdt) {
		snprintf(err, errlen, "guest RAM too small for the boot GDT");
		return -1;
	}
	gdt_segment(gdt[seg.cs >> 3], seg.cs, &sregs->cs);
	gdt_segment(gdt[seg.ds >> 3], seg.ds, &sregs->ds);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	sregs->gdt.base = BOOT_GDT_ADDR;
	sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
	/* PVH ABI: CR0.PE and no other writable bit (ET is fixed), CR4 and EFER 0. */
	sregs->cr0 = vm->cfg.mode == BOOT_PVH ? CR0_PE | CR0_ET : CR0_PE | CR0_MP | CR0_ET | CR0_NE;
	sregs->cr4 = 0;
	sregs->efer = 0;
	if (lm) {
		sregs->cr0 |= CR0_WP | CR0_PG;
		sregs->cr3 = BOOT_PML4_ADDR;
		sregs->cr4 = CR4_PAE;
		sregs->efer = EFER_LME | EFER_LMA;
	}
	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;
	regs->rip = vm->cfg.entry;
	if (vm->cfg.mode == BOOT_PVH)
		regs->rbx = PVH_START_INFO_ADDR;
	if (vm->cfg.mode == BOOT_BZIMAGE)
		regs->rsi = BZ_BOOT_PARAMS_ADDR;
	return 0;
}

int boot_setup_vcpu(struct vm *vm, int vcpu_fd, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	if (boot_cpu_state(vm, &sregs, &regs, err, errlen) < 0)
		return -1;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	return 0;
}
