/* kvm-pvm's emulator gaps, completed by the helper (pvm_insn.h). */
#include "pvm_insn.h"

#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util.h"
#include "vm.h"

#define INSN_BYTES 8
#define RFLAGS_ARITH 0x8d5u		/* CF PF AF ZF SF OF */
#define RFLAGS_ZF    0x40u
#define RFLAGS_AC    (1u << 18)

/* The instruction bytes at the vCPU's RIP (its page tables through KVM_TRANSLATE), or NULL when
 * they do not sit in guest RAM contiguously. */
static const uint8_t *insn_at(struct vcpu *v, uint64_t rip)
{
	struct kvm_translation first = { .linear_address = rip }, last = { .linear_address = rip + INSN_BYTES - 1 };

	if (ioctl(v->fd, KVM_TRANSLATE, &first) < 0 || !first.valid ||
	    ioctl(v->fd, KVM_TRANSLATE, &last) < 0 || !last.valid ||
	    last.physical_address != first.physical_address + INSN_BYTES - 1)
		return NULL;
	return memory_gpa_to_host(&v->vm->mem, first.physical_address, INSN_BYTES);
}

/* Delivers exception `vector` (no error code) with RIP as in regs. */
static int inject(struct vcpu *v, struct kvm_regs *regs, unsigned vector)
{
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -1;
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)vector;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	if (ioctl(v->fd, KVM_SET_REGS, regs) < 0 || ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -1;
	return 0;
}

static __u64 *gpr(struct kvm_regs *r, unsigned i)
{
	__u64 *const regs[16] = { &r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi,
				     &r->rdi, &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13,
				     &r->r14, &r->r15 };
	return regs[i & 15];
}

/* FWAIT: *vector = 7 (#NM) when CR0.MP and CR0.TS are set, 16 (#MF) when an unmasked x87
 * exception is pending (FSW.ES), else -1 (nothing happens). -1 if the state cannot be read. */
static int fwait(struct vcpu *v, int *vector)
{
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	if ((sregs.cr0 & 0xa) == 0xa) {		/* MP | TS */
		*vector = 7;
		return 0;
	}
	if (ioctl(v->fd, KVM_GET_FPU, &fpu) < 0)
		return -1;
	*vector = (fpu.fsw & 0x80) ? 16 : -1;
	return 0;
}

/* F3 [REX] 0F B8 /r with a register operand (mod = 3): 32- or 64-bit POPCNT. Its length, or 0. */
static unsigned popcnt_reg(const uint8_t *b, struct kvm_regs *regs)
{
	unsigned i = 1, rex = 0, modrm;
	uint64_t src;

	if (b[0] != 0xf3)
		return 0;
	if ((b[i] & 0xf0) == 0x40)
		rex = b[i++];
	if (b[i] != 0x0f || b[i + 1] != 0xb8 || (b[i + 2] & 0xc0) != 0xc0)
		return 0;
	modrm = b[i + 2];
	src = *gpr(regs, (modrm & 7) | ((rex & 1) << 3));		/* r/m, REX.B */
	if (!(rex & 8))
		src &= 0xffffffffu;					/* 32-bit operand */
	*gpr(regs, ((modrm >> 3) & 7) | ((rex & 4) << 1)) = (uint64_t)__builtin_popcountll(src);	/* reg, REX.R; 32-bit writes zero-extend */
	regs->rflags = (regs->rflags & ~(uint64_t)RFLAGS_ARITH) | (src ? 0 : RFLAGS_ZF);
	return i + 3;
}

/* CLAC/STAC: 0F 01 CA/CB. Its length, or 0. */
static unsigned clac_stac(const uint8_t *b, struct kvm_regs *regs)
{
	if (b[0] != 0x0f || b[1] != 0x01 || (b[2] != 0xca && b[2] != 0xcb))
		return 0;
	regs->rflags = b[2] == 0xca ? regs->rflags & ~(uint64_t)RFLAGS_AC : regs->rflags | RFLAGS_AC;
	return 3;
}

int pvm_complete_insn(struct vcpu *v)
{
	struct kvm_regs regs;
	const uint8_t *b;
	unsigned len = 0;
	int vector = -1;			/* an exception to deliver instead, or -1 */
	uint64_t at;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || !(b = insn_at(v, regs.rip)))
		return -1;
	at = regs.rip;
	if (b[0] == 0xcc) {
		regs.rip += 1;			/* #BP is a trap: it returns after the INT3 */
		vector = 3;
	} else if (b[0] == 0x9b) {		/* FWAIT */
		if (fwait(v, &vector) < 0)
			return -1;
		len = vector < 0;		/* no exception: past it */
	} else if (!(len = popcnt_reg(b, &regs)) && !(len = clac_stac(b, &regs))) {
		log_error("vcpu %u: emulation failure at rip=0x%llx, bytes %02x %02x %02x %02x %02x %02x "
			  "%02x %02x", v->id, (unsigned long long)regs.rip, b[0], b[1], b[2], b[3], b[4],
			  b[5], b[6], b[7]);
		return -1;
	}
	regs.rip += len;
	if (vector >= 0 ? inject(v, &regs, (unsigned)vector) < 0 : ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -1;
	if (++v->count.completed_insns == 1)
		log_info("vcpu %u: kvm-pvm could not emulate the instruction at rip=0x%llx (0x%02x ...): "
			 "completed by the helper (pvm_insn.c; logged once per vCPU)", v->id,
			 (unsigned long long)at, b[0]);
	return 0;
}
