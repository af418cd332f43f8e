/* Range registry for port and MMIO exits. A handful of ranges: a linear scan is enough. */
#include "iobus.h"

#include <stdio.h>
#include <string.h>

int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, io_handler_t handler,
		   void *opaque, const char *name, char *err, size_t errlen)
{
	unsigned i;

	if (!len || base + len < base) {
		snprintf(err, errlen, "range 0x%llx+0x%llx is empty or wraps", (unsigned long long)base,
			 (unsigned long long)len);
		return -1;
	}
	for (i = 0; i < bus->count; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len) {
			snprintf(err, errlen, "range 0x%llx-0x%llx overlaps %s at 0x%llx-0x%llx",
				 (unsigned long long)base, (unsigned long long)(base + len - 1), r->name,
				 (unsigned long long)r->base, (unsigned long long)(r->base + r->len - 1));
			return -1;
		}
	}
	if (bus->count >= IOBUS_MAX_RANGES) {
		snprintf(err, errlen, "the bus is full (%d ranges)", IOBUS_MAX_RANGES);
		return -1;
	}
	bus->ranges[bus->count++] = (struct io_range){ base, len, handler, opaque, name };
	return 0;
}

void iobus_unregister(struct iobus *bus, const void *opaque)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < bus->count; i++)
		if (bus->ranges[i].opaque != opaque)
			bus->ranges[kept++] = bus->ranges[i];
	bus->count = kept;
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

void iobus_stats_json(struct iobus *bus, struct sbuf *sb)
{
	sb_printf(sb, "{\"unhandled\":%llu}",
		  (unsigned long long)__atomic_load_n(&bus->unhandled, __ATOMIC_RELAXED));
}
