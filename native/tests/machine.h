/* A pretend machine for the device tests: an interrupt line that records its level, a stop hook
 * that records the reason, port I/O through a real iobus, and a look at queued events. */
#ifndef QVMM_TESTS_MACHINE_H
#define QVMM_TESTS_MACHINE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "events.h"
#include "iobus.h"

struct irq_recorder {
	unsigned irq;		/* the line number the device used */
	int level;
	unsigned rises;		/* low -> high transitions */
	unsigned calls;
};

static inline void irq_record(void *opaque, unsigned irq, int level)
{
	struct irq_recorder *r = opaque;

	r->irq = irq;
	r->calls++;
	if (level && !r->level)
		r->rises++;
	r->level = level;
}

static inline struct irq_line recorded_irq(struct irq_recorder *r, unsigned irq)
{
	return (struct irq_line){ .set = irq_record, .opaque = r, .irq = irq };
}

struct stop_recorder {
	unsigned calls;
	char reason[128];
};

static inline void stop_record(void *opaque, const char *reason)
{
	struct stop_recorder *r = opaque;

	r->calls++;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static inline struct stop_hook recorded_stop(struct stop_recorder *r)
{
	return (struct stop_hook){ .stop = stop_record, .opaque = r };
}

/* Port I/O of the given width, as a vCPU exit would do it (little-endian data). */
static inline uint32_t port_in(struct iobus *bus, uint16_t port, unsigned size)
{
	uint8_t data[4] = { 0xaa, 0xaa, 0xaa, 0xaa };	/* not 0 or 0xff: a byte left alone shows */
	uint32_t v = 0;

	iobus_access(bus, port, false, data, size);
	memcpy(&v, data, size);
	return v;
}

static inline void port_out(struct iobus *bus, uint16_t port, unsigned size, uint32_t v)
{
	uint8_t data[4];

	memcpy(data, &v, sizeof(data));
	iobus_access(bus, port, true, data, size);
}

static inline uint8_t inb(struct iobus *bus, uint16_t port)
{
	return (uint8_t)port_in(bus, port, 1);
}

static inline void outb(struct iobus *bus, uint16_t port, uint8_t v)
{
	port_out(bus, port, 1, v);
}

/* Takes the queued events; returns how many there were, and copies the type and JSON of the
 * first one of `type` (if any) into *json (up to len bytes). */
static inline unsigned take_events(struct events *ev, uint16_t type, unsigned *matching,
				   char *json, size_t len)
{
	struct event *list = events_take(ev), *e;
	unsigned n = 0;

	*matching = 0;
	if (len)
		json[0] = 0;
	for (e = list; e; e = e->next, n++) {
		if (e->type != type)
			continue;
		if (!(*matching)++ && len)
			snprintf(json, len, "%s", e->json);
	}
	events_free(list);
	return n;
}

#endif
