package ebpf

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Capability numbers of include/uapi/linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkCaps tells which capabilities the calling thread's effective set lacks
// for loading and attaching a tracing program that reads kernel memory:
// CAP_BPF (maps, programs) and CAP_PERFMON (tracing, bpf_probe_read_kernel),
// each of which CAP_SYS_ADMIN replaces. The kernel would answer EPERM without
// saying which.
func checkCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the kernel decide
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	if len(missing) == 0 {
		return nil
	}
	return missingCapsError(strings.Join(missing, " and "))
}
