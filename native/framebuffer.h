/* Framebuffer device: a linear 32-bit BGRX framebuffer in its own KVM memory slot at a fixed
 * guest-physical address, backed by a file in the runtime directory (the agent reads rows from
 * it), with KVM dirty-page logging on that slot; a small port block (0x510-0x52f, guest-abi.h)
 * tells the guest the geometry and the pointer position the agent last sent. */
#ifndef QVMM_FRAMEBUFFER_H
#define QVMM_FRAMEBUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "guest-abi.h"
#include "vm.h"

#define FB_SLOT        2		/* KVM memory slot (RAM uses 0 and 1) */
#define FB_MIN_WIDTH   64
#define FB_MAX_WIDTH   4096
#define FB_MIN_HEIGHT  64
#define FB_MAX_HEIGHT  2160
#define FB_DEFAULT_WIDTH  1024
#define FB_DEFAULT_HEIGHT 768

struct fb_counters {
	uint64_t dirty_calls, dirty_pages, pointer_updates, pointer_doorbells, reg_reads;
};

struct framebuffer {
	struct vm *vm;
	pthread_mutex_t lock;		/* guards the pointer state */
	uint32_t width, height, stride;
	uint64_t size;			/* stride * height rounded up to 4 KiB */
	uint32_t pages;
	uint64_t gpa;
	int fd;
	uint8_t *host;
	char path[4096];
	int unlink_on_exit;
	uint64_t *bitmap;		/* KVM_GET_DIRTY_LOG buffer, ceil(pages/64) words */
	uint32_t ptr_x, ptr_y, ptr_buttons, ptr_seq;
	int ptr_pending;		/* a POINTER command sits in the mailbox, not yet read */
	struct fb_counters count;
};

/* Creates the backing file (<runtime-dir>/framebuffer, or a memfd without a runtime dir),
 * maps it, registers the slot with dirty logging and the register ports. */
struct framebuffer *framebuffer_init(struct vm *vm, char *err, size_t errlen);
/* Unmaps and closes; removes the file. */
void framebuffer_teardown(struct framebuffer *fb);
/* Fetches and clears the dirty bitmap (KVM_GET_DIRTY_LOG); returns fb->bitmap or NULL. */
const uint64_t *framebuffer_dirty(struct framebuffer *fb, char *err, size_t errlen);
/* Stores a new pointer state and rings the guest's doorbell (QG_CMD_POINTER, coalesced). */
void framebuffer_pointer(struct framebuffer *fb, uint32_t x, uint32_t y, uint32_t buttons);

#endif
