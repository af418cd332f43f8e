/* ACPI power-off and reset ports (acpi_pm.h). */
#include "acpi_pm.h"

#include <stdio.h>
#include <stdlib.h>

#include "acpi.h"
#include "proto.h"
#include "util.h"

static void pm_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	uint8_t v = len ? data[0] : 0;

	if (!is_write) {
		for (unsigned i = 0; i < len; i++)
			data[i] = 0;
		return;
	}
	switch (ACPI_SLEEP_CONTROL_PORT + offset) {
	case ACPI_SLEEP_CONTROL_PORT:
		/* Other sleep states are not offered (the DSDT has only \_S5_): ignored. */
		if (!(v & ACPI_SLEEP_ENABLE) || ((v >> ACPI_SLEEP_TYPE_SHIFT) & 7) != ACPI_S5_TYPE)
			return;
		log_info("guest power-off through ACPI (S5)");
		stop_hook_call(&pm->stop, "guest power-off (ACPI)");
		events_push(pm->events, PROTO_EV_POWEROFF, "{\"source\":\"acpi\"}");
		return;
	case ACPI_RESET_PORT:
		if (v != ACPI_RESET_VALUE)
			return;
		log_info("guest reset through the ACPI reset register");
		stop_hook_call(&pm->stop, "guest reset (ACPI)");
		events_push(pm->events, PROTO_EV_RESET, "{\"source\":\"acpi\"}");
		return;
	}
	/* The sleep status register: wake status writes are acknowledgements of nothing. */
}

struct acpi_pm *acpi_pm_init(struct iobus *pio, struct events *events, struct stop_hook stop,
			     char *err, size_t errlen)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	char why[160];

	if (!pm) {
		snprintf(err, errlen, "ACPI PM: out of memory");
		return NULL;
	}
	pm->bus = pio;
	pm->events = events;
	pm->stop = stop;
	if (iobus_register(pio, ACPI_SLEEP_CONTROL_PORT, ACPI_PM_PORTS, pm_io, pm, "acpi-pm", why,
			   sizeof(why)) < 0) {
		snprintf(err, errlen, "ACPI PM: ports: %s", why);
		free(pm);
		return NULL;
	}
	return pm;
}

void acpi_pm_teardown(struct acpi_pm *pm)
{
	if (!pm)
		return;
	iobus_unregister(pm->bus, pm);
	free(pm);
}
