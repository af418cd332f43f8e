/* The ACPI power-management ports on a bus with a recorded stop hook: SLP_EN with the soft-off
 * type powers off (POWEROFF event), the FADT's reset value resets (RESET event), anything else
 * (other sleep types, SLP_TYP without SLP_EN, other reset values, reads) does nothing. */
#include <stdlib.h>

#include "acpi.h"
#include "acpi_pm.h"
#include "check.h"
#include "machine.h"
#include "proto.h"

struct rig {
	struct iobus bus;
	struct stop_recorder stop;
	struct events *events;
	struct acpi_pm *pm;
};

static void rig_up(struct rig *r)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->events = events_create();
	r->pm = acpi_pm_init(&r->bus, r->events, recorded_stop(&r->stop), err, sizeof(err));
	CHECK(r->events && r->pm);
	CHECK_STR(err, "");
	events_free(events_take(r->events));
}

static void rig_down(struct rig *r)
{
	acpi_pm_teardown(r->pm);
	events_destroy(r->events);
}

/* The guest was stopped once, with reason, and one event of type with {"source":"acpi"}. */
static void expect_stopped(struct rig *r, const char *reason, uint16_t type)
{
	unsigned matching;
	char json[128];

	CHECK_EQ(r->stop.calls, 1);
	CHECK_STR(r->stop.reason, reason);
	CHECK_EQ(take_events(r->events, type, &matching, json, sizeof(json)), 1);
	CHECK_EQ(matching, 1);
	CHECK_STR(json, "{\"source\":\"acpi\"}");
}

static void test_power_off(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, ACPI_SLEEP_CONTROL_PORT, ACPI_S5_TYPE << ACPI_SLEEP_TYPE_SHIFT);	/* no SLP_EN */
	outb(&r.bus, ACPI_SLEEP_CONTROL_PORT, ACPI_SLEEP_ENABLE | (3 << ACPI_SLEEP_TYPE_SHIFT));	/* S3 */
	outb(&r.bus, ACPI_SLEEP_STATUS_PORT, 0x80);	/* clearing WAK_STS */
	CHECK_EQ(inb(&r.bus, ACPI_SLEEP_STATUS_PORT), 0);
	CHECK_EQ(r.stop.calls, 0);
	outb(&r.bus, ACPI_SLEEP_CONTROL_PORT, ACPI_SLEEP_ENABLE | (ACPI_S5_TYPE << ACPI_SLEEP_TYPE_SHIFT));
	expect_stopped(&r, "guest power-off (ACPI)", PROTO_EV_POWEROFF);
	rig_down(&r);
}

static void test_reset(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, ACPI_RESET_PORT, 0x02);
	CHECK_EQ(r.stop.calls, 0);
	outb(&r.bus, ACPI_RESET_PORT, ACPI_RESET_VALUE);
	expect_stopped(&r, "guest reset (ACPI)", PROTO_EV_RESET);
	rig_down(&r);
}

static void test_ports_taken(void)
{
	struct rig r;
	struct stop_recorder stop = { 0 };
	char err[256] = "";

	rig_up(&r);
	CHECK(acpi_pm_init(&r.bus, r.events, recorded_stop(&stop), err, sizeof(err)) == NULL);
	CHECK(strstr(err, "ACPI PM: ports: ") != NULL);
	rig_down(&r);
}

int main(void)
{
	RUN(test_power_off);
	RUN(test_reset);
	RUN(test_ports_taken);
	return check_done("acpi_pm");
}
