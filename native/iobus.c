/* Range registry for port and MMIO exits. A handful of ranges: a linear scan is enough. */
#include "iobus.h"

#include <string.h>

int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_handler_t handler,
		   void *opaque, const char *name)
{
	unsigned i;

	if (!len || bus->count >= IOBUS_MAX_RANGES || base + len < base)
		return -1;
	for (i = 0; i < bus->count; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return -1;
	}
	bus->ranges[bus->count++] = (struct io_range){ base, len, handler, opaque, name };
	return 0;
}

bool iobus_access(struct iobus *bus, uint64_t addr, bool is_write, uint8_t *data, unsigned len)
{
	unsigned i;

	for (i = 0; i < bus->count; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->handler(r->opaque, addr - r->base, is_write, data, len);
			return true;
		}
	}
	__atomic_fetch_add(&bus->unhandled, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
