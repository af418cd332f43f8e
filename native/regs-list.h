/* The registers of GET_REGS / SET_REGS as X-macro lists. regs.c builds its name table from them and
 * scripts/gen-helper-abi.mjs turns them into the agent's register lists, so the two cannot drift.
 * Keep every list a plain sequence of X(...) entries: the generator parses nothing else here. */
#ifndef QVMM_REGS_LIST_H
#define QVMM_REGS_LIST_H

/* 64-bit members of struct kvm_regs. */
#define REGS_GENERAL(X) \
	X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) \
	X(r8) X(r9) X(r10) X(r11) X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)

/* 64-bit members of struct kvm_sregs. */
#define REGS_CONTROL(X) X(cr0) X(cr2) X(cr3) X(cr4) X(cr8) X(efer) X(apic_base)

/* The struct kvm_segment members of struct kvm_sregs, named "<segment>.<field>". */
#define REGS_SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)

/* struct kvm_segment: X(segment, field, size in bytes, largest value). */
#define REGS_SEGMENT_FIELDS(X, seg) \
	X(seg, base, 8, UINT64_MAX) X(seg, limit, 4, 0xffffffff) X(seg, selector, 2, 0xffff) \
	X(seg, type, 1, 15) X(seg, present, 1, 1) X(seg, dpl, 1, 3) X(seg, db, 1, 1) X(seg, s, 1, 1) \
	X(seg, l, 1, 1) X(seg, g, 1, 1) X(seg, avl, 1, 1) X(seg, unusable, 1, 1)

/* The struct kvm_dtable members of struct kvm_sregs, named "<table>.<field>". */
#define REGS_DTABLES(X) X(gdt) X(idt)

/* struct kvm_dtable: X(table, field, size in bytes, largest value). */
#define REGS_DTABLE_FIELDS(X, table) X(table, base, 8, UINT64_MAX) X(table, limit, 2, 0xffff)

#endif
