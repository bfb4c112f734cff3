package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 100

// procCPU returns utime+stime of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 and 15 of /proc/<pid>/stat. The command name
// (field 2) may contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed stat line %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short stat line %q", b)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: bad utime/stime in %q", b)
	}
	return time.Duration(u+s) * time.Second / clockTick, nil
}

// procHWM returns the peak resident set (VmHWM) of pid in bytes.
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmHWM:")
}

func parseStatusKB(b []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("bench: unexpected %s line %q", key, sc.Text())
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("bench: no %s in status", key)
}

// netlinkSock is one NETLINK_NETFILTER socket of /proc/<pid>/net/netlink.
type netlinkSock struct {
	Portid uint32
	Rmem   uint64 // bytes queued for reading
	Drops  uint64 // datagrams (whole kernel batches) dropped on overflow
}

// netfilterSockets lists the NETLINK_NETFILTER (protocol 12) sockets of the
// network namespace pid lives in.
func netfilterSockets(pid int) ([]netlinkSock, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netlink", pid))
	if err != nil {
		return nil, err
	}
	return parseNetlink(b)
}

// parseNetlink parses /proc/net/netlink:
// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode.
func parseNetlink(b []byte) ([]netlinkSock, error) {
	var out []netlinkSock
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if first {
			first = false
			if len(f) < 9 || f[1] != "Eth" || f[4] != "Rmem" || f[8] != "Drops" {
				return nil, fmt.Errorf("bench: unexpected /proc/net/netlink header %q", sc.Text())
			}
			continue
		}
		if len(f) < 9 || f[1] != "12" {
			continue
		}
		pid, err1 := strconv.ParseUint(f[2], 10, 32)
		rmem, err2 := strconv.ParseUint(f[4], 10, 64)
		drops, err3 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("bench: bad /proc/net/netlink line %q", sc.Text())
		}
		out = append(out, netlinkSock{Portid: uint32(pid), Rmem: rmem, Drops: drops})
	}
	return out, sc.Err()
}

// groupBound reports whether NFLOG group g has an instance in the network
// namespace of pid (/proc/<pid>/net/netfilter/nfnetlink_log).
func groupBound(pid int, g int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_log", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == strconv.Itoa(g) {
			return true
		}
	}
	return false
}

// machineBusy returns the fraction of all CPUs' time that was not idle over d.
func machineBusy(d time.Duration) (float64, error) {
	a, err := readProcStat()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b, err := readProcStat()
	if err != nil {
		return 0, err
	}
	total := float64(b[0] - a[0])
	if total <= 0 {
		return 0, nil
	}
	return 1 - float64(b[1]-a[1])/total, nil
}

// readProcStat returns total and idle(+iowait) jiffies of the "cpu" line.
func readProcStat() ([2]uint64, error) {
	var r [2]uint64
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return r, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return r, fmt.Errorf("bench: unexpected /proc/stat %q", line)
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return r, err
		}
		r[0] += n
		if i == 3 || i == 4 { // idle, iowait
			r[1] += n
		}
	}
	return r, nil
}

// procRuntime returns the precise on-CPU time of the live threads of pid.
func procRuntime(pid int) (time.Duration, error) {
	ts, err := procThreadRuntimes(pid)
	var sum time.Duration
	for _, t := range ts {
		sum += t
	}
	return sum, err
}

// procThreadRuntimes returns the on-CPU time of every live thread of pid by
// thread id: the first field of /proc/<pid>/task/<tid>/schedstat
// (sum_exec_runtime, ns, including the current run). Unlike utime+stime it
// is not rounded to timer ticks, which matters here: NFLOG flushes a batch
// from a jiffies timer, so the reader wakes in step with the tick. A thread
// that has exited is no longer listed; windowCPU accounts for those.
func procThreadRuntimes(pid int) (map[int]time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(tasks))
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return nil, err
		}
		out[tid] = ns
	}
	return out, nil
}

// parseSchedstat reads the first of the three numbers of a schedstat file.
func parseSchedstat(b []byte) (time.Duration, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("bench: unexpected schedstat %q", b)
	}
	ns, err := strconv.ParseUint(f[0], 10, 63)
	if err != nil {
		return 0, fmt.Errorf("bench: unexpected schedstat %q", b)
	}
	return time.Duration(ns), nil
}

// threadCounts says whose time windowCPU summed.
type threadCounts struct {
	counted int // threads whose time is in the sum
	exited  int // of them, threads that exited (time from their exit record)
	missed  int // threads that exited without an exit record: their time after start is missing
}

// windowCPU is the CPU time the threads of a process used between two
// readings of procThreadRuntimes: every thread alive at the end (from zero if
// it started later), and every thread that exited in between, up to its
// exit as recorded in exited (tid -> final runtime, from the tracer). A
// thread that vanished without an exit record counts as missed.
func windowCPU(start, end, exited map[int]time.Duration) (time.Duration, threadCounts) {
	var sum time.Duration
	var n threadCounts
	for tid, t := range end {
		if t0, ok := start[tid]; ok && t0 <= t {
			sum += t - t0
		} else {
			sum += t // a new thread (or a reused tid, whose start was another thread's)
		}
		n.counted++
	}
	for tid, t := range exited {
		if _, alive := end[tid]; alive {
			continue // a reused tid: the live thread was counted
		}
		sum += t - min(t, start[tid])
		n.counted++
		n.exited++
	}
	for tid := range start {
		_, alive := end[tid]
		_, recorded := exited[tid]
		if !alive && !recorded {
			n.missed++
		}
	}
	return sum, n
}

// waitQuiet waits until the machine is idle enough and returns the busy
// fraction it saw last.
func waitQuiet(below float64, limit time.Duration) float64 {
	deadline := time.Now().Add(limit)
	for {
		b, err := machineBusy(250 * time.Millisecond)
		if err != nil || b < below || time.Now().After(deadline) {
			return b
		}
	}
}

// pinProcess moves every thread of the process to cpu (new threads inherit
// it) and returns a function that restores the previous mask.
func pinProcess(cpu int) (func(), error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	set.Set(cpu)
	apply := func(s *unix.CPUSet) error {
		tids, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, s); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
		return nil
	}
	var mu sync.Mutex
	if err := apply(&set); err != nil {
		return nil, err
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		_ = apply(&old)
	}, nil
}
