/* kvm-exit-loop: the yardstick for the helper's exit path. A bare KVM_RUN loop with no threads,
 * devices or locks runs a real-mode guest doing `out %al, (%dx)` to port 0x508 in a loop and
 * counts N port exits; prints {"exits":N,"seconds":S,"exitsPerSecond":R} on stdout.
 * Compare with the demo guest's EXITS command (same instruction, same port) under qumra-vmm:
 * see native/PROTOCOL.md, "Measuring the exit path". Usage: kvm-exit-loop [N] [--device PATH] */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PORT 0x508
#define MEM_SIZE   0x10000
#define CODE_ADDR  0x1000

static int fail(const char *what)
{
	printf("{\"error\":\"%s: %s\"}\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	/* mov $0x508, %dx ; 1: out %al, (%dx) ; jmp 1b */
	static const uint8_t code[] = { 0xba, BENCH_PORT & 0xff, BENCH_PORT >> 8, 0xee, 0xeb, 0xfd };
	const char *device = "/dev/kvm";
	unsigned long long n = 100000, exits = 0;
	struct timespec t0, t1;
	int kvm, vm, vcpu, run_size;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--device") && i + 1 < argc)
			device = argv[++i];
		else
			n = strtoull(argv[i], NULL, 0);
	}
	kvm = open(device, O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail(device);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	memcpy(mem + CODE_ADDR, code, sizeof(code));
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || run_size <= 0)
		return fail("KVM_CREATE_VCPU");
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = CODE_ADDR, .rflags = 2 };
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (exits < n) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return fail("KVM_RUN");
		}
		if (run->exit_reason != KVM_EXIT_IO || run->io.port != BENCH_PORT) {
			printf("{\"error\":\"unexpected exit %u\"}\n", run->exit_reason);
			return 1;
		}
		exits++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"exits\":%llu,\"seconds\":%.6f,\"exitsPerSecond\":%.0f}\n", exits, secs,
	       (double)exits / secs);
	return 0;
}
