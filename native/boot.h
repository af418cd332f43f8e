/* Boot setup: a flat image at a load address, the boot vCPU in long or protected mode.
 *
 * Guest-physical layout the helper writes below 1 MiB (the image must not overlap it):
 *   0x1000  GDT: 0x00 null, 0x08 64-bit code, 0x10 data, 0x18 32-bit code
 *   0x9000  PML4            (long mode only)
 *   0xa000  PDPT            (one entry per GiB)
 *   0xb000+ page directories, one per GiB of guest-physical space, 2 MiB pages,
 *           identity-mapping all of RAM and at least the first 4 GiB (the 3-4 GiB hole holds
 *           the framebuffer at 0xD0000000), up to 0x9ffff: at most 148 GiB
 * The TSS (3 pages at 0xfffbd000) and the EPT identity page (0xfffbc000) sit in the hole below
 * 4 GiB, outside RAM. The guest sets its own stack. */
#ifndef QVMM_BOOT_H
#define QVMM_BOOT_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define BOOT_GDT_ADDR   0x1000ull
#define BOOT_PML4_ADDR  0x9000ull
#define BOOT_PDPT_ADDR  0xa000ull
#define BOOT_PD_ADDR    0xb000ull
#define BOOT_AREA_END   0xa0000ull
#define BOOT_TSS_ADDR   0xfffbd000ull
#define BOOT_IDMAP_ADDR 0xfffbc000ull

#define BOOT_GDT_ENTRIES 4
#define BOOT_SEL_CODE64 0x08
#define BOOT_SEL_DATA   0x10
#define BOOT_SEL_CODE32 0x18

/* Loads the image into guest RAM and builds GDT and page tables. -1 with err on refusal. */
int boot_load(struct vm *vm, char *err, size_t errlen);

/* The boot vCPU's registers for the configured mode and entry point, after boot_load: changes
 * the segments, GDT, control registers and EFER of *sregs (read from KVM; the rest is kept)
 * and sets *regs. -1 with err if the GDT is not in guest RAM. */
int boot_cpu_state(struct vm *vm, struct kvm_sregs *sregs, struct kvm_regs *regs, char *err,
		   size_t errlen);
/* Puts the boot vCPU (fd) into that state. */
int boot_setup_vcpu(struct vm *vm, int vcpu_fd, char *err, size_t errlen);

#endif
