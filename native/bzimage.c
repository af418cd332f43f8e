/* A bzImage through the Linux x86 boot protocol (layout in bzimage.h). Offsets are those of
 * struct boot_params and its setup header in the protocol's documentation. */
#include "bzimage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bootfile.h"
#include "le.h"
#include "pvh.h"
#include "util.h"

/* struct boot_params */
#define BP_SCREEN_INFO     0x000
#define BP_ACPI_RSDP_ADDR  0x070
#define BP_E820_ENTRIES    0x1e8
#define BP_SETUP_HEADER    0x1f1
#define BP_E820_TABLE      0x2d0
#define BP_E820_MAX        128
#define BP_SIZE            0x1000

/* the setup header, at its offset in both the file and boot_params */
#define HDR_SETUP_SECTS     0x1f1
#define HDR_BOOT_FLAG       0x1fe
#define HDR_JUMP_END        0x201	/* the header runs to 0x202 + this byte */
#define HDR_MAGIC           0x202
#define HDR_VERSION         0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS       0x211
#define HDR_CODE32_START    0x214
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_RELOCATABLE     0x234
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260
#define HDR_MIN_VERSION     0x020c	/* 2.12: xloadflags, 64-bit entry */

#define LOADED_HIGH     0x01		/* loadflags: the kernel is at 1 MiB or above */
#define XLF_KERNEL_64   0x01		/* xloadflags: the 64-bit entry at +0x200 exists */
#define LOADER_UNKNOWN  0xff

/* struct screen_info (at BP_SCREEN_INFO) */
#define SI_ISVGA        0x0f
#define SI_LFB_WIDTH    0x12
#define SI_LFB_HEIGHT   0x14
#define SI_LFB_DEPTH    0x16
#define SI_LFB_BASE     0x18
#define SI_LFB_SIZE     0x1c
#define SI_LFB_LINELEN  0x24
#define SI_RED_SIZE     0x26		/* then red_pos, green_size, green_pos, blue_…, rsvd_… */
#define SI_PAGES        0x32
#define SI_CAPABILITIES 0x36
#define VIDEO_TYPE_EFI  0x70
#define VIDEO_CAPABILITY_SKIP_QUIRKS 0x1

int bzimage_detect(const char *path)
{
	char err[64];
	uint64_t size;
	uint8_t magic[4];
	int fd = bootfile_open("kernel", path, &size, err, sizeof(err)), is;

	if (fd < 0)
		return 0;
	is = bootfile_read_at(fd, HDR_MAGIC, magic, 4) == 0 && !memcmp(magic, "HdrS", 4);
	close(fd);
	return is;
}

/* The framebuffer as an EFI GOP-style linear framebuffer, 32 bpp x8r8g8b8. */
static void screen_info(uint8_t *si, const struct framebuffer *fb)
{
	static const uint8_t rgbx[8] = { 8, 16, 8, 8, 8, 0, 8, 24 };	/* size, position each */

	si[SI_ISVGA] = VIDEO_TYPE_EFI;
	le_put16(si + SI_LFB_WIDTH, (uint16_t)fb->width);
	le_put16(si + SI_LFB_HEIGHT, (uint16_t)fb->height);
	le_put16(si + SI_LFB_DEPTH, 32);
	le_put32(si + SI_LFB_BASE, (uint32_t)fb->gpa);
	le_put32(si + SI_LFB_SIZE, (uint32_t)fb->size);
	le_put16(si + SI_LFB_LINELEN, (uint16_t)fb->stride);
	memcpy(si + SI_RED_SIZE, rgbx, sizeof(rgbx));
	le_put16(si + SI_PAGES, 1);
	le_put32(si + SI_CAPABILITIES, VIDEO_CAPABILITY_SKIP_QUIRKS);
}

_Static_assert(PVH_MEMMAP_MAX <= BP_E820_MAX, "the memory map fits the zero page's e820 table");

/* The e820 map of pvh_memmap in the zero page's 20-byte entries. */
static void e820_table(struct guest_memory *mem, uint8_t *bp)
{
	struct pvh_memmap_entry map[PVH_MEMMAP_MAX];
	unsigned n = pvh_memmap(mem, map);

	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = bp + BP_E820_TABLE + i * 20;
		le_put64(e, map[i].addr);
		le_put64(e + 8, map[i].size);
		le_put32(e + 16, map[i].type);
	}
	bp[BP_E820_ENTRIES] = (uint8_t)n;
}

int bzimage_load(struct guest_memory *mem, const char *kernel, const char *initrd,
		 const char *cmdline, const struct framebuffer *fb, uint64_t rsdp, uint64_t *entry,
		 char *err, size_t errlen)
{
	uint8_t *bp = memory_gpa_to_host(mem, BZ_BOOT_PARAMS_ADDR, BP_SIZE);
	char *cl = memory_gpa_to_host(mem, BZ_CMDLINE_ADDR, BZ_CMDLINE_MAX);
	uint8_t hdr[BP_E820_TABLE];
	size_t cl_len = cmdline ? strlen(cmdline) : 0;
	uint64_t size, setup_size, code_size, load, init_size, ceiling, initrd_addr = 0, initrd_size = 0;
	unsigned setup_sects, hdr_end;
	uint16_t version;
	uint8_t *dst;
	int fd;

	if (!bp || !cl) {
		snprintf(err, errlen, "guest RAM too small for the boot protocol's zero page");
		return -1;
	}
	fd = bootfile_open("kernel", kernel, &size, err, errlen);
	if (fd < 0)
		return -1;
	memset(hdr, 0, sizeof(hdr));
	if (size < sizeof(hdr) || bootfile_read_at(fd, 0, hdr, sizeof(hdr)) < 0 ||
	    memcmp(hdr + HDR_MAGIC, "HdrS", 4) || le_get16(hdr + HDR_BOOT_FLAG) != 0xaa55) {
		snprintf(err, errlen, "kernel %s: no Linux boot protocol header (not a bzImage)", kernel);
		goto fail;
	}
	version = le_get16(hdr + HDR_VERSION);
	if (version < HDR_MIN_VERSION || !(le_get16(hdr + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		snprintf(err, errlen, "kernel %s: boot protocol %u.%02u without a 64-bit entry: "
			 "qumra boots x86-64 kernels of protocol 2.12 and later", kernel,
			 version >> 8, version & 0xff);
		goto fail;
	}
	setup_sects = hdr[HDR_SETUP_SECTS] ? hdr[HDR_SETUP_SECTS] : 4;
	setup_size = (setup_sects + 1ull) * 512;
	hdr_end = 0x202u + hdr[HDR_JUMP_END];
	init_size = le_get32(hdr + HDR_INIT_SIZE);
	if (setup_size >= size || hdr_end > sizeof(hdr) || hdr_end <= HDR_INIT_SIZE + 4) {
		snprintf(err, errlen, "kernel %s: malformed setup header", kernel);
		goto fail;
	}
	code_size = size - setup_size;
	load = hdr[HDR_RELOCATABLE] ? le_get64(hdr + HDR_PREF_ADDRESS) : le_get32(hdr + HDR_CODE32_START);
	init_size = MAX(init_size, code_size);
	dst = load >= MEM_MIN_SIZE ? memory_gpa_to_host(mem, load, init_size) : NULL;
	if (!dst) {
		snprintf(err, errlen, "kernel %s: needs 0x%llx bytes at 0x%llx: give the VM more memory",
			 kernel, (unsigned long long)init_size, (unsigned long long)load);
		goto fail;
	}
	if (bootfile_read_at(fd, setup_size, dst, code_size) < 0) {
		snprintf(err, errlen, "kernel %s: read: %s", kernel, strerror(errno ? errno : EIO));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (cl_len >= MIN(BZ_CMDLINE_MAX, le_get32(hdr + HDR_CMDLINE_SIZE) + 1ull)) {
		snprintf(err, errlen, "kernel command line of %zu bytes: at most %llu", cl_len,
			 (unsigned long long)MIN(BZ_CMDLINE_MAX - 1, le_get32(hdr + HDR_CMDLINE_SIZE)));
		return -1;
	}
	ceiling = MIN((uint64_t)le_get32(hdr + HDR_INITRD_ADDR_MAX) + 1, MEM_HOLE_START);
	if (initrd && bootfile_load_initrd(mem, initrd, load + init_size, ceiling, &initrd_addr,
					   &initrd_size, err, errlen) < 0)
		return -1;

	memset(bp, 0, BP_SIZE);
	memcpy(bp + BP_SETUP_HEADER, hdr + BP_SETUP_HEADER, hdr_end - BP_SETUP_HEADER);
	bp[HDR_TYPE_OF_LOADER] = LOADER_UNKNOWN;
	bp[HDR_LOADFLAGS] |= LOADED_HIGH;
	le_put32(bp + HDR_CODE32_START, (uint32_t)load);
	le_put32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
	le_put32(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_size);
	le_put32(bp + HDR_CMD_LINE_PTR, (uint32_t)BZ_CMDLINE_ADDR);
	le_put64(bp + BP_ACPI_RSDP_ADDR, rsdp);
	e820_table(mem, bp);
	if (fb)
		screen_info(bp + BP_SCREEN_INFO, fb);
	memcpy(cl, cmdline ? cmdline : "", cl_len + 1);
	*entry = load + BZ_ENTRY64_OFFSET;
	log_info("bzImage: kernel %s protocol %u.%02u at 0x%llx (init_size 0x%llx), entry 0x%llx; "
		 "initrd %s at 0x%llx (%llu bytes); framebuffer %s", kernel, version >> 8,
		 version & 0xff, (unsigned long long)load, (unsigned long long)init_size,
		 (unsigned long long)*entry, initrd ? initrd : "none", (unsigned long long)initrd_addr,
		 (unsigned long long)initrd_size, fb ? "as an EFI framebuffer" : "none");
	return 0;
fail:
	close(fd);
	return -1;
}
