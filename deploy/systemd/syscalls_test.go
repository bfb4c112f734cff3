package systemd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// syscallSets expands systemd's system call groups (@system-service ...)
// into system call names, as `systemd-analyze syscall-filter` lists them.
type syscallSets struct {
	t     *testing.T
	sa    string
	cache map[string][]string
}

func newSyscallSets(t *testing.T) *syscallSets {
	return &syscallSets{t: t, sa: systemdAnalyze(t), cache: map[string][]string{}}
}

// expand returns the system calls of a name: itself, or a group's members,
// groups within it expanded.
func (s *syscallSets) expand(name string) []string {
	s.t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	if v, ok := s.cache[name]; ok {
		return v
	}
	out, err := exec.Command(s.sa, "syscall-filter", "--no-pager", name).Output()
	if err != nil {
		s.t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var calls []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		calls = append(calls, s.expand(f[0])...)
	}
	if len(calls) == 0 {
		s.t.Fatalf("systemd-analyze syscall-filter %s lists no system call", name)
	}
	s.cache[name] = calls
	return calls
}

// filter is a unit's SystemCallFilter= as systemd applies it: the first
// assignment makes it an allow list (or, with "~", a deny list); in an allow
// list later plain names add to it and "~" names take away from it, in
// the order of the assignments.
type filter struct {
	allowList bool
	set       map[string]bool
}

func (s *syscallSets) filterOf(u unit) filter {
	s.t.Helper()
	assignments := u["Service/SystemCallFilter"]
	if len(assignments) == 0 {
		s.t.Fatal("the unit has no SystemCallFilter=")
	}
	f := filter{allowList: !strings.HasPrefix(assignments[0], "~"), set: map[string]bool{}}
	for _, a := range assignments {
		deny := strings.HasPrefix(a, "~")
		for _, name := range strings.Fields(strings.TrimPrefix(a, "~")) {
			for _, call := range s.expand(name) {
				// In an allow list a "~" entry removes; in a deny list a plain one does.
				f.set[call] = deny != f.allowList
			}
		}
	}
	return f
}

func (f filter) allows(call string) bool { return f.set[call] == f.allowList }

// TestDeploySystemdSyscallFilter: the only privileged system call either unit
// allows is the eBPF unit's bpf().
func TestDeploySystemdSyscallFilter(t *testing.T) {
	s := newSyscallSets(t)
	privileged := s.expand("@privileged")
	for _, tc := range []struct {
		unit string
		want []string
	}{{unitFile, nil}, {ebpfUnitFile, []string{"bpf"}}} {
		f := s.filterOf(readUnit(t, tc.unit))
		var got []string
		for _, call := range privileged {
			if f.allows(call) {
				got = append(got, call)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s allows the @privileged system calls %q, want %q", tc.unit, got, tc.want)
		}
		for _, call := range []string{"read", "epoll_pwait", "socket", "setsockopt"} {
			if !f.allows(call) {
				t.Errorf("%s does not allow %s", tc.unit, call)
			}
		}
	}
}

// straceLineRE is the start of a line of `strace -f -o FILE`: the PID and
// the system call's name.
var straceLineRE = regexp.MustCompile(`^\d+\s+([a-z0-9_]+)\(`)

// tracedSyscalls returns the names of the system calls in an strace -f output file.
func tracedSyscalls(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := straceLineRE.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
		}
	}
	var out []string
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
