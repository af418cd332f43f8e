/* Debug device: the guest's channel to the agent for results, power-off and commands. */
#include "debugport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

static void update_irq(struct debugport *d)
{
	int level = d->mb_count > 0;

	if (level != d->irq_level) {
		d->irq_level = level;
		irq_line_set(&d->doorbell, level);
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
	stop_hook_call(&d->power_off, v == QG_POWER_ACK ? "power-off acknowledged by the guest"
							: "power-off requested by the guest");
	events_push(d->events, PROTO_EV_POWEROFF, json);
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
		events_push(d->events, PROTO_EV_DEBUG, json);
	} else if (is_write && port == QG_PORT_POWER) {
		uint32_t v = le_value(data, len);
		pthread_mutex_unlock(&d->lock);
		power_write(d, v);	/* stops the VM: not under our lock */
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

struct debugport *debugport_init(struct iobus *pio, struct irq_line doorbell, struct events *events,
				 struct stop_hook power_off, char *err, size_t errlen)
{
	struct debugport *d = calloc(1, sizeof(*d));
	char why[160];

	if (!d) {
		snprintf(err, errlen, "debug port: out of memory");
		return NULL;
	}
	d->doorbell = doorbell;
	d->events = events;
	d->power_off = power_off;
	pthread_mutex_init(&d->lock, NULL);
	d->bus = pio;
	if (iobus_register(pio, QG_DEBUG_BASE, QG_DEBUG_LEN, debug_io, d, "debug", why,
			   sizeof(why)) < 0) {
		snprintf(err, errlen, "debug port: ports: %s", why);
		debugport_teardown(d);
		return NULL;
	}
	return d;
}

void debugport_teardown(struct debugport *d)
{
	if (!d)
		return;
	iobus_unregister(d->bus, d);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void debugport_stats_json(struct debugport *d, struct sbuf *sb)
{
	sb_printf(sb, "{\"results\":%llu,\"bench\":%llu,\"commandsIn\":%llu,"
		  "\"commandsOut\":%llu,\"power\":%llu}",
		  (unsigned long long)LOAD_RELAXED(d->count.results),
		  (unsigned long long)LOAD_RELAXED(d->count.bench),
		  (unsigned long long)LOAD_RELAXED(d->count.commands_in),
		  (unsigned long long)LOAD_RELAXED(d->count.commands_out),
		  (unsigned long long)LOAD_RELAXED(d->count.power));
}

/* Saved state, version 1: u32 version; u32 mailbox count, the command words waiting (oldest
 * first); u8 poweroff_requested, irq_level. */
#define DEBUGPORT_STATE_VERSION 1

void debugport_save(struct debugport *d, struct state_out *o)
{
	pthread_mutex_lock(&d->lock);
	so_u32(o, DEBUGPORT_STATE_VERSION);
	so_u32(o, d->mb_count);
	for (unsigned i = 0; i < d->mb_count; i++)
		so_u32(o, d->mailbox[(d->mb_head + i) % DEBUG_MAILBOX]);
	so_u8(o, (uint8_t)d->poweroff_requested);
	so_u8(o, (uint8_t)d->irq_level);
	pthread_mutex_unlock(&d->lock);
}

int debugport_load(struct debugport *d, const uint8_t *p, size_t len, int commit, char *err,
		   size_t errlen)
{
	struct state_in in;
	uint32_t version, count, words[DEBUG_MAILBOX];
	uint8_t requested, level;

	si_init(&in, p, len);
	version = si_u32(&in);
	count = si_u32(&in);
	for (uint32_t i = 0; i < count && i < DEBUG_MAILBOX; i++)
		words[i] = si_u32(&in);
	requested = si_u8(&in);
	level = si_u8(&in);
	if (version != DEBUGPORT_STATE_VERSION) {
		snprintf(err, errlen, "debug port: state version %u, this helper reads %d", version,
			 DEBUGPORT_STATE_VERSION);
		return -1;
	}
	if (count > DEBUG_MAILBOX || requested > 1 || level > 1 || !si_done(&in)) {
		snprintf(err, errlen, "debug port: malformed state (%zu bytes)", len);
		return -1;
	}
	if (!commit)
		return 0;
	pthread_mutex_lock(&d->lock);
	d->mb_head = 0;
	d->mb_count = count;
	memcpy(d->mailbox, words, count * sizeof(words[0]));
	d->poweroff_requested = requested;
	d->irq_level = level;
	irq_line_set(&d->doorbell, level);
	pthread_mutex_unlock(&d->lock);
	return 0;
}
