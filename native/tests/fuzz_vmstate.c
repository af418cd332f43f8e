/* The VM state blob's checks (vmstate_check) and the devices' loaders, fed a valid blob built here
 * without KVM and then every truncation of it, every single-byte change of it, blobs of another shape
 * or host, and seeded random mutations (bounded; argv: iterations, seed), under ASan/UBSan. A blob
 * that passes must be one no byte of which was changed; a refused one must say why. */
#include <linux/kvm.h>
#include <stdlib.h>

#include "check.h"
#include "debugport.h"
#include "fuzz.h"
#include "i8042.h"
#include "machine.h"
#include "serial.h"
#include "vmstate.h"

static uint32_t host_msrs[] = { 0x10, 0x174, 0xc0000080 };

static struct vmstate_host host = {
	.cpu = { 0x7ffafbff, 0xbfebfbff, 0x029c67af, 0x40000000, 0xbc000400, 0x121, 0x2c100800, 0x7 },
	.flags = VMSTATE_F_XSAVE | VMSTATE_F_XCRS | VMSTATE_F_EVENTS | VMSTATE_F_DEBUGREGS,
	.xsave_size = 4096,
	.nr_msrs = 3,
	.msrs = host_msrs,
};

static const struct vmstate_expect shape = { .nr_vcpus = 2, .mem_size = 32u << 20, .fb_width = 64, .fb_height = 64, .host = &host };

struct devices {
	struct iobus bus;
	struct irq_recorder irq;
	struct stop_recorder stop;
	struct events *events;
	struct serial *s;
	struct i8042 *k;
	struct debugport *d;
};

static void devices_up(struct devices *dv)
{
	char err[256];

	memset(dv, 0, sizeof(*dv));
	dv->events = events_create();
	dv->s = serial_init(&dv->bus, recorded_irq(&dv->irq, 4), dv->events, err, sizeof(err));
	dv->k = i8042_init(&dv->bus, recorded_irq(&dv->irq, 1), recorded_irq(&dv->irq, 12), dv->events,
			   recorded_stop(&dv->stop), err, sizeof(err));
	dv->d = debugport_init(&dv->bus, recorded_irq(&dv->irq, 5), dv->events, recorded_stop(&dv->stop), err,
			       sizeof(err));
	if (!dv->events || !dv->s || !dv->k || !dv->d) {
		fprintf(stderr, "devices: %s\n", err);
		exit(2);
	}
}

static void devices_down(struct devices *dv)
{
	debugport_teardown(dv->d);
	i8042_teardown(dv->k);
	serial_teardown(dv->s);
	events_destroy(dv->events);
}

static void random_section(struct state_out *o, struct rng *r, uint16_t id, uint16_t inst, size_t len)
{
	size_t at = vmstate_section_begin(o, id, inst);
	for (size_t i = 0; i < len; i++)
		so_u8(o, (uint8_t)rng_next(r));
	vmstate_section_end(o, at);
}

/* A blob of `shape`, with the sections a host like `host` writes. */
static void build_blob(struct state_out *o, struct devices *dv, struct rng *r)
{
	unsigned sections = 0;
	size_t at;

	so_init(o);
	vmstate_begin(o, &shape);
	for (uint16_t v = 0; v < shape.nr_vcpus; v++) {
		random_section(o, r, VS_REGS, v, sizeof(struct kvm_regs));
		random_section(o, r, VS_SREGS, v, sizeof(struct kvm_sregs));
		random_section(o, r, VS_XSAVE, v, host.xsave_size);
		random_section(o, r, VS_XCRS, v, sizeof(struct kvm_xcrs));
		at = vmstate_section_begin(o, VS_MSRS, v);
		so_u32(o, 2);
		so_u32(o, 0x10);
		so_u64(o, rng_next(r));
		so_u32(o, 0xc0000080);
		so_u64(o, 0x500);
		vmstate_section_end(o, at);
		random_section(o, r, VS_LAPIC, v, sizeof(struct kvm_lapic_state));
		random_section(o, r, VS_EVENTS, v, sizeof(struct kvm_vcpu_events));
		random_section(o, r, VS_DEBUGREGS, v, sizeof(struct kvm_debugregs));
		random_section(o, r, VS_MP_STATE, v, sizeof(struct kvm_mp_state));
		sections += 9;
	}
	random_section(o, r, VS_PIC_MASTER, 0, sizeof(struct kvm_pic_state));
	random_section(o, r, VS_PIC_SLAVE, 0, sizeof(struct kvm_pic_state));
	random_section(o, r, VS_IOAPIC, 0, sizeof(struct kvm_ioapic_state));
	random_section(o, r, VS_PIT, 0, sizeof(struct kvm_pit_state2));
	random_section(o, r, VS_CLOCK, 0, sizeof(struct kvm_clock_data));
	at = vmstate_section_begin(o, VS_SERIAL, 0);
	serial_save(dv->s, o);
	vmstate_section_end(o, at);
	at = vmstate_section_begin(o, VS_I8042, 0);
	i8042_save(dv->k, o);
	vmstate_section_end(o, at);
	at = vmstate_section_begin(o, VS_DEBUGPORT, 0);
	debugport_save(dv->d, o);
	vmstate_section_end(o, at);
	random_section(o, r, VS_FRAMEBUFFER, 0, 200);	/* its content is the framebuffer's to check */
	vmstate_finish(o, sections + 9);
	if (o->oom)
		exit(2);
}

static int check_copy(const struct vmstate_expect *want, const uint8_t *p, size_t n, char *err, size_t errlen)
{
	struct vmstate_index idx;
	uint8_t *copy = exact_copy(p, n);
	int rc;

	err[0] = 0;
	rc = vmstate_check(want, copy, n, &idx, err, errlen);
	if (rc == 0)
		vmstate_index_free(&idx);
	else
		CHECK(err[0] != 0);
	free(copy);
	return rc;
}

static void test_valid_and_every_change(struct state_out *blob)
{
	struct vmstate_index idx;
	char err[256] = "";

	CHECK_EQ(vmstate_check(&shape, blob->data, blob->len, &idx, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_EQ(idx.hdr.nr_vcpus, 2);
	CHECK(idx.once[VS_SERIAL].p != NULL && idx.vcpu[1 * (VS_VCPU_LAST + 1) + VS_MSRS].len == 4 + 2 * 12);
	vmstate_index_free(&idx);
	for (size_t n = 0; n < blob->len; n++)
		CHECK_EQ(check_copy(&shape, blob->data, n, err, sizeof(err)), -1);
	/* Every byte is covered by the header CRC, a section CRC, or the shape of the section list. */
	for (size_t i = 0; i < blob->len; i++) {
		uint8_t keep = blob->data[i];
		blob->data[i] ^= (uint8_t)(1u << (i % 8));
		if (check_copy(&shape, blob->data, blob->len, err, sizeof(err)) != -1) {
			CHECK(!"a changed byte was accepted");
			fprintf(stderr, "  at offset %zu\n", i);
		}
		blob->data[i] = keep;
	}
}

static void test_other_shapes_and_hosts(struct state_out *blob)
{
	char err[256];
	struct vmstate_expect want = shape;
	struct vmstate_host h = host;
	uint32_t fewer[] = { 0x10, 0x174 };

	want.nr_vcpus = 1;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "2 vCPUs") != NULL);
	want = shape;
	want.mem_size = 64u << 20;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "memory") != NULL);
	want = shape;
	want.fb_width = 128;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "framebuffer") != NULL);
	want = shape;
	want.host = &h;
	h.cpu[2] &= ~0x20u;		/* the host lacks CPUID.07H:EBX bit 5 (AVX2) */
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK_STR(err, "the saved VM used CPU features this host lacks: CPUID.07H:EBX bits 0x00000020");
	h = host;
	h.flags &= ~VMSTATE_F_DEBUGREGS;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "flags") != NULL);
	h = host;
	h.msrs = fewer;
	h.nr_msrs = 2;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "MSR 0xc0000080") != NULL);
	h = host;
	h.xsave_size = 2048;
	CHECK_EQ(check_copy(&want, blob->data, blob->len, err, sizeof(err)), -1);
	CHECK(strstr(err, "XSAVE") != NULL);
}

/* Random mutations of the whole blob and of each device's section alone. */
static void fuzz(struct state_out *blob, struct devices *dv, struct rng *r, unsigned long iterations)
{
	size_t cap = blob->len + 4096;
	uint8_t *buf = malloc(cap);
	unsigned long passed = 0, refused = 0;
	char err[256];

	for (unsigned long it = 0; it < iterations; it++) {
		size_t n = blob->len;
		memcpy(buf, blob->data, n);
		mutate(r, buf, &n, cap);
		if (check_copy(&shape, buf, n, err, sizeof(err)) == 0) {
			passed++;
			CHECK(n == blob->len && !memcmp(buf, blob->data, n));
		} else {
			refused++;
		}
	}
	/* Device loaders without the blob's CRCs in front of them: no crash, and a state they pass
	 * checking is one they apply. */
	struct state_out dev[3];
	for (int i = 0; i < 3; i++)
		so_init(&dev[i]);
	serial_save(dv->s, &dev[0]);
	i8042_save(dv->k, &dev[1]);
	debugport_save(dv->d, &dev[2]);
	for (unsigned long it = 0; it < iterations; it++) {
		int which = (int)rng_below(r, 3);
		size_t n = dev[which].len;
		uint8_t *p;
		int rc;
		memcpy(buf, dev[which].data, n);
		mutate(r, buf, &n, cap);
		p = exact_copy(buf, n);
		rc = which == 0 ? serial_load(dv->s, p, n, 0, err, sizeof(err))
		   : which == 1 ? i8042_load(dv->k, p, n, 0, err, sizeof(err))
				: debugport_load(dv->d, p, n, 0, err, sizeof(err));
		if (rc == 0) {
			rc = which == 0 ? serial_load(dv->s, p, n, 1, err, sizeof(err))
			   : which == 1 ? i8042_load(dv->k, p, n, 1, err, sizeof(err))
					: debugport_load(dv->d, p, n, 1, err, sizeof(err));
			CHECK_EQ(rc, 0);
		}
		free(p);
	}
	for (int i = 0; i < 3; i++)
		so_free(&dev[i]);
	free(buf);
	printf("fuzz_vmstate: %lu mutated blobs, %lu passed (unchanged), %lu refused\n", iterations, passed, refused);
}

int main(int argc, char **argv)
{
	unsigned long iterations = 20000;
	uint64_t seed = 1;
	struct rng r;
	struct devices dv;
	struct state_out blob;

	fuzz_args(argc, argv, &iterations, &seed);
	r.state = seed;
	devices_up(&dv);
	for (const char *p = "qumra demo guest\n"; *p; p++)
		ring_write(&dv.s->out, (const uint8_t *)p, 1);
	debugport_command(dv.d, 0x0109);
	build_blob(&blob, &dv, &r);
	check_case = "valid and every change";
	test_valid_and_every_change(&blob);
	check_case = "other shapes and hosts";
	test_other_shapes_and_hosts(&blob);
	check_case = "fuzz";
	fuzz(&blob, &dv, &r, iterations);
	so_free(&blob);
	devices_down(&dv);
	return check_done("fuzz_vmstate");
}
