/* Small shared helpers: logging to stderr (the helper's log file), time, errors. */
#ifndef QVMM_UTIL_H
#define QVMM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
/* Reads a counter another thread may be bumping (stats replies need no exact snapshot). */
#define LOAD_RELAXED(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...)  log_msg("info", __VA_ARGS__)
#define log_warn(...)  log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);

/* Writes the whole buffer (retrying on EINTR/short writes); returns 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);

/* Parses an unsigned integer with optional 0x prefix and K/M/G suffix; returns 0 or -1. */
int parse_u64(const char *s, uint64_t *out);

#endif
