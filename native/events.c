/* Event queue between vCPU threads and the control thread. */
#include "events.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct events {
	pthread_mutex_t lock;
	struct event *head, *tail;
	unsigned count;
	int fd;
	int armed;			/* a wake-up is already pending in the eventfd */
};

struct events *events_create(void)
{
	struct events *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->fd < 0) {
		free(ev);
		return NULL;
	}
	pthread_mutex_init(&ev->lock, NULL);
	return ev;
}

void events_destroy(struct events *ev)
{
	if (!ev)
		return;
	events_free(ev->head);
	close(ev->fd);
	free(ev);
}

int events_fd(struct events *ev)
{
	return ev->fd;
}

static void wake(struct events *ev)
{
	uint64_t one = 1;

	if (!__atomic_exchange_n(&ev->armed, 1, __ATOMIC_ACQ_REL))
		(void)!write(ev->fd, &one, sizeof(one));
}

void events_push(struct events *ev, uint16_t type, const char *json)
{
	struct event *e = calloc(1, sizeof(*e));

	if (!e)
		return;
	e->type = type;
	e->json = strdup(json);
	if (!e->json) {
		free(e);
		return;
	}
	pthread_mutex_lock(&ev->lock);
	if (ev->count >= EVENTS_MAX_QUEUED) {
		struct event *old = ev->head;
		ev->head = old->next;
		old->next = NULL;
		events_free(old);
		ev->count--;
		if (!ev->head)
			ev->tail = NULL;
	}
	if (ev->tail)
		ev->tail->next = e;
	else
		ev->head = e;
	ev->tail = e;
	ev->count++;
	pthread_mutex_unlock(&ev->lock);
	wake(ev);
}

void events_notify(struct events *ev)
{
	wake(ev);
}

struct event *events_take(struct events *ev)
{
	struct event *list;
	uint64_t v;

	(void)!read(ev->fd, &v, sizeof(v));
	__atomic_store_n(&ev->armed, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&ev->lock);
	list = ev->head;
	ev->head = ev->tail = NULL;
	ev->count = 0;
	pthread_mutex_unlock(&ev->lock);
	return list;
}

void events_free(struct event *list)
{
	while (list) {
		struct event *next = list->next;
		free(list->json);
		free(list);
		list = next;
	}
}
