/* The little a device needs from the machine around it, so that it can be built, driven and
 * tested without a VM: an interrupt line it raises and lowers, and a way to stop the guest.
 * The VM wires these to KVM_IRQ_LINE and to its life cycle (vm.c); unit tests to recorders. */
#ifndef QVMM_DEVICE_H
#define QVMM_DEVICE_H

struct irq_line {
	void (*set)(void *opaque, unsigned irq, int level);
	void *opaque;
	unsigned irq;
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
	line->set(line->opaque, line->irq, level);
}

/* Stops the guest for good (power-off, reset line): the VM goes STOPPED with `reason`. */
struct stop_hook {
	void (*stop)(void *opaque, const char *reason);
	void *opaque;
};

static inline void stop_hook_call(const struct stop_hook *hook, const char *reason)
{
	hook->stop(hook->opaque, reason);
}

#endif
