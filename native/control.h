/* The control socket: one unix socket per VM; one controlling client at a time. A new connection
 * replaces it only once it authenticated with the VM's secret (so a restarted agent re-attaches
 * and a stray connection changes nothing); requests, replies and events per PROTOCOL.md. */
#ifndef QVMM_CONTROL_H
#define QVMM_CONTROL_H

#include <stddef.h>

#include "auth.h"
#include "vm.h"

/* Helper exit statuses (also in PROTOCOL.md). */
#define EXIT_CLEAN      0	/* stopped: the guest acknowledged power-off, or was not running */
#define EXIT_SETUP      1	/* bad arguments, KVM unusable, image refused: message in the log */
#define EXIT_USAGE      2
#define EXIT_FORCED     3	/* stopped by force (guest did not acknowledge, paused, or SIGTERM) */
#define EXIT_CRASHED    4	/* stopped while the VM was CRASHED (triple fault, internal error) */
#define EXIT_INTERNAL   5	/* the helper itself failed */

/* Binds the socket; -1 with err. */
int control_listen(const char *path, char *err, size_t errlen);
/* Serves until a STOP request (or SIGTERM/SIGINT) completes; returns the exit status. */
int control_run(struct vm *vm, int listen_fd, const struct auth_secret *secret);

#endif
