/* The agent <-> helper control protocol (see PROTOCOL.md): framing, message types, flags,
 * error codes. Everything little-endian. */
#ifndef QVMM_PROTO_H
#define QVMM_PROTO_H

#include <stdint.h>

#define PROTO_VERSION     2	/* 2: HELLO carries the per-VM secret */
#define PROTO_HEADER_SIZE 12
#define PROTO_MAX_PAYLOAD ((1u << 20) + 4096)	/* 1 MiB of memory data plus its header (WRITE_PAGES:
						 * u32 n + 256 runs of 12 bytes fit in 4 KiB) */
#define PROTO_MAX_MEM_IO  (1u << 20)
#define PROTO_MOUSE_MAX_DELTA 4096	/* MOUSE: |dx|, |dy| at most (the widest screen) */
#define PROTO_MOUSE_MAX_WHEEL 127	/* MOUSE: |wheel| at most, in notches */
#define PROTO_MOUSE_BUTTONS   7		/* MOUSE: bit 0 left, 1 right, 2 middle */
#define PROTO_SECRET_HEX      64	/* HELLO "secret": 32 random bytes as lowercase hex */
#define PROTO_HELLO_MAX       256	/* HELLO payload bytes at most (read before authentication) */
#define PROTO_AUTH_TIMEOUT_MS 2000	/* a new connection has this long to send a valid HELLO */
#define PROTO_MAX_PENDING     4		/* connections waiting to authenticate at once */
#define PROTO_STATE_CHUNK     (1u << 20)	/* SAVE_STATE / LOAD_STATE: state bytes per message at most */
#define PROTO_STATE_HEADER    16	/* SAVE_STATE reply, LOAD_STATE request: u64, u64 before the bytes */
#define PROTO_RAM_MAP_MAX     65536	/* RAM_MAP: ranges per reply at most */
#define PROTO_STATE_FORMAT    1		/* the state blob's format version (vmstate.h) */
#define PROTO_STATE_MAX       (96u << 20)	/* LOAD_STATE: a blob's size at most */
#define PROTO_PAGE_SIZE       4096	/* RAM_DIRTY, READ_PAGES, WRITE_PAGES count 4 KiB pages */
#define PROTO_PAGES_MAX       256	/* READ_PAGES / WRITE_PAGES: pages per request at most (1 MiB) */
#define PROTO_PAGE_RUN_SIZE   12	/* READ_PAGES / WRITE_PAGES: one run is u64 gpa, u32 pages */

struct proto_header {
	uint32_t length;	/* payload bytes after the header */
	uint16_t type;
	uint16_t flags;
	uint32_t id;		/* request id (echoed in the reply) or event sequence number */
} __attribute__((packed));

/* flags */
#define PROTO_F_REPLY     0x0001
#define PROTO_F_ERROR     0x0002
#define PROTO_F_EVENT     0x0004
#define PROTO_F_TRUNCATED 0x0008	/* console event: bytes were lost before this one */

/* requests (client -> helper); the reply carries the same type */
enum {
	PROTO_HELLO = 1,
	PROTO_STATUS = 2,
	PROTO_START = 3,
	PROTO_PAUSE = 4,
	PROTO_RESUME = 5,
	PROTO_STOP = 6,
	PROTO_GET_REGS = 7,
	PROTO_SET_REGS = 8,
	PROTO_READ_MEM = 9,
	PROTO_WRITE_MEM = 10,
	PROTO_STATS = 11,
	PROTO_CONSOLE_WRITE = 12,
	PROTO_CONSOLE_READ = 13,
	PROTO_KEYBOARD = 14,
	PROTO_GUEST_COMMAND = 15,
	PROTO_DISPLAY_INFO = 16,
	PROTO_DIRTY = 17,
	PROTO_POINTER = 18,
	PROTO_MOUSE = 19,
	/* 20-29: VM state and snapshots (PROTOCOL.md "VM state"); 30-39 are live migration's */
	PROTO_SAVE_STATE = 20,		/* paused/created: the state blob, in chunks */
	PROTO_LOAD_STATE = 21,		/* created/paused: a state blob, in chunks; then paused there */
	PROTO_RAM_MAP = 22,		/* the guest RAM ranges that hold data (u64 gpa, u64 len) */
	PROTO_RAM_CHECKSUM = 23,	/* CRC-32 of all guest RAM */
	/* 30-39: live migration (PROTOCOL.md "Live migration") */
	PROTO_RAM_DIRTY_LOG = 30,	/* u32 1/0: KVM dirty-page logging of every RAM slot on/off */
	PROTO_RAM_DIRTY = 31,		/* fetch-and-clear the RAM slots' dirty bitmaps */
	PROTO_READ_PAGES = 32,		/* runs of whole pages, read in one reply */
	PROTO_WRITE_PAGES = 33,		/* runs of whole pages, written from one request */
};

/* events (helper -> client) */
enum {
	PROTO_EV_STATE = 0x100,
	PROTO_EV_CONSOLE = 0x101,
	PROTO_EV_RESET = 0x102,
	PROTO_EV_POWEROFF = 0x103,
	PROTO_EV_TRIPLE_FAULT = 0x104,
	PROTO_EV_INTERNAL_ERROR = 0x105,
	PROTO_EV_DEBUG = 0x106,
	PROTO_EV_REPLACED = 0x107,	/* another client with the secret took control; then closed */
};

/* error codes (error reply payload: {"code":N,"name":"...","message":"..."}) */
enum {
	PROTO_E_BAD_MESSAGE = 1,
	PROTO_E_UNKNOWN_TYPE = 2,
	PROTO_E_INVALID_ARGUMENT = 3,
	PROTO_E_WRONG_STATE = 4,
	PROTO_E_OUT_OF_RANGE = 5,
	PROTO_E_TOO_LARGE = 6,
	PROTO_E_NO_HELLO = 7,
	PROTO_E_VERSION = 8,
	PROTO_E_INTERNAL = 9,
	PROTO_E_TIMEOUT = 10,
	PROTO_E_AUTH = 11,	/* HELLO without the right secret: the connection is closed */
};

#endif
