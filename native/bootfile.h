/* The files a Linux boot loads (pvh.c, bzimage.c): opening a regular file, reading at an offset,
 * and placing the initrd at the top of low RAM. */
#ifndef QVMM_BOOTFILE_H
#define QVMM_BOOTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

/* Opens path (a regular file) read-only; *size gets its size. -1 with err ("WHAT PATH: why"). */
int bootfile_open(const char *what, const char *path, uint64_t *size, char *err, size_t errlen);

/* Reads exactly len bytes at off; 0, or -1 on error or end of file. */
int bootfile_read_at(int fd, uint64_t off, void *dst, uint64_t len);

/* Reads the initrd at path into guest RAM, page-aligned, ending as high as possible below
 * ceiling (and inside the first RAM slot) and starting at or above lowest. *addr and *size get
 * where it went. -1 with err if it is empty, unreadable or does not fit. */
int bootfile_load_initrd(struct guest_memory *mem, const char *path, uint64_t lowest,
			 uint64_t ceiling, uint64_t *addr, uint64_t *size, char *err, size_t errlen);

#endif
