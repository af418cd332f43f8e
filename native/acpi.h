/* ACPI tables for Linux guests, hardware-reduced (no SCI, PM timer or PM1 blocks): an RSDP, an
 * XSDT naming a FADT and a MADT, and a DSDT holding only \_S5_. The MADT lists one local APIC
 * per vCPU (APIC id = vCPU index, as CPUID says) and KVM's IOAPIC; it is how a kernel without an
 * MP table parser finds its other vCPUs. The FADT points power-off and reset at the ports of
 * acpi_pm.c, and says an i8042 is present, no VGA and no CMOS RTC.
 *
 * Guest-physical layout, inside the reserved 0x9fc00-0xfffff area of the e820 map (pvh.h):
 *   0xe0000  RSDP (36 bytes; where a kernel scanning 0xe0000-0xfffff finds it too)
 *   0xe0040  XSDT
 *   0xe0100  FADT (276 bytes, revision 6)
 *   0xe0300  DSDT
 *   0xe0400  MADT (up to ACPI_MAX_VCPUS local APICs) */
#ifndef QVMM_ACPI_H
#define QVMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

#define ACPI_RSDP_ADDR 0xe0000ull
#define ACPI_XSDT_ADDR 0xe0040ull
#define ACPI_FADT_ADDR 0xe0100ull
#define ACPI_DSDT_ADDR 0xe0300ull
#define ACPI_MADT_ADDR 0xe0400ull
#define ACPI_AREA_END  0xf0000ull
#define ACPI_MAX_VCPUS 255		/* xAPIC ids in one-byte MADT entries */

#define ACPI_IOAPIC_ADDR 0xfec00000u
#define ACPI_LAPIC_ADDR  0xfee00000u

/* acpi_pm.c's ports, named in the FADT: one byte each. */
#define ACPI_SLEEP_CONTROL_PORT 0x600
#define ACPI_SLEEP_STATUS_PORT  0x601
#define ACPI_RESET_PORT         0x602
#define ACPI_PM_PORTS           3
#define ACPI_RESET_VALUE        0x06
#define ACPI_S5_TYPE            5	/* the SLP_TYP \_S5_ gives; written to the sleep control port */
#define ACPI_SLEEP_TYPE_SHIFT   2	/* sleep control register: SLP_TYP in bits 2-4, */
#define ACPI_SLEEP_ENABLE       0x20	/* SLP_EN in bit 5 */

/* Writes the tables for nr_vcpus vCPUs into guest RAM; the RSDP's address is ACPI_RSDP_ADDR.
 * -1 with err if RAM does not hold them or there are too many vCPUs. */
int acpi_build(struct guest_memory *mem, unsigned nr_vcpus, char *err, size_t errlen);

#endif
