/* The ACPI power-management ports the FADT names (acpi.h): the sleep control register, where
 * SLP_EN with the soft-off type powers the guest off (STOPPED and a POWEROFF event), the sleep
 * status register (reads 0: no wake events), and the reset register, where the FADT's reset
 * value resets the guest (STOPPED and a RESET event, as the i8042's reset line does). */
#ifndef QVMM_ACPI_PM_H
#define QVMM_ACPI_PM_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "events.h"
#include "iobus.h"

struct acpi_pm {
	struct iobus *bus;
	struct events *events;
	struct stop_hook stop;
};

/* Claims ACPI_SLEEP_CONTROL_PORT.. on pio. NULL with err ("ACPI PM: ...") on failure. */
struct acpi_pm *acpi_pm_init(struct iobus *pio, struct events *events, struct stop_hook stop,
			     char *err, size_t errlen);
void acpi_pm_teardown(struct acpi_pm *pm);

#endif
