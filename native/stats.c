/* Statistics as JSON (the STATS reply). */
#include "stats.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debugport.h"
#include "framebuffer.h"
#include "i8042.h"
#include "serial.h"
#include "vcpu.h"

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Appends {"name":value,...} of the single-valued stats behind a binary stats fd. */
static void kvm_stats(int fd, struct sbuf *sb)
{
	struct kvm_stats_header h;
	size_t desc_size;
	uint8_t *descs = NULL;
	int first = 1;

	sb_printf(sb, "{");
	if (fd < 0 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.num_desc > 4096 ||
	    h.name_size > 256)
		goto out;
	desc_size = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(desc_size * h.num_desc);
	if (!descs || pread(fd, descs, desc_size * h.num_desc, h.desc_offset) !=
			      (ssize_t)(desc_size * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * desc_size);
		uint32_t type = d->flags & KVM_STATS_TYPE_MASK;
		uint64_t v;

		if (d->size != 1 || (type != KVM_STATS_TYPE_CUMULATIVE &&
				     type != KVM_STATS_TYPE_INSTANT && type != KVM_STATS_TYPE_PEAK))
			continue;
		if (pread(fd, &v, sizeof(v), h.data_offset + d->offset) != sizeof(v))
			continue;
		d->name[h.name_size - 1] = 0;
		sb_printf(sb, "%s", first ? "" : ",");
		sb_json_str(sb, d->name);
		sb_printf(sb, ":%llu", (unsigned long long)v);
		first = 0;
	}
out:
	free(descs);
	sb_printf(sb, "}");
}

void stats_json(struct vm *vm, struct sbuf *sb)
{
	sb_printf(sb, "{\"binaryStats\":%s,\"vm\":", vm->stats_fd >= 0 ? "true" : "false");
	kvm_stats(vm->stats_fd, sb);
	sb_printf(sb, ",\"vcpus\":[");
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		sb_printf(sb, "%s{\"id\":%u,\"exits\":{\"total\":%llu,\"io\":%llu,\"mmio\":%llu,"
			  "\"hlt\":%llu,\"intr\":%llu,\"shutdown\":%llu,\"other\":%llu},\"kvm\":",
			  i ? "," : "", i, (unsigned long long)LOAD(v->count.total),
			  (unsigned long long)LOAD(v->count.io), (unsigned long long)LOAD(v->count.mmio),
			  (unsigned long long)LOAD(v->count.hlt), (unsigned long long)LOAD(v->count.intr),
			  (unsigned long long)LOAD(v->count.shutdown),
			  (unsigned long long)LOAD(v->count.other));
		kvm_stats(v->stats_fd, sb);
		sb_printf(sb, "}");
	}
	sb_printf(sb, "],\"devices\":{\"serial\":{\"txBytes\":%llu,\"rxBytes\":%llu,"
		  "\"rxDropped\":%llu,\"irqs\":%llu,\"reads\":%llu,\"writes\":%llu},",
		  (unsigned long long)LOAD(vm->serial->count.tx_bytes),
		  (unsigned long long)LOAD(vm->serial->count.rx_bytes),
		  (unsigned long long)LOAD(vm->serial->count.rx_dropped),
		  (unsigned long long)LOAD(vm->serial->count.irqs),
		  (unsigned long long)LOAD(vm->serial->count.reads),
		  (unsigned long long)LOAD(vm->serial->count.writes));
	sb_printf(sb, "\"i8042\":{\"scancodesIn\":%llu,\"scancodesDropped\":%llu,\"irqs\":%llu,"
		  "\"commands\":%llu,\"resets\":%llu},",
		  (unsigned long long)LOAD(vm->kbd->count.scancodes_in),
		  (unsigned long long)LOAD(vm->kbd->count.scancodes_dropped),
		  (unsigned long long)LOAD(vm->kbd->count.irqs),
		  (unsigned long long)LOAD(vm->kbd->count.commands),
		  (unsigned long long)LOAD(vm->kbd->count.resets));
	sb_printf(sb, "\"debug\":{\"results\":%llu,\"bench\":%llu,\"commandsIn\":%llu,"
		  "\"commandsOut\":%llu,\"power\":%llu},\"framebuffer\":{\"dirtyCalls\":%llu,"
		  "\"dirtyPages\":%llu,\"pointerUpdates\":%llu,\"pointerDoorbells\":%llu,"
		  "\"regReads\":%llu},\"pio\":{\"unhandled\":%llu},"
		  "\"mmio\":{\"unhandled\":%llu}}}",
		  (unsigned long long)LOAD(vm->debug->count.results),
		  (unsigned long long)LOAD(vm->debug->count.bench),
		  (unsigned long long)LOAD(vm->debug->count.commands_in),
		  (unsigned long long)LOAD(vm->debug->count.commands_out),
		  (unsigned long long)LOAD(vm->debug->count.power),
		  (unsigned long long)LOAD(vm->fb->count.dirty_calls),
		  (unsigned long long)LOAD(vm->fb->count.dirty_pages),
		  (unsigned long long)LOAD(vm->fb->count.pointer_updates),
		  (unsigned long long)LOAD(vm->fb->count.pointer_doorbells),
		  (unsigned long long)LOAD(vm->fb->count.reg_reads),
		  (unsigned long long)LOAD(vm->pio.unhandled), (unsigned long long)LOAD(vm->mmio.unhandled));
}
