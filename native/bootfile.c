/* Kernel and initrd files of a Linux boot (bootfile.h). */
#include "bootfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define PAGE_MASK 0xfffull

int bootfile_open(const char *what, const char *path, uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int bootfile_read_at(int fd, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *p = dst;

	while (len) {
		ssize_t n = pread(fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int bootfile_load_initrd(struct guest_memory *mem, const char *path, uint64_t lowest,
			 uint64_t ceiling, uint64_t *addr, uint64_t *size, char *err, size_t errlen)
{
	uint64_t top = MIN(mem->slots[0].size, ceiling), at;
	int fd = bootfile_open("initrd", path, size, err, errlen);
	void *dst;

	if (fd < 0)
		return -1;
	at = *size < top ? (top - *size) & ~PAGE_MASK : 0;
	if (*size == 0 || at < ((lowest + PAGE_MASK) & ~PAGE_MASK)) {
		snprintf(err, errlen, "initrd %s: %s", path, *size == 0 ? "empty" :
			 "does not fit in guest RAM between the kernel and its highest allowed address "
			 "(give the VM more memory)");
		close(fd);
		return -1;
	}
	dst = memory_gpa_to_host(mem, at, *size);
	if (!dst || bootfile_read_at(fd, 0, dst, *size) < 0) {
		snprintf(err, errlen, "initrd %s: read: %s", path, strerror(errno ? errno : EIO));
		close(fd);
		return -1;
	}
	close(fd);
	*addr = at;
	return 0;
}
