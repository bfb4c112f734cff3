package ebpf

import (
	"errors"
	"fmt"
)

// ErrUnavailable matches (errors.Is) every error that says this source cannot
// run on this machine or with these privileges: ErrNoBTF, ErrKernelTooOld and
// ErrPermission. The exporter goes on with its NFLOG source alone.
var ErrUnavailable = errors.New("the eBPF drop source cannot run here; the NFLOG source works without it")

// The reasons this source cannot run. Each is one sentence that says what is
// missing; match them with errors.Is.
var (
	ErrNoBTF error = &unavailableError{msg: "the eBPF drop source needs the kernel's BTF, but /sys/kernel/btf/vmlinux is missing " +
		"(a kernel built with CONFIG_DEBUG_INFO_BTF=y has it); the NFLOG source works without it"}
	ErrKernelTooOld error = &unavailableError{msg: "the eBPF drop source needs the drop reason SKB_DROP_REASON_NETFILTER_DROP, " +
		"which this kernel's BTF does not have (Linux 5.17 or later has it); the NFLOG source works without it"}
	ErrPermission error = &unavailableError{msg: "the eBPF drop source needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load " +
		"its tracing program; the NFLOG source works without it"}
)

// unavailableError is an error of the ErrUnavailable kind. kind is the
// sentinel a more detailed error stands for (nil for the sentinels).
type unavailableError struct {
	msg  string
	kind error
}

func (e *unavailableError) Error() string { return e.msg }

func (e *unavailableError) Is(target error) bool {
	return target == ErrUnavailable || (e.kind != nil && target == e.kind)
}

// missingCapsError is ErrPermission naming the capabilities the process lacks.
func missingCapsError(missing string) error {
	return &unavailableError{kind: ErrPermission, msg: fmt.Sprintf(
		"the eBPF drop source needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its tracing program, "+
			"and this process lacks %s; the NFLOG source works without it", missing)}
}

// refusedError is ErrPermission for a kernel that refuses the program although
// the process has the capabilities: they count only in the host's initial
// user namespace (not in a container's own), and a security module may deny
// BPF.
func refusedError(err error) error {
	return &unavailableError{kind: ErrPermission, msg: fmt.Sprintf(
		"the kernel refused the eBPF drop source (%v) although this process has CAP_BPF and CAP_PERFMON, "+
			"which count only in the host's user namespace and which a security module may overrule; "+
			"the NFLOG source works without it", err)}
}
