/* qumra-vmm entry point: arguments, VM setup, the control loop, teardown.
 *
 *   qumra-vmm --probe [--device /dev/kvm]
 *   qumra-vmm --control PATH [--runtime-dir DIR] [--device /dev/kvm] [--vcpus N] [--memory BYTES]
 *             [--fb-width W] [--fb-height H]
 *             (--demo | --image FILE [--load ADDR] [--entry ADDR] [--mode long|protected])
 *
 * The VM is created but not started: the agent connects, says HELLO and sends START.
 * Exit statuses are listed in control.h and PROTOCOL.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "boot.h"
#include "control.h"
#include "debugport.h"
#include "events.h"
#include "framebuffer.h"
#include "i8042.h"
#include "kvm.h"
#include "probe.h"
#include "serial.h"
#include "util.h"
#include "vcpu.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: qumra-vmm --probe [--device PATH]\n"
		"       qumra-vmm --control PATH [--runtime-dir DIR] [--device PATH] [--vcpus N]\n"
		"                 [--memory BYTES] [--fb-width W] [--fb-height H]\n"
		"                 (--demo | --image FILE [--load ADDR] [--entry ADDR] [--mode long|protected])\n");
}

static char demo_path[PATH_MAX];

static const char *demo_image(void)
{
	ssize_t n = readlink("/proc/self/exe", demo_path, sizeof(demo_path) - 32);
	char *slash;

	if (n <= 0)
		return "demo-guest.bin";
	demo_path[n] = 0;
	slash = strrchr(demo_path, '/');
	strcpy(slash ? slash + 1 : demo_path, "demo-guest.bin");
	return demo_path;
}

static int parse_args(int argc, char **argv, struct vm_config *c, int *probe)
{
	uint64_t v;
	int demo = 0, entry_set = 0;

	*c = (struct vm_config){ .nr_vcpus = 1, .mem_size = 64ull << 20, .load_addr = 0x100000,
				 .mode = BOOT_LONG, .device = "/dev/kvm",
				 .fb_width = FB_DEFAULT_WIDTH, .fb_height = FB_DEFAULT_HEIGHT };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;
		if (!strcmp(a, "--probe")) {
			*probe = 1;
			takes = 0;
		} else if (!strcmp(a, "--demo")) {
			demo = 1;
			takes = 0;
		} else if (!val) {
			fprintf(stderr, "qumra-vmm: %s needs a value\n", a);
			return -1;
		} else if (!strcmp(a, "--device")) {
			c->device = val;
		} else if (!strcmp(a, "--control")) {
			c->control_path = val;
		} else if (!strcmp(a, "--runtime-dir")) {
			c->runtime_dir = val;
		} else if (!strcmp(a, "--image")) {
			c->image = val;
		} else if (!strcmp(a, "--mode")) {
			if (!strcmp(val, "long"))
				c->mode = BOOT_LONG;
			else if (!strcmp(val, "protected"))
				c->mode = BOOT_PROTECTED;
			else {
				fprintf(stderr, "qumra-vmm: --mode is long or protected\n");
				return -1;
			}
		} else if (parse_u64(val, &v) < 0) {
			fprintf(stderr, "qumra-vmm: %s: bad number \"%s\"\n", a, val);
			return -1;
		} else if (!strcmp(a, "--vcpus")) {
			if (v < 1 || v > 1024) {
				fprintf(stderr, "qumra-vmm: --vcpus must be 1..1024\n");
				return -1;
			}
			c->nr_vcpus = (unsigned)v;
		} else if (!strcmp(a, "--fb-width")) {
			if (v < FB_MIN_WIDTH || v > FB_MAX_WIDTH) {
				fprintf(stderr, "qumra-vmm: --fb-width must be %d..%d (got %s)\n",
					FB_MIN_WIDTH, FB_MAX_WIDTH, val);
				return -1;
			}
			c->fb_width = (uint32_t)v;
		} else if (!strcmp(a, "--fb-height")) {
			if (v < FB_MIN_HEIGHT || v > FB_MAX_HEIGHT) {
				fprintf(stderr, "qumra-vmm: --fb-height must be %d..%d (got %s)\n",
					FB_MIN_HEIGHT, FB_MAX_HEIGHT, val);
				return -1;
			}
			c->fb_height = (uint32_t)v;
		} else if (!strcmp(a, "--memory")) {
			c->mem_size = v;
		} else if (!strcmp(a, "--load")) {
			c->load_addr = v;
		} else if (!strcmp(a, "--entry")) {
			c->entry = v;
			entry_set = 1;
		} else {
			fprintf(stderr, "qumra-vmm: unknown argument %s\n", a);
			return -1;
		}
		i += takes;
	}
	if (*probe)
		return 0;
	if (demo) {
		c->image = demo_image();
		c->load_addr = 0x100000;
		c->mode = BOOT_LONG;
		entry_set = 0;
	}
	if (!entry_set)
		c->entry = c->load_addr;
	if (!c->image || !c->control_path) {
		fprintf(stderr, "qumra-vmm: need --control and --image (or --demo)\n");
		return -1;
	}
	return 0;
}

static void kvm_irq_set(void *opaque, unsigned irq, int level)
{
	vm_irq_line(opaque, irq, level);
}

static struct irq_line kvm_irq(struct vm *vm, unsigned irq)
{
	return (struct irq_line){ .set = kvm_irq_set, .opaque = vm, .irq = irq };
}

static void guest_stop(void *opaque, const char *reason)
{
	vm_guest_stopped(opaque, VM_STOPPED, reason);
}

static int vm_setup(struct vm *vm, char *err, size_t errlen)
{
	struct stop_hook stop = { .stop = guest_stop, .opaque = vm };
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	unsigned maxv;

	vm->kvm_fd = kvm_open_device(vm->cfg.device, err, errlen);
	if (vm->kvm_fd < 0 || kvm_require_caps(vm->kvm_fd, err, errlen) < 0)
		return -1;
	maxv = (unsigned)kvm_check_cap(vm->kvm_fd, KVM_CAP_MAX_VCPUS);
	if (maxv && vm->cfg.nr_vcpus > maxv) {
		snprintf(err, errlen, "%u vCPUs requested, KVM allows %u", vm->cfg.nr_vcpus, maxv);
		return -1;
	}
	vm->nr_vcpus = vm->cfg.nr_vcpus;
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->run_size <= 0 || vm->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, BOOT_TSS_ADDR) < 0) {
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -1;
	}
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
		uint64_t idmap = BOOT_IDMAP_ADDR;
		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
			log_warn("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		snprintf(err, errlen, "in-kernel irqchip/PIT: %s", strerror(errno));
		return -1;
	}
#ifdef KVM_GET_STATS_FD
	vm->stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL);
#endif
	if (memory_init(&vm->mem, vm->vm_fd, vm->cfg.mem_size, err, errlen) < 0 ||
	    boot_load(vm, err, errlen) < 0)
		return -1;
	vm->events = events_create();
	if (!vm->events) {
		snprintf(err, errlen, "event queue: %s", strerror(errno));
		return -1;
	}
	vm->serial = serial_init(&vm->pio, kvm_irq(vm, SERIAL_IRQ), vm->events, err, errlen);
	if (!vm->serial)
		return -1;
	vm->kbd = i8042_init(&vm->pio, kvm_irq(vm, I8042_KBD_IRQ), vm->events, stop, err, errlen);
	if (!vm->kbd)
		return -1;
	vm->debug = debugport_init(&vm->pio, kvm_irq(vm, QG_DOORBELL_IRQ), vm->events, stop, err,
				   errlen);
	if (!vm->debug)
		return -1;
	vm->fb = framebuffer_init(vm->vm_fd, vm->cfg.fb_width, vm->cfg.fb_height,
				  vm->cfg.runtime_dir, &vm->pio, vm->debug, err, errlen);
	if (!vm->fb)
		return -1;
	return vcpus_create(vm, err, errlen);
}

static void vm_teardown(struct vm *vm)
{
	vcpus_join(vm);
	vcpus_teardown(vm);
	framebuffer_teardown(vm->fb);
	debugport_teardown(vm->debug);
	i8042_teardown(vm->kbd);
	serial_teardown(vm->serial);
	events_destroy(vm->events);
	memory_teardown(&vm->mem);
	if (vm->stats_fd >= 0)
		close(vm->stats_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

static void write_pidfile(const char *dir)
{
	char path[PATH_MAX], line[32];
	int fd, n;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/qumra-vmm.pid", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

int main(int argc, char **argv)
{
	static struct vm vm;
	char err[512] = "";
	int probe = 0, listen_fd, status;

	if (parse_args(argc, argv, &vm.cfg, &probe) < 0) {
		usage();
		return EXIT_USAGE;
	}
	if (probe)
		return probe_run(vm.cfg.device);

	setvbuf(stderr, NULL, _IOLBF, 0);
	vm.kvm_fd = vm.vm_fd = vm.stats_fd = -1;
	vm.mem.memfd = -1;
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	vm.state = VM_CREATED;
	if (vm_setup(&vm, err, sizeof(err)) < 0) {
		log_error("setup failed: %s", err);
		fprintf(stdout, "{\"error\":\"setup failed\"}\n");
		vm_teardown(&vm);
		return EXIT_SETUP;
	}
	listen_fd = control_listen(vm.cfg.control_path, err, sizeof(err));
	if (listen_fd < 0) {
		log_error("%s", err);
		vm_teardown(&vm);
		return EXIT_SETUP;
	}
	write_pidfile(vm.cfg.runtime_dir);
	log_info("VM ready: %u vCPUs, %llu bytes, image %s at 0x%llx, %s mode; control %s",
		 vm.nr_vcpus, (unsigned long long)vm.mem.size, vm.cfg.image,
		 (unsigned long long)vm.cfg.load_addr, vm.cfg.mode == BOOT_LONG ? "long" : "protected",
		 vm.cfg.control_path);
	status = control_run(&vm, listen_fd);
	close(listen_fd);
	unlink(vm.cfg.control_path);
	vm_teardown(&vm);
	log_info("exit status %d", status);
	return status;
}
