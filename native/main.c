/* qumra-vmm entry point: parses the arguments, builds the VM (vm.c), serves the control
 * socket until STOP, takes the VM apart.
 *
 *   qumra-vmm --probe [--device /dev/kvm]
 *   qumra-vmm --control PATH --secret-file PATH [--runtime-dir DIR] [--device /dev/kvm] [--vcpus N]
 *             [--memory BYTES] [--fb-width W] [--fb-height H] [--uid N --gid N] [--no-sandbox]
 *             (--demo | --image FILE [--load ADDR] [--entry ADDR] [--mode long|protected]
 *              | --kernel VMLINUX|BZIMAGE [--initrd FILE] [--cmdline STR])
 *
 * The VM is created but not started: the agent connects, says HELLO with the secret from
 * --secret-file (read here, before anything else, see auth.c) and sends START.
 * Exit statuses are listed in control.h and PROTOCOL.md. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/file.h>

#include "auth.h"
#include "bzimage.h"
#include "control.h"
#include "framebuffer.h"
#include "probe.h"
#include "sandbox.h"
#include "util.h"
#include "vm.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: qumra-vmm --probe [--device PATH]\n"
		"       qumra-vmm --control PATH --secret-file PATH [--runtime-dir DIR] [--device PATH] [--vcpus N]\n"
		"                 [--memory BYTES] [--fb-width W] [--fb-height H] [--uid N --gid N]\n"
		"                 [--no-sandbox]\n"
		"                 (--demo | --image FILE [--load ADDR] [--entry ADDR] [--mode long|protected]\n"
		"                  | --kernel VMLINUX|BZIMAGE [--initrd FILE] [--cmdline STR])\n");
}

static char demo_path[PATH_MAX];
static const char *secret_file;	/* --secret-file: loaded by main() right after the arguments */

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

static int parse_args(int argc, char **argv, struct vm_config *c, struct sandbox_config *sb, int *probe)
{
	uint64_t v;
	int demo = 0, entry_set = 0, uid_set = 0, gid_set = 0;

	*sb = (struct sandbox_config){ .enabled = 1 };

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
		} else if (!strcmp(a, "--no-sandbox")) {
			sb->enabled = 0;
			takes = 0;
		} else if (!val) {
			fprintf(stderr, "qumra-vmm: %s needs a value\n", a);
			return -1;
		} else if (!strcmp(a, "--device")) {
			c->device = val;
		} else if (!strcmp(a, "--control")) {
			c->control_path = val;
		} else if (!strcmp(a, "--secret-file")) {
			secret_file = val;
		} else if (!strcmp(a, "--runtime-dir")) {
			c->runtime_dir = val;
		} else if (!strcmp(a, "--image")) {
			c->image = val;
		} else if (!strcmp(a, "--kernel")) {
			c->kernel = val;
		} else if (!strcmp(a, "--initrd")) {
			c->initrd = val;
		} else if (!strcmp(a, "--cmdline")) {
			c->cmdline = val;
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
		} else if (!strcmp(a, "--uid") || !strcmp(a, "--gid")) {
			if (v > 0xfffffffeull) {
				fprintf(stderr, "qumra-vmm: %s must be a uid/gid number below 4294967295\n", a);
				return -1;
			}
			if (a[2] == 'u')
				sb->uid = (uint32_t)v, uid_set = 1;
			else
				sb->gid = (uint32_t)v, gid_set = 1;
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
	if (uid_set != gid_set) {
		fprintf(stderr, "qumra-vmm: --uid and --gid go together\n");
		return -1;
	}
	sb->drop_ids = uid_set;
	if (demo) {
		c->image = demo_image();
		c->load_addr = 0x100000;
		c->mode = BOOT_LONG;
		entry_set = 0;
	}
	if ((c->initrd || c->cmdline) && !c->kernel) {
		fprintf(stderr, "qumra-vmm: --initrd and --cmdline go with --kernel\n");
		return -1;
	}
	if (c->kernel) {
		if (c->image || demo) {
			fprintf(stderr, "qumra-vmm: --kernel boots Linux; it excludes --image and --demo\n");
			return -1;
		}
		c->image = c->kernel;	/* what logs and STATUS name as the boot image */
		c->mode = bzimage_detect(c->kernel) ? BOOT_BZIMAGE : BOOT_PVH;
		entry_set = 1;		/* from the kernel's PVH note or setup header */
	}
	if (!entry_set)
		c->entry = c->load_addr;
	if (!c->image || !c->control_path) {
		fprintf(stderr, "qumra-vmm: need --control and --image (or --demo)\n");
		return -1;
	}
	if (!secret_file) {
		fprintf(stderr, "qumra-vmm: need --secret-file: the control socket accepts only clients "
			"that know the VM's secret\n");
		return -1;
	}
	return 0;
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

/*
 * One helper per runtime dir: an exclusive flock on DIR/helper.lock, held (fd kept open) for the
 * helper's life. A second helper started on the same dir refuses before it creates or removes any file
 * there, so it can never take over or delete a live helper's socket and framebuffer.
 */
static int lock_runtime_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (!dir)
		return 0;
	snprintf(path, sizeof(path), "%s/helper.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "qumra-vmm: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "qumra-vmm: another qumra-vmm holds %s (see %s/qumra-vmm.pid): "
				"one helper per runtime dir\n", path, dir);
		else
			fprintf(stderr, "qumra-vmm: cannot lock %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd; /* kept open: the lock lasts until the process ends */
}

int main(int argc, char **argv)
{
	static struct vm vm;
	static struct auth_secret secret;
	struct vm_config cfg;
	struct sandbox_config sandbox;
	char err[512] = "";
	int probe = 0, listen_fd, status;

	if (parse_args(argc, argv, &cfg, &sandbox, &probe) < 0) {
		usage();
		return EXIT_USAGE;
	}
	if (probe)
		return probe_run(cfg.device);
	if (auth_load(secret_file, &secret, err, sizeof(err)) < 0) {
		fprintf(stderr, "qumra-vmm: %s\n", err);
		return EXIT_SETUP;
	}
	sandbox_early(&sandbox);
	if (lock_runtime_dir(cfg.runtime_dir) < 0)
		return EXIT_SETUP;

	setvbuf(stderr, NULL, _IOLBF, 0);
	if (vm_create(&vm, &cfg, err, sizeof(err)) < 0) {
		log_error("setup failed: %s", err);
		fprintf(stdout, "{\"error\":\"setup failed\"}\n");
		vm_destroy(&vm);
		return EXIT_SETUP;
	}
	listen_fd = control_listen(vm.cfg.control_path, err, sizeof(err));
	if (listen_fd < 0) {
		log_error("%s", err);
		vm_destroy(&vm);
		return EXIT_SETUP;
	}
	write_pidfile(vm.cfg.runtime_dir);
	if (sandbox_enter(&sandbox, &vm, err, sizeof(err)) < 0) {
		log_error("setup failed: %s", err);
		close(listen_fd);
		unlink(vm.cfg.control_path);
		vm_destroy(&vm);
		return EXIT_SETUP;
	}
	log_info("VM ready: %u vCPUs, %llu bytes, image %s at 0x%llx, %s mode; control %s",
		 vm.nr_vcpus, (unsigned long long)vm.mem.size, vm.cfg.image,
		 (unsigned long long)(boot_mode_is_linux(vm.cfg.mode) ? vm.cfg.entry : vm.cfg.load_addr),
		 boot_mode_name(vm.cfg.mode), vm.cfg.control_path);
	status = control_run(&vm, listen_fd, &secret);
	close(listen_fd);
	unlink(vm.cfg.control_path);
	vm_destroy(&vm);
	log_info("exit status %d", status);
	return status;
}
