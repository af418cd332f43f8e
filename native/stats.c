/* Statistics as JSON (the STATS reply): KVM's binary stats read here; every other counter is
 * rendered by its owner (vCPU, device, bus), this file only puts them together. */
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
		sb_printf(sb, "%s{\"id\":%u,\"exits\":", i ? "," : "", i);
		vcpu_exits_json(&vm->vcpus[i], sb);
		sb_printf(sb, ",\"kvm\":");
		kvm_stats(vm->vcpus[i].stats_fd, sb);
		sb_printf(sb, "}");
	}
	sb_printf(sb, "],\"devices\":{\"serial\":");
	serial_stats_json(vm->serial, sb);
	sb_printf(sb, ",\"i8042\":");
	i8042_stats_json(vm->kbd, sb);
	sb_printf(sb, ",\"mouse\":");
	ps2mouse_stats_json(vm->kbd->mouse, sb);
	sb_printf(sb, ",\"debug\":");
	debugport_stats_json(vm->debug, sb);
	sb_printf(sb, ",\"framebuffer\":");
	framebuffer_stats_json(vm->fb, sb);
	sb_printf(sb, ",\"migration\":");
	migration_stats_json(&vm->migration, sb);
	sb_printf(sb, ",\"pio\":");
	iobus_stats_json(&vm->pio, sb);
	sb_printf(sb, ",\"mmio\":");
	iobus_stats_json(&vm->mmio, sb);
	sb_printf(sb, "}}");
}
