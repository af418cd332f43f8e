/* --probe: what the host's KVM offers, as one JSON object (read by the agent's HostService). */
#include "probe.h"

#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "json.h"
#include "kvm.h"
#include "util.h"
#include "vmstate.h"

int probe_run(const char *device)
{
	char err[256] = "";
	struct sbuf sb;
	int fd, api = 0, maxv = 0, recv = 0;
	size_t i;

	fd = kvm_open_device(device, err, sizeof(err));
	if (fd >= 0) {
		api = ioctl(fd, KVM_GET_API_VERSION, 0);
		recv = kvm_check_cap(fd, KVM_CAP_NR_VCPUS);
		maxv = kvm_check_cap(fd, KVM_CAP_MAX_VCPUS);
		if (recv <= 0)
			recv = 4;	/* the API's documented default when the cap is absent */
		if (maxv <= 0)
			maxv = recv;
		if (kvm_require_caps(fd, err, sizeof(err)) == 0)
			err[0] = 0;
	}

	sb_init(&sb);
	sb_printf(&sb, "{\"available\":%s,\"device\":", fd >= 0 && !err[0] ? "true" : "false");
	sb_json_str(&sb, device);
	sb_printf(&sb, ",\"apiVersion\":%d,\"maxVcpus\":%d,\"recommendedVcpus\":%d,\"module\":",
		  api, maxv, recv);
	sb_json_str(&sb, kvm_module_name());
	sb_printf(&sb, ",\"capabilities\":[");
	for (i = 0; fd >= 0 && i < kvm_cap_count; i++) {
		sb_printf(&sb, "%s{\"name\":\"%s\",\"id\":%d,\"value\":%d}", i ? "," : "",
			  kvm_cap_table[i].name, kvm_cap_table[i].id,
			  kvm_check_cap(fd, kvm_cap_table[i].id));
	}
	sb_printf(&sb, "],\"stateFormat\":%d,\"cpuFeatures\":[", VMSTATE_VERSION);
	{
		uint32_t cpu[VMSTATE_CPU_WORDS] = { 0 };
		if (fd >= 0)
			vmstate_cpu_features(fd, cpu);
		for (i = 0; i < VMSTATE_CPU_WORDS; i++)
			sb_printf(&sb, "%s%u", i ? "," : "", cpu[i]);
	}
	sb_printf(&sb, "],\"error\":");
	sb_json_str(&sb, err);
	sb_printf(&sb, "}\n");
	if (sb.data)
		fputs(sb.data, stdout);
	fflush(stdout);
	sb_free(&sb);
	if (fd >= 0)
		close(fd);
	return 0;
}
