/* Framebuffer device: backing file, KVM slot with dirty logging, geometry/pointer registers. */
#include "framebuffer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define PAGE 4096ull

static uint32_t reg_value(struct framebuffer *fb, uint64_t reg)
{
	switch (reg) {
	case QG_FB_WIDTH - QG_FB_BASE: return fb->width;
	case QG_FB_HEIGHT - QG_FB_BASE: return fb->height;
	case QG_FB_STRIDE - QG_FB_BASE: return fb->stride;
	case QG_FB_ADDR - QG_FB_BASE: return (uint32_t)fb->gpa;
	case QG_PTR_X - QG_FB_BASE: return fb->ptr_x;
	case QG_PTR_Y - QG_FB_BASE: return fb->ptr_y;
	case QG_PTR_BUTTONS - QG_FB_BASE: return fb->ptr_buttons;
	case QG_PTR_SEQ - QG_FB_BASE:
		fb->ptr_pending = 0;	/* a new POINTER now needs a new doorbell */
		return fb->ptr_seq;
	default: return 0;
	}
}

/* Registers are 32-bit at 4-byte aligned offsets; narrower reads see the low bytes of the
 * register the offset falls in, writes are ignored. */
static void fb_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct framebuffer *fb = opaque;
	uint32_t v;

	if (is_write)
		return;
	pthread_mutex_lock(&fb->lock);
	fb->count.reg_reads++;
	v = reg_value(fb, offset & ~3ull) >> (8 * (offset & 3));
	pthread_mutex_unlock(&fb->lock);
	for (unsigned i = 0; i < len; i++)
		data[i] = (uint8_t)(i < 4 ? v >> (8 * i) : 0);
}

static int open_backing(struct framebuffer *fb, const char *dir, char *err, size_t errlen)
{
	if (dir) {
		if ((size_t)snprintf(fb->path, sizeof(fb->path), "%s/framebuffer", dir) >= sizeof(fb->path)) {
			snprintf(err, errlen, "framebuffer: runtime dir path too long for the file");
			return -1;
		}
		fb->fd = open(fb->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fb->fd >= 0) {
			char abs[PATH_MAX];
			fb->unlink_on_exit = 1;
			if (realpath(fb->path, abs) && strlen(abs) < sizeof(fb->path))
				strcpy(fb->path, abs);	/* DISPLAY_INFO gives an absolute path */
		}
	} else {
		/* No runtime dir (manual runs): a memfd, readable by the owner through /proc. */
		fb->fd = memfd_create("qumra-framebuffer", MFD_CLOEXEC);
		snprintf(fb->path, sizeof(fb->path), "/proc/%d/fd/%d", (int)getpid(), fb->fd);
	}
	if (fb->fd < 0 || ftruncate(fb->fd, (off_t)fb->size) < 0) {
		snprintf(err, errlen, "framebuffer: file %s of %llu bytes: %s", dir ? fb->path : "(memfd)",
			 (unsigned long long)fb->size, strerror(errno));
		return -1;
	}
	return 0;
}

struct framebuffer *framebuffer_init(int vm_fd, uint32_t width, uint32_t height,
				     const char *runtime_dir, struct iobus *pio,
				     struct debugport *doorbell, char *err, size_t errlen)
{
	struct framebuffer *fb = calloc(1, sizeof(*fb));
	struct kvm_userspace_memory_region region;
	char why[160];

	if (!fb) {
		snprintf(err, errlen, "framebuffer: out of memory");
		return NULL;
	}
	fb->vm_fd = vm_fd;
	fb->doorbell = doorbell;
	fb->fd = -1;
	pthread_mutex_init(&fb->lock, NULL);
	fb->width = width;
	fb->height = height;
	fb->stride = fb->width * 4;
	fb->size = ((uint64_t)fb->stride * fb->height + PAGE - 1) & ~(PAGE - 1);
	fb->pages = (uint32_t)(fb->size / PAGE);
	fb->gpa = QG_FB_GPA;
	fb->ptr_x = fb->width / 2;
	fb->ptr_y = fb->height / 2;
	fb->bitmap = calloc((fb->pages + 63) / 64, sizeof(uint64_t));
	if (!fb->bitmap) {
		snprintf(err, errlen, "framebuffer: out of memory for the dirty bitmap");
		goto fail;
	}
	if (open_backing(fb, runtime_dir, err, errlen) < 0)
		goto fail;
	fb->host = mmap(NULL, fb->size, PROT_READ | PROT_WRITE, MAP_SHARED, fb->fd, 0);
	if (fb->host == MAP_FAILED) {
		fb->host = NULL;
		snprintf(err, errlen, "framebuffer: mmap: %s", strerror(errno));
		goto fail;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = FB_SLOT,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = fb->gpa,
		.memory_size = fb->size,
		.userspace_addr = (uint64_t)(uintptr_t)fb->host,
	};
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		snprintf(err, errlen, "framebuffer: KVM_SET_USER_MEMORY_REGION slot %d: %s", FB_SLOT,
			 strerror(errno));
		goto fail;
	}
	if (iobus_register(pio, QG_FB_BASE, QG_FB_LEN, fb_io, fb, "framebuffer", why,
			   sizeof(why)) < 0) {
		snprintf(err, errlen, "framebuffer: ports: %s", why);
		goto fail;
	}
	fb->bus = pio;
	log_info("framebuffer %ux%u BGRX at 0x%llx (%u pages), file %s", fb->width, fb->height,
		 (unsigned long long)fb->gpa, fb->pages, fb->path);
	return fb;
fail:
	framebuffer_teardown(fb);
	return NULL;
}

void framebuffer_teardown(struct framebuffer *fb)
{
	if (!fb)
		return;
	if (fb->bus)
		iobus_unregister(fb->bus, fb);
	if (fb->host)
		munmap(fb->host, fb->size);
	if (fb->fd >= 0)
		close(fb->fd);
	if (fb->unlink_on_exit)
		unlink(fb->path);
	free(fb->bitmap);
	pthread_mutex_destroy(&fb->lock);
	free(fb);
}

const uint64_t *framebuffer_dirty(struct framebuffer *fb, char *err, size_t errlen)
{
	struct kvm_dirty_log log = { .slot = FB_SLOT, .dirty_bitmap = fb->bitmap };
	uint64_t n = 0;

	memset(fb->bitmap, 0, ((fb->pages + 63) / 64) * sizeof(uint64_t));
	if (ioctl(fb->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		snprintf(err, errlen, "KVM_GET_DIRTY_LOG: %s", strerror(errno));
		return NULL;
	}
	for (uint32_t i = 0; i < (fb->pages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(fb->bitmap[i]);
	__atomic_fetch_add(&fb->count.dirty_calls, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&fb->count.dirty_pages, n, __ATOMIC_RELAXED);
	return fb->bitmap;
}

void framebuffer_pointer(struct framebuffer *fb, uint32_t x, uint32_t y, uint32_t buttons)
{
	int ring;

	pthread_mutex_lock(&fb->lock);
	fb->ptr_x = MIN(x, fb->width - 1);
	fb->ptr_y = MIN(y, fb->height - 1);
	fb->ptr_buttons = buttons;
	fb->ptr_seq++;
	fb->count.pointer_updates++;
	ring = !fb->ptr_pending;
	fb->ptr_pending = 1;
	pthread_mutex_unlock(&fb->lock);
	if (!ring)
		return;		/* the guest has not read the last one yet: it will see this too */
	if (debugport_command(fb->doorbell, QG_CMD_POINTER) < 0) {
		pthread_mutex_lock(&fb->lock);
		fb->ptr_pending = 0;	/* mailbox full: ring again next time */
		pthread_mutex_unlock(&fb->lock);
		return;
	}
	__atomic_fetch_add(&fb->count.pointer_doorbells, 1, __ATOMIC_RELAXED);
}

void framebuffer_stats_json(struct framebuffer *fb, struct sbuf *sb)
{
	sb_printf(sb, "{\"dirtyCalls\":%llu,\"dirtyPages\":%llu,\"pointerUpdates\":%llu,"
		  "\"pointerDoorbells\":%llu,\"regReads\":%llu}",
		  (unsigned long long)LOAD_RELAXED(fb->count.dirty_calls),
		  (unsigned long long)LOAD_RELAXED(fb->count.dirty_pages),
		  (unsigned long long)LOAD_RELAXED(fb->count.pointer_updates),
		  (unsigned long long)LOAD_RELAXED(fb->count.pointer_doorbells),
		  (unsigned long long)LOAD_RELAXED(fb->count.reg_reads));
}

/* Saved state, version 1: u32 version; u32 width, height, stride (must equal this
 * framebuffer's); u32 ptr_x, ptr_y, ptr_buttons, ptr_seq; u8 ptr_pending; u64 size, then the
 * `size` bytes of the framebuffer (its pixels, in its own memory slot, not guest RAM). */
#define FB_STATE_VERSION 1

void framebuffer_save(struct framebuffer *fb, struct state_out *o)
{
	uint8_t *px;

	pthread_mutex_lock(&fb->lock);
	so_u32(o, FB_STATE_VERSION);
	so_u32(o, fb->width);
	so_u32(o, fb->height);
	so_u32(o, fb->stride);
	so_u32(o, fb->ptr_x);
	so_u32(o, fb->ptr_y);
	so_u32(o, fb->ptr_buttons);
	so_u32(o, fb->ptr_seq);
	so_u8(o, (uint8_t)fb->ptr_pending);
	pthread_mutex_unlock(&fb->lock);
	so_u64(o, fb->size);
	px = so_reserve(o, fb->size);
	if (px) {
		memcpy(px, fb->host, fb->size);
		o->len += fb->size;
	}
}

int framebuffer_load(struct framebuffer *fb, const uint8_t *p, size_t len, int commit, char *err,
		     size_t errlen)
{
	struct state_in in;
	uint32_t v[8];
	uint8_t pending;
	uint64_t size;
	const uint8_t *px;

	si_init(&in, p, len);
	for (int i = 0; i < 8; i++)
		v[i] = si_u32(&in);
	pending = si_u8(&in);
	size = si_u64(&in);
	px = si_bytes(&in, size == fb->size ? size : 0);
	if (!in.bad && v[0] != FB_STATE_VERSION) {
		snprintf(err, errlen, "framebuffer: state version %u, this helper reads %d", v[0],
			 FB_STATE_VERSION);
		return -1;
	}
	if (!in.bad && (v[1] != fb->width || v[2] != fb->height || v[3] != fb->stride ||
			size != fb->size)) {
		snprintf(err, errlen, "framebuffer: saved at %ux%u (stride %u), this VM's is %ux%u "
			 "(stride %u)", v[1], v[2], v[3], fb->width, fb->height, fb->stride);
		return -1;
	}
	if (in.bad || v[4] >= fb->width || v[5] >= fb->height || pending > 1 ||
	    !si_done(&in)) {
		snprintf(err, errlen, "framebuffer: malformed state (%zu bytes)", len);
		return -1;
	}
	if (!commit)
		return 0;
	pthread_mutex_lock(&fb->lock);
	fb->ptr_x = v[4];
	fb->ptr_y = v[5];
	fb->ptr_buttons = v[6];
	fb->ptr_seq = v[7];
	fb->ptr_pending = pending;
	pthread_mutex_unlock(&fb->lock);
	memcpy(fb->host, px, size);
	return 0;
}
