/* qumra-vmm entry point: argument parsing, VM setup and teardown. */
#include <stdio.h>
#include <string.h>

#include "probe.h"

int main(int argc, char **argv)
{
	const char *device = "/dev/kvm";
	int probe = 0, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--probe"))
			probe = 1;
		else if (!strcmp(argv[i], "--device") && i + 1 < argc)
			device = argv[++i];
	}
	if (probe)
		return probe_run(device);
	fprintf(stderr, "usage: qumra-vmm --probe [--device PATH]\n");
	return 2;
}
