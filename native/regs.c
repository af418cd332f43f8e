/* Register access for the control protocol: a name table over kvm_regs and kvm_sregs, so
 * reading and writing share one definition and every name and range is checked. */
#include "regs.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "regs-list.h"
#include "util.h"

struct reg_desc {
	const char *name;
	uint8_t in_sregs;
	uint8_t size;		/* bytes */
	uint16_t offset;
	uint64_t max;
};

/* One table entry per register of regs-list.h, in its order (GET_REGS prints them so). */
#define GENERAL(n) { #n, 0, 8, offsetof(struct kvm_regs, n), UINT64_MAX },
#define CONTROL(n) { #n, 1, 8, offsetof(struct kvm_sregs, n), UINT64_MAX },
#define SEGMENT_FIELD(seg, f, sz, mx) \
	{ #seg "." #f, 1, sz, offsetof(struct kvm_sregs, seg) + offsetof(struct kvm_segment, f), mx },
#define SEGMENT(seg) REGS_SEGMENT_FIELDS(SEGMENT_FIELD, seg)
#define DTABLE_FIELD(t, f, sz, mx) \
	{ #t "." #f, 1, sz, offsetof(struct kvm_sregs, t) + offsetof(struct kvm_dtable, f), mx },
#define DTABLE(t) REGS_DTABLE_FIELDS(DTABLE_FIELD, t)

static const struct reg_desc reg_table[] = {
	REGS_GENERAL(GENERAL)
	REGS_CONTROL(CONTROL)
	REGS_SEGMENTS(SEGMENT)
	REGS_DTABLES(DTABLE)
};

struct regs_pair {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	char *err;
	size_t errlen;
	int sregs_dirty;
};

static uint64_t load(const void *base, const struct reg_desc *d)
{
	const uint8_t *p = (const uint8_t *)base + d->offset;
	uint64_t v = 0;

	memcpy(&v, p, d->size);		/* little-endian host */
	return v;
}

static void store(void *base, const struct reg_desc *d, uint64_t v)
{
	memcpy((uint8_t *)base + d->offset, &v, d->size);
}

static int get_pair(int fd, struct regs_pair *p, char *err, size_t errlen)
{
	if (ioctl(fd, KVM_GET_REGS, &p->regs) < 0 || ioctl(fd, KVM_GET_SREGS, &p->sregs) < 0) {
		snprintf(err, errlen, "reading registers: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int regs_get_json(int vcpu_fd, unsigned vcpu, struct sbuf *sb, char *err, size_t errlen)
{
	struct regs_pair p;

	if (get_pair(vcpu_fd, &p, err, errlen) < 0)
		return -1;
	sb_printf(sb, "{\"vcpu\":%u", vcpu);
	for (size_t i = 0; i < ARRAY_SIZE(reg_table); i++) {
		const struct reg_desc *d = &reg_table[i];
		sb_printf(sb, ",\"%s\":\"0x%llx\"", d->name,
			  (unsigned long long)load(d->in_sregs ? (void *)&p.sregs : (void *)&p.regs, d));
	}
	sb_printf(sb, "}");
	return 0;
}

static int parse_value(const char *v, uint64_t *out)
{
	char *end;

	if (!*v || *v == '-' || *v == '+' || *v == ' ')
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 0);
	return errno || *end ? -1 : 0;
}

static int set_member(void *opaque, const char *key, const char *value, int is_string)
{
	struct regs_pair *p = opaque;
	uint64_t v;

	if (!strcmp(key, "vcpu"))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(reg_table); i++) {
		const struct reg_desc *d = &reg_table[i];
		if (strcmp(d->name, key))
			continue;
		if (parse_value(value, &v) < 0 || (!is_string && strncmp(value, "0x", 2) == 0)) {
			snprintf(p->err, p->errlen, "register %s: bad value \"%s\"", key, value);
			return -2;
		}
		if (v > d->max) {
			snprintf(p->err, p->errlen, "register %s: 0x%llx out of range (max 0x%llx)", key,
				 (unsigned long long)v, (unsigned long long)d->max);
			return -2;
		}
		store(d->in_sregs ? (void *)&p->sregs : (void *)&p->regs, d, v);
		p->sregs_dirty |= d->in_sregs;
		return 0;
	}
	snprintf(p->err, p->errlen, "unknown register \"%s\"", key);
	return -2;
}

int regs_set_json(int vcpu_fd, const char *json, size_t len, char *err, size_t errlen)
{
	struct regs_pair p;
	int r;

	if (get_pair(vcpu_fd, &p, err, errlen) < 0)
		return -1;
	p.err = err;
	p.errlen = errlen;
	p.sregs_dirty = 0;
	err[0] = 0;
	r = json_flat_each(json, len, set_member, &p);
	if (r == -1)
		snprintf(err, errlen, "SET_REGS payload must be a flat JSON object");
	if (r)
		return -1;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &p.regs) < 0 ||
	    (p.sregs_dirty && ioctl(vcpu_fd, KVM_SET_SREGS, &p.sregs) < 0)) {
		snprintf(err, errlen, "KVM rejected the registers: %s", strerror(errno));
		return -1;
	}
	return 0;
}
