/* Statistics: KVM binary stats (KVM_GET_STATS_FD) of the VM and each vCPU, the helper's own
 * per-vCPU exit counters and each device's counters, as one JSON object. */
#ifndef QVMM_STATS_H
#define QVMM_STATS_H

#include "json.h"
#include "vm.h"

void stats_json(struct vm *vm, struct sbuf *sb);

#endif
