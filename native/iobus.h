/* Exit dispatch by address range: devices register a handler for a port (PIO) or
 * guest-physical (MMIO) range; the vCPU loop looks the range up and knows no device.
 * Ranges are registered and removed only while no vCPU runs (VM setup and teardown), so
 * dispatch takes no lock. */
#ifndef QVMM_IOBUS_H
#define QVMM_IOBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* offset is relative to the registered base; data holds `len` bytes (little-endian). */
typedef void (*io_handler_t)(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			     unsigned len);

struct io_range {
	uint64_t base;
	uint64_t len;
	io_handler_t handler;
	void *opaque;
	const char *name;
};

#define IOBUS_MAX_RANGES 32

struct iobus {
	struct io_range ranges[IOBUS_MAX_RANGES];
	unsigned count;
	uint64_t unhandled;		/* accesses no device claimed */
};

/* Claims [base, base+len) for handler. Returns 0, or -1 with err saying why: an empty or
 * wrapping range, a full bus, or which registered range it overlaps. */
int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_handler_t handler,
		   void *opaque, const char *name, char *err, size_t errlen);
/* Removes every range registered with this opaque (a device's teardown). */
void iobus_unregister(struct iobus *bus, const void *opaque);
/* Dispatches one access; unclaimed reads return all-ones, unclaimed writes are dropped. */
bool iobus_access(struct iobus *bus, uint64_t addr, bool is_write, uint8_t *data, unsigned len);
/* Appends the bus's counters: {"unhandled":N}. */
void iobus_stats_json(struct iobus *bus, struct sbuf *sb);

#endif
