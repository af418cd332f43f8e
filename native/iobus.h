/* Exit dispatch by address range: devices register a handler for a port (PIO) or
 * guest-physical (MMIO) range; the vCPU loop looks the range up and knows no device. */
#ifndef QVMM_IOBUS_H
#define QVMM_IOBUS_H

#include <stdbool.h>
#include <stdint.h>

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

/* Returns 0, or -1 if the range overlaps another or the bus is full. */
int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_handler_t handler,
		   void *opaque, const char *name);
/* Dispatches one access; unclaimed reads return all-ones, unclaimed writes are dropped. */
bool iobus_access(struct iobus *bus, uint64_t addr, bool is_write, uint8_t *data, unsigned len);

#endif
