/* Guest RAM from a memfd: sized, mapped, split around the PCI hole and given to KVM. */
#include "memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

static uint64_t host_ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

/* RAM slot i is KVM slot i. Registering a slot again with only its flags changed is how KVM
 * turns its dirty logging on or off. */
static int set_region(int vm_fd, unsigned i, const struct mem_slot *s, uint32_t flags, char *err,
		      size_t errlen)
{
	struct kvm_userspace_memory_region region = {
		.slot = i,
		.flags = flags,
		.guest_phys_addr = s->gpa,
		.memory_size = s->size,
		.userspace_addr = (uint64_t)(uintptr_t)s->host,
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %u: %s", i, strerror(errno));
		return -1;
	}
	return 0;
}

static int add_slot(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint8_t *host,
		    char *err, size_t errlen)
{
	struct mem_slot s = { gpa, size, host };

	if (set_region(mem->vm_fd, mem->nr_slots, &s, 0, err, errlen) < 0)
		return -1;
	mem->slots[mem->nr_slots++] = s;
	return 0;
}

int memory_set_dirty_log(struct guest_memory *mem, int on, char *err, size_t errlen)
{
	uint32_t flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	char ignored[64];

	for (unsigned i = 0; i < mem->nr_slots; i++) {
		if (set_region(mem->vm_fd, i, &mem->slots[i], flags, err, errlen) == 0)
			continue;
		while (i--)	/* back as they were: all slots or none */
			set_region(mem->vm_fd, i, &mem->slots[i], on ? 0 : KVM_MEM_LOG_DIRTY_PAGES,
				   ignored, sizeof(ignored));
		return -1;
	}
	return 0;
}

int memory_get_dirty_log(struct guest_memory *mem, unsigned i, void *bitmap, char *err, size_t errlen)
{
	struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = bitmap };

	if (ioctl(mem->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		snprintf(err, errlen, "KVM_GET_DIRTY_LOG slot %u: %s", i, strerror(errno));
		return -1;
	}
	return 0;
}

int memory_init(struct guest_memory *mem, int vm_fd, uint64_t size, char *err, size_t errlen)
{
	uint64_t limit = host_ram_bytes(), low;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	mem->vm_fd = vm_fd;
	if (size < MEM_MIN_SIZE || (size & 0xfff)) {
		snprintf(err, errlen, "memory size %llu: must be at least 1 MiB and a multiple of 4 KiB",
			 (unsigned long long)size);
		return -1;
	}
	if (limit && size > limit) {
		snprintf(err, errlen, "memory size %llu exceeds the host's RAM (%llu bytes)",
			 (unsigned long long)size, (unsigned long long)limit);
		return -1;
	}
	mem->memfd = memfd_create("qumra-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0 || ftruncate(mem->memfd, (off_t)size) < 0) {
		snprintf(err, errlen, "guest RAM memfd of %llu bytes: %s", (unsigned long long)size,
			 strerror(errno));
		memory_teardown(mem);
		return -1;
	}
	mem->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 mem->memfd, 0);
	if (mem->host == MAP_FAILED) {
		mem->host = NULL;
		snprintf(err, errlen, "mmap of guest RAM: %s", strerror(errno));
		memory_teardown(mem);
		return -1;
	}
	mem->size = size;
	madvise(mem->host, size, MADV_MERGEABLE);
	low = MIN(size, MEM_HOLE_START);
	if (add_slot(mem, 0, low, mem->host, err, errlen) < 0 ||
	    (size > low && add_slot(mem, MEM_HIGH_START, size - low, mem->host + low, err, errlen) < 0)) {
		memory_teardown(mem);
		return -1;
	}
	return 0;
}

void memory_teardown(struct guest_memory *mem)
{
	if (mem->host)
		munmap(mem->host, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = mem->vm_fd = -1;
}

void *memory_gpa_to_host(struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < mem->nr_slots; i++) {
		const struct mem_slot *s = &mem->slots[i];
		if (gpa >= s->gpa && gpa - s->gpa <= s->size && len <= s->size - (gpa - s->gpa))
			return s->host + (gpa - s->gpa);
	}
	return NULL;
}

uint64_t memory_top(const struct guest_memory *mem)
{
	const struct mem_slot *s = &mem->slots[mem->nr_slots - 1];

	return s->gpa + s->size;
}
