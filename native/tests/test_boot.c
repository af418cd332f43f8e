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
					.entry = load + 1 };
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

int main(void)
{
	RUN(test_long_mode);
	RUN(test_protected_mode);
	RUN(test_refusals);
	RUN(test_descriptor_round_trip);
	return check_done("boot");
}
