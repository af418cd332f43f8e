/* Framebuffer device: a linear 32-bit BGRX framebuffer in its own KVM memory slot at a fixed
 * guest-physical address, backed by a file in the runtime directory (the agent reads rows from
 * it), with KVM dirty-page logging on that slot; a small port block (0x510-0x52f, guest-abi.h)
 * tells the guest the geometry and the pointer position the agent last sent. */
#ifndef QVMM_FRAMEBUFFER_H
#define QVMM_FRAMEBUFFER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "debugport.h"
#include "guest-abi.h"
#include "iobus.h"
#include "json.h"
#include "statebuf.h"

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
	int vm_fd;			/* the VM its slot belongs to */
	struct iobus *bus;		/* where its register ports are registered */
	struct debugport *doorbell;	/* rung for POINTER */
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

/* Creates the backing file (<runtime_dir>/framebuffer, or a memfd without a runtime dir),
 * maps it, registers the slot with dirty logging on vm_fd and the register ports on pio.
 * NULL with err ("framebuffer: ...") on failure. */
struct framebuffer *framebuffer_init(int vm_fd, uint32_t width, uint32_t height,
				     const char *runtime_dir, struct iobus *pio,
				     struct debugport *doorbell, char *err, size_t errlen);
/* Releases its ports, unmaps and closes; removes the file. NULL is fine. The KVM slot goes
 * with the VM. */
void framebuffer_teardown(struct framebuffer *fb);
/* Fetches and clears the dirty bitmap (KVM_GET_DIRTY_LOG); returns fb->bitmap or NULL. */
const uint64_t *framebuffer_dirty(struct framebuffer *fb, char *err, size_t errlen);
/* Stores a new pointer state and rings the guest's doorbell (QG_CMD_POINTER, coalesced). */
void framebuffer_pointer(struct framebuffer *fb, uint32_t x, uint32_t y, uint32_t buttons);
/* Appends its counters: {"dirtyCalls":N,"dirtyPages":N,"pointerUpdates":N,
 * "pointerDoorbells":N,"regReads":N}. */
void framebuffer_stats_json(struct framebuffer *fb, struct sbuf *sb);

/* Saved state (vmstate.c, PROTOCOL.md "VM state"): framebuffer_save appends the device's state;
 * framebuffer_load checks a saved state (commit 0: nothing changes) or checks and applies it
 * (commit 1): geometry (which must equal this one's), pointer and pixels. -1 with err on a bad state. */
void framebuffer_save(struct framebuffer *fb, struct state_out *o);
int framebuffer_load(struct framebuffer *fb, const uint8_t *p, size_t len, int commit, char *err, size_t errlen);

#endif
