/* `qumra-vmm --probe`: describe the host's KVM as one JSON object on stdout. */
#ifndef QVMM_PROBE_H
#define QVMM_PROBE_H

/* Prints the JSON object and returns the exit status (always 0: unusable KVM is data, not failure). */
int probe_run(const char *device);

#endif
