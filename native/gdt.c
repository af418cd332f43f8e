/* Segment descriptors: encoding for the GDT, decoding into KVM's segment register form. */
#include "gdt.h"

#include <string.h>

/* Descriptor layout: limit 15:0 in bits 0-15, base 23:0 in 16-39, access in 40-47,
 * limit 19:16 in 48-51, flags in 52-55, base 31:24 in 56-63. */
uint64_t gdt_encode(const struct seg_desc *d)
{
	return ((uint64_t)(d->base & 0xff000000) << 32) | ((uint64_t)(d->flags & 0xf) << 52) |
	       ((uint64_t)(d->limit & 0xf0000) << 32) | ((uint64_t)d->access << 40) |
	       ((uint64_t)(d->base & 0xffffff) << 16) | (d->limit & 0xffff);
}

void gdt_segment(uint64_t entry, uint16_t selector, struct kvm_segment *seg)
{
	uint32_t limit = (uint32_t)((entry & 0xffff) | ((entry >> 32) & 0xf0000));
	uint8_t access = (uint8_t)(entry >> 40), flags = (uint8_t)((entry >> 52) & 0xf);

	memset(seg, 0, sizeof(*seg));
	seg->base = ((entry >> 16) & 0xffffff) | ((entry >> 32) & 0xff000000);
	seg->g = (flags >> 3) & 1;
	seg->limit = seg->g ? (limit << 12) | 0xfff : limit;
	seg->selector = selector;
	seg->type = access & 0xf;
	seg->s = (access >> 4) & 1;
	seg->dpl = (access >> 5) & 3;
	seg->present = access >> 7;
	seg->avl = flags & 1;
	seg->l = (flags >> 1) & 1;
	seg->db = (flags >> 2) & 1;
	seg->unusable = !seg->present;
}
