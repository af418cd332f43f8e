/* Taking and applying a VM's whole non-RAM state through KVM (format: vmstate_format.c). The
 * vCPUs must be out of KVM_RUN (paused, or never started): every vCPU ioctl here runs on the
 * control thread. */
#include "vmstate.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "debugport.h"
#include "framebuffer.h"
#include "i8042.h"
#include "kvm.h"
#include "serial.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

#define MAX_MSR_LIST 4096

static struct vmstate_expect shape_of(struct vm *vm)
{
	return (struct vmstate_expect){
		.nr_vcpus = vm->nr_vcpus,
		.mem_size = vm->mem.size,
		.fb_width = vm->fb->width,
		.fb_height = vm->fb->height,
		.host = vm->vs_host,
	};
}

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->entries[0]));

	if (m)
		m->nmsrs = n;
	return m;
}

/* The MSR list, kept to those vCPU 0 reads and takes back (a read-only or absent MSR would fail
 * a restore half-way). */
static int find_msrs(struct vm *vm, struct vmstate_host *h, char *err, size_t errlen)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int vfd = vm->vcpus[0].fd;
	struct kvm_msrs *one = msrs_alloc(1);

	if (!one) {
		snprintf(err, errlen, "vmstate: out of memory");
		return -1;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		snprintf(err, errlen, "vmstate: KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		free(one);
		return -1;
	}
	if (probe.nmsrs > MAX_MSR_LIST)
		probe.nmsrs = MAX_MSR_LIST;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	h->msrs = calloc(probe.nmsrs ? probe.nmsrs : 1, sizeof(uint32_t));
	if (!list || !h->msrs) {
		free(list);
		free(one);
		snprintf(err, errlen, "vmstate: out of memory");
		return -1;
	}
	list->nmsrs = probe.nmsrs;
	if (probe.nmsrs && ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		snprintf(err, errlen, "vmstate: KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		free(list);
		free(one);
		return -1;
	}
	for (uint32_t i = 0; i < list->nmsrs; i++) {
		one->nmsrs = 1;
		one->entries[0] = (struct kvm_msr_entry){ .index = list->indices[i] };
		if (ioctl(vfd, KVM_GET_MSRS, one) != 1 || ioctl(vfd, KVM_SET_MSRS, one) != 1)
			continue;
		h->msrs[h->nr_msrs++] = list->indices[i];
	}
	free(list);
	free(one);
	return 0;
}

int vmstate_host_init(struct vm *vm, char *err, size_t errlen)
{
	struct vmstate_host *h = calloc(1, sizeof(*h));
	int vfd = vm->vcpus[0].fd;

	if (!h) {
		snprintf(err, errlen, "vmstate: out of memory");
		return -1;
	}
	vm->vs_host = h;
	if (vmstate_cpu_features(vm->kvm_fd, h->cpu) < 0) {
		snprintf(err, errlen, "vmstate: KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -1;
	}
	/* Each optional part counts only if vCPU 0 really answers it. */
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_XSAVE)) {
		int n = kvm_check_cap(vm->vm_fd, KVM_CAP_XSAVE2);
		struct kvm_xsave *x;
		h->xsave_size = n > (int)sizeof(struct kvm_xsave) ? (uint32_t)n : sizeof(struct kvm_xsave);
		x = calloc(1, h->xsave_size);
		if (x && ioctl(vfd, h->xsave_size > sizeof(*x) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x) == 0)
			h->flags |= VMSTATE_F_XSAVE;
		else
			h->xsave_size = 0;
		free(x);
	}
	if (!(h->flags & VMSTATE_F_XSAVE)) {
		struct kvm_fpu fpu;
		if (ioctl(vfd, KVM_GET_FPU, &fpu) < 0) {
			snprintf(err, errlen, "vmstate: neither KVM_GET_XSAVE nor KVM_GET_FPU works: %s",
				 strerror(errno));
			return -1;
		}
	}
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_XCRS)) {
		struct kvm_xcrs x;
		if (ioctl(vfd, KVM_GET_XCRS, &x) == 0)
			h->flags |= VMSTATE_F_XCRS;
	}
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_VCPU_EVENTS)) {
		struct kvm_vcpu_events e;
		if (ioctl(vfd, KVM_GET_VCPU_EVENTS, &e) == 0)
			h->flags |= VMSTATE_F_EVENTS;
	}
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_DEBUGREGS)) {
		struct kvm_debugregs d;
		if (ioctl(vfd, KVM_GET_DEBUGREGS, &d) == 0)
			h->flags |= VMSTATE_F_DEBUGREGS;
	}
	return find_msrs(vm, h, err, errlen);
}

void vmstate_host_free(struct vm *vm)
{
	if (vm->vs_host)
		free(vm->vs_host->msrs);
	free(vm->vs_host);
	vm->vs_host = NULL;
}

/* One KVM_GET_* into a section of `len` bytes. */
static int get_section(struct state_out *o, int fd, unsigned long req, const char *what,
		       uint16_t id, uint16_t inst, uint32_t len, char *err, size_t errlen)
{
	size_t at = vmstate_section_begin(o, id, inst);
	uint8_t *p = so_reserve(o, len);

	if (!p)
		return 0;		/* out of memory: the caller sees o->oom */
	memset(p, 0, len);
	if (ioctl(fd, req, p) < 0) {
		snprintf(err, errlen, "%s%s%u: %s", what, id <= VS_VCPU_LAST ? " of vcpu " : " ",
			 inst, strerror(errno));
		return -1;
	}
	o->len += len;
	vmstate_section_end(o, at);
	return 0;
}

static int save_msrs(struct vm *vm, struct vcpu *v, struct state_out *o, char *err, size_t errlen)
{
	const struct vmstate_host *h = vm->vs_host;
	struct kvm_msrs *m = msrs_alloc(h->nr_msrs);
	size_t at;
	int n;

	if (!m) {
		o->oom = 1;
		return 0;
	}
	for (uint32_t i = 0; i < h->nr_msrs; i++)
		m->entries[i].index = h->msrs[i];
	n = h->nr_msrs ? ioctl(v->fd, KVM_GET_MSRS, m) : 0;
	if (n != (int)h->nr_msrs) {
		snprintf(err, errlen, "KVM_GET_MSRS of vcpu %u: MSR 0x%x: %s", v->id,
			 n >= 0 && (uint32_t)n < h->nr_msrs ? h->msrs[n] : 0,
			 n < 0 ? strerror(errno) : "refused");
		free(m);
		return -1;
	}
	at = vmstate_section_begin(o, VS_MSRS, (uint16_t)v->id);
	so_u32(o, h->nr_msrs);
	for (uint32_t i = 0; i < h->nr_msrs; i++) {
		so_u32(o, m->entries[i].index);
		so_u64(o, m->entries[i].data);
	}
	vmstate_section_end(o, at);
	free(m);
	return 0;
}

static int save_vcpu(struct vm *vm, struct vcpu *v, struct state_out *o, unsigned *sections,
		     char *err, size_t errlen)
{
	const struct vmstate_host *h = vm->vs_host;
	uint16_t i = (uint16_t)v->id;
	int fd = v->fd;

#define GET(req, id, type) \
	do { \
		if (get_section(o, fd, req, #req, id, i, sizeof(type), err, errlen) < 0) \
			return -1; \
		(*sections)++; \
	} while (0)
	GET(KVM_GET_REGS, VS_REGS, struct kvm_regs);
	GET(KVM_GET_SREGS, VS_SREGS, struct kvm_sregs);
	if (h->flags & VMSTATE_F_XSAVE) {
		unsigned long req = h->xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
		if (get_section(o, fd, req, "KVM_GET_XSAVE", VS_XSAVE, i, h->xsave_size, err, errlen) < 0)
			return -1;
		(*sections)++;
	} else {
		GET(KVM_GET_FPU, VS_FPU, struct kvm_fpu);
	}
	if (h->flags & VMSTATE_F_XCRS)
		GET(KVM_GET_XCRS, VS_XCRS, struct kvm_xcrs);
	if (save_msrs(vm, v, o, err, errlen) < 0)
		return -1;
	(*sections)++;
	GET(KVM_GET_LAPIC, VS_LAPIC, struct kvm_lapic_state);
	if (h->flags & VMSTATE_F_EVENTS)
		GET(KVM_GET_VCPU_EVENTS, VS_EVENTS, struct kvm_vcpu_events);
	if (h->flags & VMSTATE_F_DEBUGREGS)
		GET(KVM_GET_DEBUGREGS, VS_DEBUGREGS, struct kvm_debugregs);
	GET(KVM_GET_MP_STATE, VS_MP_STATE, struct kvm_mp_state);
#undef GET
	return 0;
}

static int save_irqchip(struct vm *vm, struct state_out *o, unsigned chip, uint16_t id,
			size_t len, char *err, size_t errlen)
{
	struct kvm_irqchip c = { .chip_id = chip };

	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &c) < 0) {
		snprintf(err, errlen, "KVM_GET_IRQCHIP %u: %s", chip, strerror(errno));
		return -1;
	}
	vmstate_section(o, id, 0, &c.chip, (uint32_t)len);
	return 0;
}

int vmstate_save(struct vm *vm, struct state_out *o, char *err, size_t errlen)
{
	struct vmstate_expect shape = shape_of(vm);
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	unsigned sections = 0;
	size_t at;

	vmstate_begin(o, &shape);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (save_vcpu(vm, &vm->vcpus[i], o, &sections, err, errlen) < 0)
			return -1;
	if (save_irqchip(vm, o, KVM_IRQCHIP_PIC_MASTER, VS_PIC_MASTER, sizeof(struct kvm_pic_state),
			 err, errlen) < 0 ||
	    save_irqchip(vm, o, KVM_IRQCHIP_PIC_SLAVE, VS_PIC_SLAVE, sizeof(struct kvm_pic_state), err,
			 errlen) < 0 ||
	    save_irqchip(vm, o, KVM_IRQCHIP_IOAPIC, VS_IOAPIC, sizeof(struct kvm_ioapic_state), err,
			 errlen) < 0)
		return -1;
	memset(&pit, 0, sizeof(pit));
	memset(&clock, 0, sizeof(clock));
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
		snprintf(err, errlen, "KVM_GET_PIT2: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
		snprintf(err, errlen, "KVM_GET_CLOCK: %s", strerror(errno));
		return -1;
	}
	vmstate_section(o, VS_PIT, 0, &pit, sizeof(pit));
	vmstate_section(o, VS_CLOCK, 0, &clock, sizeof(clock));
	sections += 5;
	at = vmstate_section_begin(o, VS_SERIAL, 0);
	serial_save(vm->serial, o);
	vmstate_section_end(o, at);
	at = vmstate_section_begin(o, VS_I8042, 0);
	i8042_save(vm->kbd, o);
	vmstate_section_end(o, at);
	at = vmstate_section_begin(o, VS_DEBUGPORT, 0);
	debugport_save(vm->debug, o);
	vmstate_section_end(o, at);
	at = vmstate_section_begin(o, VS_FRAMEBUFFER, 0);
	framebuffer_save(vm->fb, o);
	vmstate_section_end(o, at);
	sections += 4;
	vmstate_finish(o, sections);
	if (o->oom) {
		snprintf(err, errlen, "out of memory for the VM state");
		return -1;
	}
	return 0;
}

/* Every device checks its own section before anything is applied. */
static int check_devices(struct vm *vm, const struct vmstate_index *idx, char *err, size_t errlen)
{
	const struct vmstate_ref *r = idx->once;

	return serial_load(vm->serial, r[VS_SERIAL].p, r[VS_SERIAL].len, 0, err, errlen) < 0 ||
	       i8042_load(vm->kbd, r[VS_I8042].p, r[VS_I8042].len, 0, err, errlen) < 0 ||
	       debugport_load(vm->debug, r[VS_DEBUGPORT].p, r[VS_DEBUGPORT].len, 0, err, errlen) < 0 ||
	       framebuffer_load(vm->fb, r[VS_FRAMEBUFFER].p, r[VS_FRAMEBUFFER].len, 0, err, errlen) < 0
		       ? -1 : 0;
}

static int set_irqchip(struct vm *vm, unsigned chip, const struct vmstate_ref *r, char *err,
		       size_t errlen)
{
	struct kvm_irqchip c = { .chip_id = chip };

	memcpy(&c.chip, r->p, r->len);
	if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c) < 0) {
		snprintf(err, errlen, "KVM_SET_IRQCHIP %u: %s", chip, strerror(errno));
		return -1;
	}
	return 0;
}

/* A fixed-size KVM_SET_* from a section (copied: the blob's bytes need not be aligned). */
static int set_part(int fd, unsigned long req, const char *what, const struct vmstate_ref *r,
		    size_t size, unsigned vcpu, char *err, size_t errlen)
{
	void *buf = calloc(1, size);
	int rc = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(buf, r->p, r->len < size ? r->len : size);
	if (req == KVM_SET_VCPU_EVENTS)	/* GET does not mark these, SET needs them to restore them */
		((struct kvm_vcpu_events *)buf)->flags |=
			KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if (ioctl(fd, req, buf) < 0) {
		snprintf(err, errlen, "%s of vcpu %u: %s", what, vcpu, strerror(errno));
		rc = -1;
	}
	free(buf);
	return rc;
}

static int load_msrs(struct vcpu *v, const struct vmstate_ref *r, char *err, size_t errlen)
{
	struct state_in in;
	struct kvm_msrs *m;
	uint32_t count;
	int n;

	si_init(&in, r->p, r->len);
	count = si_u32(&in);
	m = msrs_alloc(count);
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < count; i++) {
		m->entries[i].index = si_u32(&in);
		m->entries[i].data = si_u64(&in);
	}
	n = count ? ioctl(v->fd, KVM_SET_MSRS, m) : 0;
	if (n != (int)count) {
		snprintf(err, errlen, "KVM_SET_MSRS of vcpu %u: MSR 0x%x refused", v->id,
			 n >= 0 && (uint32_t)n < count ? m->entries[n].index : 0);
		free(m);
		return -1;
	}
	free(m);
	return 0;
}

static int load_vcpu(struct vm *vm, struct vcpu *v, const struct vmstate_ref *r, char *err,
		     size_t errlen)
{
	const struct vmstate_host *h = vm->vs_host;
	int fd = v->fd;
	unsigned i = v->id;

	/* sregs before the LAPIC (its base), the LAPIC before the MSRs (TSC deadline), events last. */
	if (set_part(fd, KVM_SET_SREGS, "KVM_SET_SREGS", &r[VS_SREGS], sizeof(struct kvm_sregs), i, err, errlen) < 0 ||
	    set_part(fd, KVM_SET_REGS, "KVM_SET_REGS", &r[VS_REGS], sizeof(struct kvm_regs), i, err, errlen) < 0)
		return -1;
	if (h->flags & VMSTATE_F_XSAVE) {
		if (set_part(fd, KVM_SET_XSAVE, "KVM_SET_XSAVE", &r[VS_XSAVE], h->xsave_size, i, err, errlen) < 0)
			return -1;
	} else if (set_part(fd, KVM_SET_FPU, "KVM_SET_FPU", &r[VS_FPU], sizeof(struct kvm_fpu), i, err, errlen) < 0) {
		return -1;
	}
	if ((h->flags & VMSTATE_F_XCRS) &&
	    set_part(fd, KVM_SET_XCRS, "KVM_SET_XCRS", &r[VS_XCRS], sizeof(struct kvm_xcrs), i, err, errlen) < 0)
		return -1;
	if (set_part(fd, KVM_SET_LAPIC, "KVM_SET_LAPIC", &r[VS_LAPIC], sizeof(struct kvm_lapic_state), i, err, errlen) < 0 ||
	    load_msrs(v, &r[VS_MSRS], err, errlen) < 0 ||
	    set_part(fd, KVM_SET_MP_STATE, "KVM_SET_MP_STATE", &r[VS_MP_STATE], sizeof(struct kvm_mp_state), i, err, errlen) < 0)
		return -1;
	if ((h->flags & VMSTATE_F_DEBUGREGS) &&
	    set_part(fd, KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &r[VS_DEBUGREGS], sizeof(struct kvm_debugregs), i, err, errlen) < 0)
		return -1;
	if ((h->flags & VMSTATE_F_EVENTS) &&
	    set_part(fd, KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &r[VS_EVENTS], sizeof(struct kvm_vcpu_events), i, err, errlen) < 0)
		return -1;
	return 0;
}

static int apply(struct vm *vm, const struct vmstate_index *idx, char *err, size_t errlen)
{
	const struct vmstate_ref *r = idx->once;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;

	/* Devices first: they set their interrupt lines to the saved levels, and the irqchip's saved
	 * registers, applied next, then replace whatever edges that made. */
	if (serial_load(vm->serial, r[VS_SERIAL].p, r[VS_SERIAL].len, 1, err, errlen) < 0 ||
	    i8042_load(vm->kbd, r[VS_I8042].p, r[VS_I8042].len, 1, err, errlen) < 0 ||
	    debugport_load(vm->debug, r[VS_DEBUGPORT].p, r[VS_DEBUGPORT].len, 1, err, errlen) < 0 ||
	    framebuffer_load(vm->fb, r[VS_FRAMEBUFFER].p, r[VS_FRAMEBUFFER].len, 1, err, errlen) < 0)
		return -1;
	if (set_irqchip(vm, KVM_IRQCHIP_PIC_MASTER, &r[VS_PIC_MASTER], err, errlen) < 0 ||
	    set_irqchip(vm, KVM_IRQCHIP_PIC_SLAVE, &r[VS_PIC_SLAVE], err, errlen) < 0 ||
	    set_irqchip(vm, KVM_IRQCHIP_IOAPIC, &r[VS_IOAPIC], err, errlen) < 0)
		return -1;
	memcpy(&pit, r[VS_PIT].p, sizeof(pit));
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
		snprintf(err, errlen, "KVM_SET_PIT2: %s", strerror(errno));
		return -1;
	}
	memcpy(&clock, r[VS_CLOCK].p, sizeof(clock));
	clock.flags = 0;	/* the saved value as it is: a snapshot's guest saw no time pass */
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
		snprintf(err, errlen, "KVM_SET_CLOCK: %s", strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (load_vcpu(vm, &vm->vcpus[i], &idx->vcpu[i * (VS_VCPU_LAST + 1)], err, errlen) < 0)
			return -1;
	return 0;
}

int vmstate_load(struct vm *vm, const uint8_t *blob, size_t len, char *err, size_t errlen)
{
	struct vmstate_expect want = shape_of(vm);
	struct vmstate_index idx;
	int rc;

	if (vmstate_check(&want, blob, len, &idx, err, errlen) < 0)
		return -1;
	if (check_devices(vm, &idx, err, errlen) < 0) {
		vmstate_index_free(&idx);
		return -1;
	}
	rc = apply(vm, &idx, err, errlen) < 0 ? -2 : 0;
	vmstate_index_free(&idx);
	if (rc == 0)
		log_info("VM state loaded: %zu bytes, %u sections", len, idx.hdr.nr_sections);
	return rc;
}
