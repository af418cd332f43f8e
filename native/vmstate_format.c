/* The VM state blob's format: writing its header and sections, and checking a blob against what
 * a VM expects before anything is applied. No KVM calls here (the fuzzer runs it anywhere). */
#include "vmstate.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "le.h"

#define HDR_CRC_AT   92		/* the header CRC covers bytes [0, 92) */
#define MAX_MSRS     4096

static const char *const cpu_word_names[VMSTATE_CPU_WORDS] = {
	"CPUID.01H:ECX", "CPUID.01H:EDX", "CPUID.07H:EBX", "CPUID.07H:ECX", "CPUID.07H:EDX",
	"CPUID.80000001H:ECX", "CPUID.80000001H:EDX", "CPUID.0DH:EAX (XCR0)",
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int vmstate_cpu_features(int kvm_fd, uint32_t out[VMSTATE_CPU_WORDS])
{
	int nent = 256;
	struct kvm_cpuid2 *c;

	memset(out, 0, VMSTATE_CPU_WORDS * sizeof(out[0]));
	for (;;) {
		c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));
		if (!c)
			return -1;
		c->nent = (uint32_t)nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return -1;
		nent *= 2;
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1) {
			out[0] = e->ecx & ~(1u << 27);	/* OSXSAVE mirrors the guest's CR4 */
			out[1] = e->edx;
		} else if (e->function == 7 && e->index == 0) {
			out[2] = e->ebx;
			out[3] = e->ecx & ~(1u << 4);	/* OSPKE mirrors the guest's CR4 */
			out[4] = e->edx;
		} else if (e->function == 0x80000001) {
			out[5] = e->ecx;
			out[6] = e->edx;
		} else if (e->function == 0xd && e->index == 0) {
			out[7] = e->eax;
		}
	}
	free(c);
	return 0;
}

void vmstate_begin(struct state_out *o, const struct vmstate_expect *shape)
{
	uint8_t *h = so_reserve(o, VMSTATE_HEADER_SIZE);

	if (!h)
		return;
	memset(h, 0, VMSTATE_HEADER_SIZE);
	memcpy(h, VMSTATE_MAGIC, 8);
	le_put32(h + 8, VMSTATE_VERSION);
	le_put32(h + 12, VMSTATE_HEADER_SIZE);
	le_put32(h + 16, shape->nr_vcpus);
	le_put64(h + 24, shape->mem_size);
	le_put32(h + 32, shape->fb_width);
	le_put32(h + 36, shape->fb_height);
	for (int i = 0; i < VMSTATE_CPU_WORDS; i++)
		le_put32(h + 40 + 4 * i, shape->host->cpu[i]);
	le_put32(h + 72, shape->host->xsave_size);
	le_put32(h + 76, shape->host->flags);
	o->len += VMSTATE_HEADER_SIZE;
}

size_t vmstate_section_begin(struct state_out *o, uint16_t id, uint16_t instance)
{
	size_t at = o->len;
	uint8_t *h = so_reserve(o, VMSTATE_SECTION_HDR);

	if (h) {
		memset(h, 0, VMSTATE_SECTION_HDR);
		h[0] = (uint8_t)id;
		h[1] = (uint8_t)(id >> 8);
		h[2] = (uint8_t)instance;
		h[3] = (uint8_t)(instance >> 8);
		o->len += VMSTATE_SECTION_HDR;
	}
	return at;
}

void vmstate_section_end(struct state_out *o, size_t at)
{
	size_t n;

	if (o->oom)
		return;
	n = o->len - at - VMSTATE_SECTION_HDR;
	if (n > UINT32_MAX) {
		o->oom = 1;
		return;
	}
	le_put32(o->data + at + 4, (uint32_t)n);
	le_put32(o->data + at + 8, crc32_update(0, o->data + at + VMSTATE_SECTION_HDR, n));
}

void vmstate_section(struct state_out *o, uint16_t id, uint16_t instance, const void *p,
		     uint32_t len)
{
	size_t at = vmstate_section_begin(o, id, instance);

	so_bytes(o, p, len);
	vmstate_section_end(o, at);
}

void vmstate_finish(struct state_out *o, uint32_t nr_sections)
{
	if (o->oom || o->len < VMSTATE_HEADER_SIZE)
		return;
	le_put32(o->data + 20, nr_sections);
	le_put64(o->data + 80, o->len);
	le_put32(o->data + HDR_CRC_AT, crc32_update(0, o->data, HDR_CRC_AT));
}

int vmstate_parse_header(const uint8_t *b, size_t len, struct vmstate_header *h, char *err,
			 size_t errlen)
{
	memset(h, 0, sizeof(*h));
	if (len < VMSTATE_HEADER_SIZE)
		return fail(err, errlen, "state is %zu bytes, shorter than its %d-byte header (truncated)",
			    len, VMSTATE_HEADER_SIZE);
	if (memcmp(b, VMSTATE_MAGIC, 8) != 0)
		return fail(err, errlen, "not a qumra VM state (bad magic)");
	h->version = le_get32(b + 8);
	if (h->version != VMSTATE_VERSION)
		return fail(err, errlen, "state format version %u, this helper reads version %d",
			    h->version, VMSTATE_VERSION);
	if (le_get32(b + HDR_CRC_AT) != crc32_update(0, b, HDR_CRC_AT))
		return fail(err, errlen, "state header checksum mismatch (corrupt)");
	h->header_size = le_get32(b + 12);
	h->nr_vcpus = le_get32(b + 16);
	h->nr_sections = le_get32(b + 20);
	h->mem_size = le_get64(b + 24);
	h->fb_width = le_get32(b + 32);
	h->fb_height = le_get32(b + 36);
	for (int i = 0; i < VMSTATE_CPU_WORDS; i++)
		h->cpu[i] = le_get32(b + 40 + 4 * i);
	h->xsave_size = le_get32(b + 72);
	h->flags = le_get32(b + 76);
	h->total = le_get64(b + 80);
	if (h->header_size != VMSTATE_HEADER_SIZE)
		return fail(err, errlen, "state header of %u bytes, expected %d", h->header_size,
			    VMSTATE_HEADER_SIZE);
	if (h->total != len)
		return fail(err, errlen, "state is %zu bytes but its header says %llu (%s)", len,
			    (unsigned long long)h->total, len < h->total ? "truncated" : "trailing bytes");
	return 0;
}

/* The exact length a section must have, or 0 for one checked elsewhere (MSRs, devices). */
static uint32_t fixed_len(unsigned id, const struct vmstate_header *h)
{
	switch (id) {
	case VS_REGS: return sizeof(struct kvm_regs);
	case VS_SREGS: return sizeof(struct kvm_sregs);
	case VS_FPU: return sizeof(struct kvm_fpu);
	case VS_XSAVE: return h->xsave_size;
	case VS_XCRS: return sizeof(struct kvm_xcrs);
	case VS_LAPIC: return sizeof(struct kvm_lapic_state);
	case VS_EVENTS: return sizeof(struct kvm_vcpu_events);
	case VS_DEBUGREGS: return sizeof(struct kvm_debugregs);
	case VS_MP_STATE: return sizeof(struct kvm_mp_state);
	case VS_PIC_MASTER:
	case VS_PIC_SLAVE: return sizeof(struct kvm_pic_state);
	case VS_IOAPIC: return sizeof(struct kvm_ioapic_state);
	case VS_PIT: return sizeof(struct kvm_pit_state2);
	case VS_CLOCK: return sizeof(struct kvm_clock_data);
	default: return 0;
	}
}

static const char *section_name(unsigned id)
{
	static const char *const names[VS_ID_LIMIT] = {
		[VS_REGS] = "regs", [VS_SREGS] = "sregs", [VS_FPU] = "fpu", [VS_XSAVE] = "xsave",
		[VS_XCRS] = "xcrs", [VS_MSRS] = "msrs", [VS_LAPIC] = "lapic", [VS_EVENTS] = "events",
		[VS_DEBUGREGS] = "debugregs", [VS_MP_STATE] = "mp-state",
		[VS_PIC_MASTER] = "pic-master", [VS_PIC_SLAVE] = "pic-slave", [VS_IOAPIC] = "ioapic",
		[VS_PIT] = "pit", [VS_CLOCK] = "clock", [VS_SERIAL] = "serial", [VS_I8042] = "i8042",
		[VS_DEBUGPORT] = "debugport", [VS_FRAMEBUFFER] = "framebuffer",
	};
	return id < VS_ID_LIMIT && names[id] ? names[id] : NULL;
}

/* Whether a vCPU section id is one this host's VMs have (and so a blob must hold). */
static int vcpu_required(unsigned id, uint32_t flags)
{
	switch (id) {
	case VS_REGS: case VS_SREGS: case VS_MSRS: case VS_LAPIC: case VS_MP_STATE: return 1;
	case VS_FPU: return !(flags & VMSTATE_F_XSAVE);
	case VS_XSAVE: return !!(flags & VMSTATE_F_XSAVE);
	case VS_XCRS: return !!(flags & VMSTATE_F_XCRS);
	case VS_EVENTS: return !!(flags & VMSTATE_F_EVENTS);
	case VS_DEBUGREGS: return !!(flags & VMSTATE_F_DEBUGREGS);
	default: return 0;
	}
}

static int once_required(unsigned id)
{
	return id > VS_VCPU_LAST && section_name(id) != NULL;
}

static int msr_known(const struct vmstate_host *host, uint32_t index)
{
	for (uint32_t i = 0; i < host->nr_msrs; i++)
		if (host->msrs[i] == index)
			return 1;
	return 0;
}

static int check_msrs(const struct vmstate_host *host, const struct vmstate_ref *r, unsigned vcpu,
		      char *err, size_t errlen)
{
	uint32_t count;

	if (r->len < 4)
		return fail(err, errlen, "vcpu %u msrs section too short", vcpu);
	count = le_get32(r->p);
	if (count > MAX_MSRS || r->len != 4 + 12ull * count)
		return fail(err, errlen, "vcpu %u msrs section: %u MSRs in %u bytes", vcpu, count,
			    r->len);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t index = le_get32(r->p + 4 + 12 * i);
		if (!msr_known(host, index))
			return fail(err, errlen, "vcpu %u: MSR 0x%x is not one this host's KVM saves "
				    "and restores", vcpu, index);
	}
	return 0;
}

static int check_shape(const struct vmstate_expect *want, const struct vmstate_header *h,
		       char *err, size_t errlen)
{
	const struct vmstate_host *host = want->host;

	if (h->nr_vcpus != want->nr_vcpus)
		return fail(err, errlen, "state has %u vCPUs, this VM %u", h->nr_vcpus, want->nr_vcpus);
	if (h->mem_size != want->mem_size)
		return fail(err, errlen, "state is of a VM with %llu bytes of memory, this VM has %llu",
			    (unsigned long long)h->mem_size, (unsigned long long)want->mem_size);
	if (h->fb_width != want->fb_width || h->fb_height != want->fb_height)
		return fail(err, errlen, "state has a %ux%u framebuffer, this VM %ux%u", h->fb_width,
			    h->fb_height, want->fb_width, want->fb_height);
	for (int i = 0; i < VMSTATE_CPU_WORDS; i++) {
		uint32_t missing = h->cpu[i] & ~host->cpu[i];
		if (missing)
			return fail(err, errlen, "the saved VM used CPU features this host lacks: %s "
				    "bits 0x%08x", cpu_word_names[i], missing);
	}
	if ((h->flags & ~0xfu) || (h->flags != host->flags))
		return fail(err, errlen, "state's vCPU parts (flags 0x%x) differ from this host's "
			    "(0x%x: xcrs, events, debugregs, xsave)", h->flags, host->flags);
	if ((h->flags & VMSTATE_F_XSAVE) &&
	    (h->xsave_size < sizeof(struct kvm_xsave) || h->xsave_size > host->xsave_size ||
	     (h->xsave_size & 3)))
		return fail(err, errlen, "state's XSAVE area is %u bytes, this host's %u", h->xsave_size,
			    host->xsave_size);
	if (!(h->flags & VMSTATE_F_XSAVE) && h->xsave_size)
		return fail(err, errlen, "state has an XSAVE size without XSAVE");
	return 0;
}

static int check_blob(const struct vmstate_expect *want, const uint8_t *b, size_t len,
		      struct vmstate_index *idx, char *err, size_t errlen)
{
	const unsigned per = VS_VCPU_LAST + 1;
	struct vmstate_header *h = &idx->hdr;
	size_t off = VMSTATE_HEADER_SIZE;

	memset(idx, 0, sizeof(*idx));
	if (vmstate_parse_header(b, len, h, err, errlen) < 0 || check_shape(want, h, err, errlen) < 0)
		return -1;
	idx->vcpu = calloc((size_t)h->nr_vcpus * per, sizeof(*idx->vcpu));
	if (!idx->vcpu && h->nr_vcpus)
		return fail(err, errlen, "out of memory");
	for (uint32_t n = 0; n < h->nr_sections; n++) {
		unsigned id, inst;
		uint32_t slen;
		struct vmstate_ref *r;

		if (len - off < VMSTATE_SECTION_HDR)
			return fail(err, errlen, "section %u of %u: header past the end (truncated)", n,
				    h->nr_sections);
		id = b[off] | (unsigned)b[off + 1] << 8;
		inst = b[off + 2] | (unsigned)b[off + 3] << 8;
		slen = le_get32(b + off + 4);
		if (slen > len - off - VMSTATE_SECTION_HDR)
			return fail(err, errlen, "section %u (%s): %u bytes past the end (truncated)", n,
				    section_name(id) ? section_name(id) : "?", slen);
		if (!section_name(id))
			return fail(err, errlen, "section %u: unknown id %u", n, id);
		if (id <= VS_VCPU_LAST ? inst >= h->nr_vcpus : inst != 0)
			return fail(err, errlen, "section %s: instance %u out of range", section_name(id),
				    inst);
		r = id <= VS_VCPU_LAST ? &idx->vcpu[inst * per + id] : &idx->once[id];
		if (r->p)
			return fail(err, errlen, "section %s (instance %u) appears twice",
				    section_name(id), inst);
		if (le_get32(b + off + 8) != crc32_update(0, b + off + VMSTATE_SECTION_HDR, slen))
			return fail(err, errlen, "section %s (instance %u): checksum mismatch (corrupt)",
				    section_name(id), inst);
		r->p = b + off + VMSTATE_SECTION_HDR;
		r->len = slen;
		off += VMSTATE_SECTION_HDR + slen;
	}
	if (off != len)
		return fail(err, errlen, "%zu bytes after the last section", len - off);
	for (uint32_t v = 0; v < h->nr_vcpus; v++)
		for (unsigned id = 1; id < per; id++) {
			struct vmstate_ref *r = &idx->vcpu[v * per + id];
			uint32_t want_len = fixed_len(id, h);
			if (vcpu_required(id, h->flags) != (r->p != NULL))
				return fail(err, errlen, "vcpu %u: section %s %s", v,
					    section_name(id) ? section_name(id) : "?",
					    r->p ? "not expected on this host" : "missing");
			if (r->p && want_len && r->len != want_len)
				return fail(err, errlen, "vcpu %u: section %s is %u bytes, expected %u", v,
					    section_name(id), r->len, want_len);
			if (r->p && id == VS_MSRS && check_msrs(want->host, r, v, err, errlen) < 0)
				return -1;
		}
	for (unsigned id = VS_VCPU_LAST + 1; id < VS_ID_LIMIT; id++) {
		struct vmstate_ref *r = &idx->once[id];
		uint32_t want_len = fixed_len(id, h);
		if (once_required(id) && !r->p)
			return fail(err, errlen, "section %s missing", section_name(id));
		if (r->p && want_len && r->len != want_len)
			return fail(err, errlen, "section %s is %u bytes, expected %u", section_name(id),
				    r->len, want_len);
	}
	return 0;
}

int vmstate_check(const struct vmstate_expect *want, const uint8_t *b, size_t len,
		  struct vmstate_index *idx, char *err, size_t errlen)
{
	if (check_blob(want, b, len, idx, err, errlen) == 0)
		return 0;
	vmstate_index_free(idx);
	return -1;
}

void vmstate_index_free(struct vmstate_index *idx)
{
	free(idx->vcpu);
	idx->vcpu = NULL;
}
