/* vCPU registers as a flat JSON object (GET_REGS / SET_REGS): general registers, control
 * registers, EFER, segments as "cs.base", "cs.selector"..., "gdt.base", "idt.limit".
 * 64-bit values are hex strings ("0x..."); SET_REGS also accepts plain decimal numbers. */
#ifndef QVMM_REGS_H
#define QVMM_REGS_H

#include <stddef.h>

#include "json.h"

int regs_get_json(int vcpu_fd, unsigned vcpu, struct sbuf *sb, char *err, size_t errlen);
/* Applies the named registers (all other members but "vcpu" must be register names);
 * registers not named keep their value. Returns 0, or -1 with err filled. */
int regs_set_json(int vcpu_fd, const char *json, size_t len, char *err, size_t errlen);

#endif
