/* The VM's whole non-RAM state as one blob (PROTOCOL.md, "VM state"): a header (magic, format
 * version, the VM's shape and the host's CPU feature summary), then sections, each with an id,
 * an instance (the vCPU index, or 0), a length and a CRC-32 of its bytes. vCPU parts, the
 * in-kernel irqchip, the PIT and the KVM clock are KVM's uapi structs as they are (x86-64,
 * little-endian); each device writes and reads its own section (serial_save / serial_load, ...).
 * Guest RAM is not in it: it moves with READ_MEM / WRITE_MEM (RAM_MAP tells which ranges hold
 * data). The framebuffer's pixels are (they are in a slot of their own, not RAM).
 *
 * vmstate_format.c knows the format and checks a blob against what a VM expects, without KVM
 * (the fuzzer drives it); vmstate.c takes and applies the state through KVM. */
#ifndef QVMM_VMSTATE_H
#define QVMM_VMSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "statebuf.h"

struct vm;

#define VMSTATE_MAGIC        "QVMSTATE"	/* 8 bytes, no NUL */
#define VMSTATE_VERSION      PROTO_STATE_FORMAT
#define VMSTATE_HEADER_SIZE  96
#define VMSTATE_SECTION_HDR  12		/* u16 id, u16 instance, u32 length, u32 crc32 */
#define VMSTATE_CPU_WORDS    8
/* A blob is at most this large: two full framebuffers' worth (4096x2160) plus room for the
 * vCPUs and the console scrollback. LOAD_STATE refuses a larger announced size up front. */
#define VMSTATE_MAX_SIZE     PROTO_STATE_MAX

/* header flags: which optional vCPU parts the saving host had (and so the sections present) */
#define VMSTATE_F_XCRS       0x1
#define VMSTATE_F_EVENTS     0x2
#define VMSTATE_F_DEBUGREGS  0x4
#define VMSTATE_F_XSAVE      0x8	/* XSAVE section (xsave_size bytes), else FPU */

/* Section ids. 1-15 are per vCPU (instance = vCPU index), the rest once (instance 0). */
enum vmstate_section {
	VS_REGS = 1,		/* struct kvm_regs */
	VS_SREGS = 2,		/* struct kvm_sregs */
	VS_FPU = 3,		/* struct kvm_fpu (hosts without XSAVE) */
	VS_XSAVE = 4,		/* struct kvm_xsave, header xsave_size bytes */
	VS_XCRS = 5,		/* struct kvm_xcrs */
	VS_MSRS = 6,		/* u32 count, then count x (u32 index, u64 value) */
	VS_LAPIC = 7,		/* struct kvm_lapic_state */
	VS_EVENTS = 8,		/* struct kvm_vcpu_events */
	VS_DEBUGREGS = 9,	/* struct kvm_debugregs */
	VS_MP_STATE = 10,	/* struct kvm_mp_state */
	VS_VCPU_LAST = 15,
	VS_PIC_MASTER = 16,	/* struct kvm_pic_state */
	VS_PIC_SLAVE = 17,	/* struct kvm_pic_state */
	VS_IOAPIC = 18,		/* struct kvm_ioapic_state */
	VS_PIT = 19,		/* struct kvm_pit_state2 */
	VS_CLOCK = 20,		/* struct kvm_clock_data */
	VS_SERIAL = 32,		/* serial_save */
	VS_I8042 = 33,		/* i8042_save (with the PS/2 mouse) */
	VS_DEBUGPORT = 34,	/* debugport_save */
	VS_FRAMEBUFFER = 35,	/* framebuffer_save: geometry, pointer, pixels */
	VS_ID_LIMIT = 36,
};

/* What one host's KVM gives a VM, found at vm_create (before the sandbox, which forbids
 * KVM_GET_SUPPORTED_CPUID and KVM_CHECK_EXTENSION): what a blob is checked against. */
struct vmstate_host {
	uint32_t cpu[VMSTATE_CPU_WORDS];	/* vmstate_cpu_features */
	uint32_t flags;			/* VMSTATE_F_* this host has */
	uint32_t xsave_size;		/* bytes of KVM_GET_XSAVE(2), 0 without XSAVE */
	uint32_t nr_msrs;
	uint32_t *msrs;			/* KVM_GET_MSR_INDEX_LIST, only those a vCPU reads and writes back */
};

/* The blob's fixed header, as parsed. */
struct vmstate_header {
	uint32_t version, header_size, nr_vcpus, nr_sections;
	uint64_t mem_size;
	uint32_t fb_width, fb_height;
	uint32_t cpu[VMSTATE_CPU_WORDS];
	uint32_t xsave_size, flags;
	uint64_t total;
};

/* What a VM expects of a blob it is to load. */
struct vmstate_expect {
	uint32_t nr_vcpus;
	uint64_t mem_size;
	uint32_t fb_width, fb_height;
	const struct vmstate_host *host;
};

struct vmstate_ref {
	const uint8_t *p;		/* NULL: absent */
	uint32_t len;
};

/* A checked blob: where each section's bytes are. */
struct vmstate_index {
	struct vmstate_header hdr;
	struct vmstate_ref once[VS_ID_LIMIT];	/* ids above VS_VCPU_LAST */
	struct vmstate_ref *vcpu;		/* nr_vcpus x (VS_VCPU_LAST + 1), by [vcpu][id] */
};

/* The CPU feature summary of KVM_GET_SUPPORTED_CPUID on kvm_fd, the words in this order:
 * CPUID.01H ECX (without OSXSAVE, which the guest sets), EDX; 07H.0 EBX, ECX, EDX;
 * 80000001H ECX, EDX; 0DH.0 EAX (XCR0 bits). 0, or -1 with errno. */
int vmstate_cpu_features(int kvm_fd, uint32_t out[VMSTATE_CPU_WORDS]);

/* Appends the header (total and crc filled by vmstate_finish) and one section. */
void vmstate_begin(struct state_out *o, const struct vmstate_expect *shape);
void vmstate_section(struct state_out *o, uint16_t id, uint16_t instance, const void *p,
		     uint32_t len);
/* Starts a section whose bytes the caller appends next; vmstate_section_end fills its length and
 * CRC. Returns the section's offset. */
size_t vmstate_section_begin(struct state_out *o, uint16_t id, uint16_t instance);
void vmstate_section_end(struct state_out *o, size_t at);
/* Fills the section count, total length and header CRC. */
void vmstate_finish(struct state_out *o, uint32_t nr_sections);

/* Checks everything that needs no device and no KVM: magic, version, header CRC, total length,
 * vCPU count, memory size, framebuffer geometry, CPU features against the host's, XSAVE size,
 * optional parts, every section's bounds and CRC, no unknown or repeated section, every
 * required one present with its exact length, every MSR known to the host. 0 with idx filled
 * (free it with vmstate_index_free), or -1 with err saying what is wrong (idx holds nothing). */
int vmstate_check(const struct vmstate_expect *want, const uint8_t *blob, size_t len,
		  struct vmstate_index *idx, char *err, size_t errlen);
void vmstate_index_free(struct vmstate_index *idx);
/* Parses just the header (for a caller that reads a blob's shape); 0 or -1 with err. */
int vmstate_parse_header(const uint8_t *blob, size_t len, struct vmstate_header *h, char *err,
			 size_t errlen);

/* Found at vm_create: vm->vs_host. 0, or -1 with err. */
int vmstate_host_init(struct vm *vm, char *err, size_t errlen);
void vmstate_host_free(struct vm *vm);

/* The whole non-RAM state of a VM whose vCPUs are not in KVM_RUN (paused or created) into out
 * (a fresh state_out). 0, or -1 with err. */
int vmstate_save(struct vm *vm, struct state_out *out, char *err, size_t errlen);
/* Checks the blob completely (vmstate_check, then every device's own check) and only then
 * applies it: devices, irqchip, PIT, clock, vCPUs. Returns 0; -1 with err when the blob was
 * refused (nothing changed); -2 with err when KVM refused a part while applying (the VM is
 * then in a mixed state and should not run). */
int vmstate_load(struct vm *vm, const uint8_t *blob, size_t len, char *err, size_t errlen);

#endif
