/* Asynchronous events from vCPU threads and devices to the control thread: a bounded queue
 * of small JSON payloads plus an eventfd that wakes the control loop. Console bytes are not
 * queued here: they live in the serial ring and only ring the bell (events_notify). */
#ifndef QVMM_EVENTS_H
#define QVMM_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EVENTS_MAX_QUEUED 1024

struct event {
	uint16_t type;			/* PROTO_EV_* */
	char *json;			/* payload, NUL-terminated */
	struct event *next;
};

struct events;

struct events *events_create(void);
void events_destroy(struct events *ev);
int events_fd(struct events *ev);
/* Queues a JSON event (copied); drops the oldest beyond EVENTS_MAX_QUEUED. Thread-safe. */
void events_push(struct events *ev, uint16_t type, const char *json);
/* Wakes the control loop without queuing anything (new console output). Cheap when repeated. */
void events_notify(struct events *ev);
/* Clears the wake-up; returns the queued events as a list (caller frees with events_free). */
struct event *events_take(struct events *ev);
void events_free(struct event *list);

#endif
