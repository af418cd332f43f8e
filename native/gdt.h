/* x86 segment descriptors: their fields, their 8-byte GDT encoding, and the hidden part of a
 * segment register (struct kvm_segment) that loading a selector of such an entry produces. */
#ifndef QVMM_GDT_H
#define QVMM_GDT_H

#include <linux/kvm.h>
#include <stdint.h>

/* access byte: P (0x80), DPL (0x60), S (0x10), type (0x0f); flags nibble: G (8), D/B (4),
 * L (2), AVL (1). limit is 20 bits, in 4 KiB units when G is set. */
struct seg_desc {
	uint32_t base;
	uint32_t limit;
	uint8_t access;
	uint8_t flags;
};

uint64_t gdt_encode(const struct seg_desc *d);
/* The segment register a selector loads from the GDT entry it names (entry = that 8-byte
 * descriptor): base, byte-granular limit, type, s, dpl, present, avl, l, db, g; a descriptor
 * that is not present gives an unusable segment. */
void gdt_segment(uint64_t entry, uint16_t selector, struct kvm_segment *seg);

#endif
