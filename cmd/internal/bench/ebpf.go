package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The eBPF receiver's cost has two parts: the exporter's own CPU time, as for
// every receiver, and the BPF program's, which runs in the kernel for every
// packet freed as dropped, on whichever CPU frees it (for a veth flood: the
// sender's), so no process accounts for it. The kernel measures a program's
// run time only while BPF statistics are on; the bench turns them on for the
// measurement alone, through a BPF_ENABLE_STATS file descriptor (the switch
// is off again once every such descriptor is closed), never through the
// kernel.bpf_stats_enabled sysctl.

// bpfStatsSysctl is the switch the descriptor stands in for; the bench only
// reads it, to check that the measurement left it as it found it.
const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// bpfMeter measures one program's run time over an interval.
type bpfMeter struct {
	prog   *ebpf.Program
	stats  io.Closer
	before []byte
	s0     *ebpf.ProgramStats
}

// startBPFMeter turns the statistics on and takes the first reading of the
// tracing program that process pid holds (the exporter's eBPF source).
func startBPFMeter(pid int) (*bpfMeter, error) {
	id, err := tracingProgramID(pid)
	if err != nil {
		return nil, err
	}
	m := &bpfMeter{}
	if m.before, err = os.ReadFile(bpfStatsSysctl); err != nil {
		return nil, err
	}
	if m.prog, err = ebpf.NewProgramFromID(id); err != nil {
		return nil, fmt.Errorf("bench: BPF program %d of pid %d: %w", id, pid, err)
	}
	if m.stats, err = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err != nil {
		m.prog.Close()
		return nil, fmt.Errorf("bench: enabling BPF run-time statistics: %w", err)
	}
	if m.s0, err = m.prog.Stats(); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// stop takes the second reading, turns the statistics off again and checks
// that the sysctl is back where it was. It returns the program's run time
// and runs in between.
func (m *bpfMeter) stop() (time.Duration, uint64, error) {
	s1, err := m.prog.Stats()
	if cerr := m.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, err
	}
	after, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return 0, 0, err
	}
	if !bytes.Equal(after, m.before) {
		return 0, 0, fmt.Errorf("bench: %s is %q after the measurement, was %q", bpfStatsSysctl, bytes.TrimSpace(after), bytes.TrimSpace(m.before))
	}
	return s1.Runtime - m.s0.Runtime, s1.RunCount - m.s0.RunCount, nil
}

func (m *bpfMeter) close() error {
	return errors.Join(m.stats.Close(), m.prog.Close())
}

// bpfProgTypeTracing is BPF_PROG_TYPE_TRACING, the type of a tp_btf program.
const bpfProgTypeTracing = 26

// tracingProgramID returns the ID of the one BPF tracing program process pid
// has a file descriptor of.
func tracingProgramID(pid int) (ebpf.ProgramID, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var ids []ebpf.ProgramID
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err != nil || target != "anon_inode:bpf-prog" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			return 0, err
		}
		typ, id, err := parseProgFdinfo(info)
		if err != nil {
			return 0, fmt.Errorf("bench: %s/%s: %w", dir, fd.Name(), err)
		}
		if typ == bpfProgTypeTracing && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		return 0, fmt.Errorf("bench: pid %d holds %d BPF tracing programs %v, want the eBPF source's one", pid, len(ids), ids)
	}
	return ids[0], nil
}

// parseProgFdinfo reads prog_type and prog_id from the fdinfo of a BPF
// program's file descriptor.
func parseProgFdinfo(b []byte) (typ uint32, id ebpf.ProgramID, err error) {
	var haveType, haveID bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		switch strings.TrimSpace(k) {
		case "prog_type":
			typ, haveType, err = uint32(n), true, perr
		case "prog_id":
			id, haveID, err = ebpf.ProgramID(n), true, perr
		default:
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("fdinfo line %q: %w", sc.Text(), err)
		}
	}
	if !haveType || !haveID {
		return 0, 0, errors.New("no prog_type and prog_id in the fdinfo")
	}
	return typ, id, nil
}
