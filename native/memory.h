/* Guest RAM: one memfd mapped into the helper, exposed to KVM as one or two slots
 * (below the 3 GiB PCI hole and above 4 GiB). */
#ifndef QVMM_MEMORY_H
#define QVMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define MEM_MIN_SIZE   (1ull << 20)
#define MEM_HOLE_START 0xC0000000ull	/* RAM below this address, the rest from 4 GiB */
#define MEM_HIGH_START 0x100000000ull
#define MEM_MAX_SLOTS  2

struct mem_slot {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_memory {
	int vm_fd;			/* the VM its slots belong to */
	int memfd;
	uint64_t size;
	uint8_t *host;			/* whole RAM mapping */
	struct mem_slot slots[MEM_MAX_SLOTS];
	unsigned nr_slots;
};

/* Creates RAM of `size` bytes and registers it with the VM; -1 with err filled on refusal. */
int memory_init(struct guest_memory *mem, int vm_fd, uint64_t size, char *err, size_t errlen);
void memory_teardown(struct guest_memory *mem);

/* Host pointer for [gpa, gpa+len) if the whole range lies inside one slot, else NULL. */
void *memory_gpa_to_host(struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* Turns KVM dirty-page logging (KVM_MEM_LOG_DIRTY_PAGES) of every RAM slot on or off by registering
 * each slot again with the same place and size; all slots or none. -1 with err on refusal. */
int memory_set_dirty_log(struct guest_memory *mem, int on, char *err, size_t errlen);
/* Fetches and clears RAM slot i's dirty bitmap (KVM_GET_DIRTY_LOG) into bitmap, ceil(pages/64)
 * u64 words (bit j = page gpa + j * 4096); logging must be on. -1 with err on failure. */
int memory_get_dirty_log(struct guest_memory *mem, unsigned i, void *bitmap, char *err, size_t errlen);

/* Highest guest-physical address + 1. */
uint64_t memory_top(const struct guest_memory *mem);

#endif
