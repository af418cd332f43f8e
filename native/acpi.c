/* The ACPI tables of a Linux guest (layout and contents in acpi.h). Each table is built in place
 * in guest RAM; its checksum byte makes the bytes of the table sum to zero. */
#include "acpi.h"

#include <stdio.h>
#include <string.h>

#include "le.h"

#define HEADER_LEN 36

/* FADT fields (offsets in the ACPI 6 FADT) and flags. */
#define FADT_LEN              276
#define FADT_IAPC_BOOT_ARCH   109
#define FADT_FLAGS            112
#define FADT_RESET_REG        116
#define FADT_RESET_VALUE      128
#define FADT_MINOR_VERSION    131
#define FADT_X_DSDT           140
#define FADT_SLEEP_CONTROL    244
#define FADT_SLEEP_STATUS     256
#define FADT_HYPERVISOR_ID    268
#define FADT_RESET_REG_SUP    (1u << 10)
#define FADT_HW_REDUCED_ACPI  (1u << 20)
#define BOOT_ARCH_8042        (1u << 1)
#define BOOT_ARCH_NO_VGA      (1u << 2)
#define BOOT_ARCH_NO_CMOS_RTC (1u << 5)

#define MADT_PCAT_COMPAT   1u		/* a dual 8259 is there too (KVM's in-kernel PIC) */
#define MADT_LAPIC         0
#define MADT_IOAPIC        1
#define MADT_LAPIC_ENABLED 1u

#define GAS_SYSTEM_IO 1
#define GAS_BYTE      1

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t revision)
{
	memset(t, 0, HEADER_LEN);
	memcpy(t, sig, 4);
	le_put32(t + 4, len);
	t[8] = revision;
	memcpy(t + 10, "QUMRA ", 6);		/* OEM id */
	memcpy(t + 16, "QUMRAVMM", 8);		/* OEM table id */
	le_put32(t + 24, 1);			/* OEM revision */
	memcpy(t + 28, "QVMM", 4);		/* creator id */
	le_put32(t + 32, 1);			/* creator revision */
}

static void seal(uint8_t *t)
{
	uint32_t len;

	memcpy(&len, t + 4, 4);
	t[9] = 0;
	t[9] = checksum(t, len);
}

/* A Generic Address Structure naming one byte-wide I/O port. */
static void io_port_gas(uint8_t *g, uint16_t port)
{
	memset(g, 0, 12);
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8;		/* register width in bits */
	g[3] = GAS_BYTE;	/* access size */
	le_put64(g + 4, port);
}

/* \_S5_: Name (_S5_, Package (2) { 5, 5 }) — SLP_TYPa and SLP_TYPb of the soft-off state. */
static const uint8_t dsdt_aml[] = {
	0x08, '_', 'S', '5', '_',	/* NameOp, NameString */
	0x12, 0x06, 0x02,		/* PackageOp, PkgLength 6, two elements */
	0x0a, ACPI_S5_TYPE,		/* BytePrefix 5 */
	0x0a, ACPI_S5_TYPE,
};

static void build_fadt(uint8_t *t)
{
	memset(t, 0, FADT_LEN);
	header(t, "FACP", FADT_LEN, 6);
	le_put16(t + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS_RTC);
	le_put32(t + FADT_FLAGS, FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP);
	io_port_gas(t + FADT_RESET_REG, ACPI_RESET_PORT);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	t[FADT_MINOR_VERSION] = 0;
	le_put64(t + FADT_X_DSDT, ACPI_DSDT_ADDR);
	io_port_gas(t + FADT_SLEEP_CONTROL, ACPI_SLEEP_CONTROL_PORT);
	io_port_gas(t + FADT_SLEEP_STATUS, ACPI_SLEEP_STATUS_PORT);
	memcpy(t + FADT_HYPERVISOR_ID, "QUMRAVMM", 8);
	seal(t);
}

static uint32_t madt_len(unsigned nr_vcpus)
{
	return HEADER_LEN + 8 + nr_vcpus * 8 + 12;
}

static void build_madt(uint8_t *t, unsigned nr_vcpus)
{
	uint32_t len = madt_len(nr_vcpus);
	uint8_t *e = t + HEADER_LEN + 8;

	header(t, "APIC", len, 5);
	le_put32(t + HEADER_LEN, ACPI_LAPIC_ADDR);
	le_put32(t + HEADER_LEN + 4, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < nr_vcpus; i++, e += 8) {
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;		/* ACPI processor UID */
		e[3] = (uint8_t)i;		/* APIC id */
		le_put32(e + 4, MADT_LAPIC_ENABLED);
	}
	/* KVM's IOAPIC: id 0 (its ID register's reset value), GSIs from 0. KVM's default routing
	 * takes ISA IRQ n to pin n, so no interrupt source overrides. */
	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = 0;
	e[3] = 0;
	le_put32(e + 4, ACPI_IOAPIC_ADDR);
	le_put32(e + 8, 0);
	seal(t);
}

int acpi_build(struct guest_memory *mem, unsigned nr_vcpus, char *err, size_t errlen)
{
	uint8_t *area = memory_gpa_to_host(mem, ACPI_RSDP_ADDR, ACPI_AREA_END - ACPI_RSDP_ADDR);
	uint8_t *rsdp, *xsdt, *dsdt;

	if (!area) {
		snprintf(err, errlen, "guest RAM too small for the ACPI tables");
		return -1;
	}
	if (nr_vcpus == 0 || nr_vcpus > ACPI_MAX_VCPUS ||
	    ACPI_MADT_ADDR + madt_len(nr_vcpus) > ACPI_AREA_END) {
		snprintf(err, errlen, "%u vCPUs: a Linux guest's MADT holds 1 to %d", nr_vcpus,
			 ACPI_MAX_VCPUS);
		return -1;
	}
	memset(area, 0, ACPI_AREA_END - ACPI_RSDP_ADDR);
	rsdp = area;
	xsdt = area + (ACPI_XSDT_ADDR - ACPI_RSDP_ADDR);
	dsdt = area + (ACPI_DSDT_ADDR - ACPI_RSDP_ADDR);

	build_fadt(area + (ACPI_FADT_ADDR - ACPI_RSDP_ADDR));
	build_madt(area + (ACPI_MADT_ADDR - ACPI_RSDP_ADDR), nr_vcpus);
	header(dsdt, "DSDT", HEADER_LEN + sizeof(dsdt_aml), 2);
	memcpy(dsdt + HEADER_LEN, dsdt_aml, sizeof(dsdt_aml));
	seal(dsdt);
	header(xsdt, "XSDT", HEADER_LEN + 16, 1);
	le_put64(xsdt + HEADER_LEN, ACPI_FADT_ADDR);
	le_put64(xsdt + HEADER_LEN + 8, ACPI_MADT_ADDR);
	seal(xsdt);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "QUMRA ", 6);
	rsdp[15] = 2;				/* revision: XSDT */
	le_put32(rsdp + 20, 36);			/* length */
	le_put64(rsdp + 24, ACPI_XSDT_ADDR);
	rsdp[8] = checksum(rsdp, 20);		/* over the ACPI 1.0 part */
	rsdp[32] = checksum(rsdp, 36);		/* over all of it */
	return 0;
}
