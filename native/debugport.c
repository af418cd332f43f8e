/* Debug device: the guest's channel to the agent for results, power-off and commands. */
#include "debugport.h"

#include <stdio.h>
#include <stdlib.h>

#include "events.h"
#include "proto.h"
#include "util.h"

static void update_irq(struct debugport *d)
{
	int level = d->mb_count > 0;

	if (level != d->irq_level) {
		d->irq_level = level;
		vm_irq_line(d->vm, QG_DOORBELL_IRQ, level);
	}
}

static uint32_t le_value(const uint8_t *data, unsigned len)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void power_write(struct debugport *d, uint32_t v)
{
	char json[96];

	d->count.power++;
	if (v != QG_POWER_REQUEST && v != QG_POWER_ACK)
		return;
	snprintf(json, sizeof(json), "{\"source\":\"%s\"}",
		 v == QG_POWER_ACK ? "acknowledged" : "guest");
	vm_guest_stopped(d->vm, VM_STOPPED, v == QG_POWER_ACK ? "power-off acknowledged by the guest"
						       : "power-off requested by the guest");
	events_push(d->vm->events, PROTO_EV_POWEROFF, json);
}

static void debug_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct debugport *d = opaque;
	uint64_t port = QG_DEBUG_BASE + offset;
	char json[128];

	if (port == QG_PORT_BENCH) {	/* the hot path of exit-rate measurements: no lock */
		__atomic_fetch_add(&d->count.bench, 1, __ATOMIC_RELAXED);
		if (!is_write)
			for (unsigned i = 0; i < len; i++)
				data[i] = 0;
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (is_write && port == QG_PORT_RESULT) {
		d->count.results++;
		snprintf(json, sizeof(json), "{\"port\":%u,\"size\":%u,\"value\":%u}",
			 (unsigned)port, len, le_value(data, len));
		events_push(d->vm->events, PROTO_EV_DEBUG, json);
	} else if (is_write && port == QG_PORT_POWER) {
		uint32_t v = le_value(data, len);
		pthread_mutex_unlock(&d->lock);
		power_write(d, v);	/* takes vm->lock: not under our lock */
		return;
	} else if (!is_write) {
		uint32_t v = 0;
		if (port == QG_PORT_POWER) {
			v = (uint32_t)d->poweroff_requested;
		} else if (port == QG_PORT_COMMAND && d->mb_count) {
			v = d->mailbox[d->mb_head];
			d->mb_head = (d->mb_head + 1) % DEBUG_MAILBOX;
			d->mb_count--;
			d->count.commands_out++;
		}
		for (unsigned i = 0; i < len; i++)
			data[i] = (uint8_t)(i < 4 ? v >> (8 * i) : 0);
	}
	update_irq(d);
	pthread_mutex_unlock(&d->lock);
}

int debugport_command(struct debugport *d, uint32_t word)
{
	int rc = -1;

	pthread_mutex_lock(&d->lock);
	if (d->mb_count < DEBUG_MAILBOX) {
		d->mailbox[(d->mb_head + d->mb_count++) % DEBUG_MAILBOX] = word;
		d->count.commands_in++;
		rc = 0;
	}
	update_irq(d);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void debugport_request_poweroff(struct debugport *d)
{
	pthread_mutex_lock(&d->lock);
	d->poweroff_requested = 1;
	pthread_mutex_unlock(&d->lock);
	debugport_command(d, QG_CMD_HOST_POWEROFF);
}

struct debugport *debugport_init(struct vm *vm)
{
	struct debugport *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->vm = vm;
	pthread_mutex_init(&d->lock, NULL);
	if (iobus_register(&vm->pio, QG_DEBUG_BASE, QG_DEBUG_LEN, debug_io, d, "debug") < 0) {
		debugport_teardown(d);
		return NULL;
	}
	return d;
}

void debugport_teardown(struct debugport *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d);
}
