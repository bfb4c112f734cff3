package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/nfdrop/nfdrop_exporter/collector/nsfacts"
	"golang.org/x/sys/unix"
)

// recvTracer watches one receiver from outside, without changing it: small
// BPF programs on the kernel's raw syscall tracepoints (tp_btf sys_enter and
// sys_exit) see every receive call (recvfrom, recvmsg, recvmmsg) the
// receiver's process makes on its NFLOG socket and keep the longest time
// between two of them; a third one, on sched_process_exit, records the final
// CPU time of every thread of the process that exits, which
// /proc/PID/task/*/schedstat no longer shows.
//
// Only one thread reads a given socket at a time (every receiver benched
// here has one reader per group), so the programs update the shared state
// without atomics.
type recvTracer struct {
	coll  *ebpf.Collection
	links []link.Link
}

// recvGaps is what the tracer saw since its last reset.
type recvGaps struct {
	Calls     uint64        // receive calls on the socket
	DataCalls uint64        // of them, calls that returned data
	MaxGap    time.Duration // longest time from one call's start to the next one's
	// MaxBusyGap is the longest time from a call that returned data to the
	// next call: the handling of one datagram plus any preemption during it,
	// without the time the reader waited for data.
	MaxBusyGap time.Duration
	MaxGapEnd  int64 // CLOCK_MONOTONIC ns of the call that ended MaxGap
}

// Offsets (bytes) of the tracer's per-socket state, one array element of
// stateWords uint64s.
const (
	stLastEnter = 0 * 8
	stLastData  = 1 * 8 // end of the last call that returned data; 0 once the next call started
	stMaxGap    = 2 * 8
	stMaxBusy   = 3 * 8
	stCalls     = 4 * 8
	stDataCalls = 5 * 8
	stMaxGapEnd = 6 * 8
	stateWords  = 8
)

// maxExitedThreads bounds the exited-thread table; a receiver that ends more
// threads than this during one run would be reported as missed ones.
const maxExitedThreads = 4096

// initialPIDNamespace is the inode of the initial PID namespace
// (PROC_PID_INIT_INO): BPF sees the pids of that namespace.
const initialPIDNamespace = 0xEFFFFFFC

// startRecvTracer loads and attaches the programs for process pid and its
// socket descriptor fd.
func startRecvTracer(pid, fd int) (*recvTracer, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("bench: the receive-call tracer reads amd64 syscall registers; it does not run on %s (use --no-recv-trace)", runtime.GOARCH)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err == nil && st.Ino != initialPIDNamespace {
		return nil, errors.New("bench: the receive-call tracer needs the bench to run in the initial PID namespace (BPF sees those pids); run it on the host or use --no-recv-trace")
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("bench: the receive-call tracer needs the kernel's BTF (/sys/kernel/btf/vmlinux): %w", err)
	}
	off, err := kernelOffsets(kernel)
	if err != nil {
		return nil, err
	}
	spec := tracerSpec(uint32(pid), int32(fd), off)
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("bench: load the receive-call tracer: %+v", ve)
		}
		return nil, fmt.Errorf("bench: load the receive-call tracer (needs root and BPF): %w", err)
	}
	t := &recvTracer{coll: coll}
	for _, name := range []string{"recv_enter", "recv_exit", "thread_exit"} {
		l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[name], AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			t.close()
			return nil, fmt.Errorf("bench: attach the receive-call tracer (%s): %w", name, err)
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// traceOffsets are the kernel structure offsets the programs read.
type traceOffsets struct {
	regsFD      int16 // pt_regs.di: a syscall's first argument
	regsNr      int16 // pt_regs.orig_ax: the syscall number, also at exit
	taskRuntime int16 // task_struct.se.sum_exec_runtime
}

func kernelOffsets(kernel *btf.Spec) (traceOffsets, error) {
	var o traceOffsets
	var regs, task *btf.Struct
	if err := kernel.TypeByName("pt_regs", &regs); err != nil {
		return o, fmt.Errorf("bench: kernel BTF: %w", err)
	}
	if err := kernel.TypeByName("task_struct", &task); err != nil {
		return o, fmt.Errorf("bench: kernel BTF: %w", err)
	}
	fd, err1 := memberOffset(regs, "di")
	nr, err2 := memberOffset(regs, "orig_ax")
	se, err3 := memberOffset(task, "se")
	if err := errors.Join(err1, err2, err3); err != nil {
		return o, err
	}
	var seType *btf.Struct
	for _, m := range task.Members {
		if m.Name == "se" {
			seType, _ = btf.UnderlyingType(m.Type).(*btf.Struct)
		}
	}
	if seType == nil {
		return o, errors.New("bench: kernel BTF: task_struct.se is not a struct")
	}
	rt, err := memberOffset(seType, "sum_exec_runtime")
	if err != nil {
		return o, err
	}
	if se+rt > 1<<15-8 {
		return o, fmt.Errorf("bench: kernel BTF: task_struct.se.sum_exec_runtime at %d is beyond a BPF load's offset", se+rt)
	}
	return traceOffsets{regsFD: int16(fd), regsNr: int16(nr), taskRuntime: int16(se + rt)}, nil
}

func memberOffset(s *btf.Struct, name string) (int, error) {
	for _, m := range s.Members {
		if m.Name == name {
			if m.Offset%8 != 0 {
				return 0, fmt.Errorf("bench: kernel BTF: %s.%s is a bit field", s.Name, name)
			}
			return int(m.Offset / 8), nil
		}
	}
	return 0, fmt.Errorf("bench: kernel BTF: %s has no member %s", s.Name, name)
}

// tracerSpec builds the three programs; pid and fd are compiled in.
func tracerSpec(pid uint32, fd int32, off traceOffsets) *ebpf.CollectionSpec {
	recvCalls := []int32{unix.SYS_RECVFROM, unix.SYS_RECVMSG, unix.SYS_RECVMMSG}
	// recvOnSocket goes on only for a receive syscall (its number in
	// register nr) on the NFLOG socket, else exits; it leaves the time in
	// register now.
	recvOnSocket := func(nr, now asm.Register) asm.Instructions {
		var ins asm.Instructions
		for _, call := range recvCalls {
			ins = append(ins, asm.JEq.Imm(nr, call, "match"))
		}
		return append(ins,
			asm.Ja.Label("exit"),
			asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord).WithSymbol("match"),
			asm.LoadMem(asm.R3, asm.R3, off.regsFD, asm.DWord),
			asm.JNE.Imm(asm.R3, fd, "exit"),
			asm.FnKtimeGetNs.Call(),
			asm.Mov.Reg(now, asm.R0),
		)
	}
	// ourProcess continues only for threads of pid (R6 keeps the context).
	ourProcess := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.JNE.Imm(asm.R0, int32(pid), "exit"),
	}
	// lookupState leaves the state's address in R8, or exits.
	lookupState := asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("state"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R8, asm.R0),
	}
	exit := asm.Instructions{
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	}

	// sys_enter(struct pt_regs *regs, long id)
	enter := append(asm.Instructions{}, ourProcess...)
	enter = append(enter, asm.LoadMem(asm.R2, asm.R6, 8, asm.DWord))
	enter = append(enter, recvOnSocket(asm.R2, asm.R7)...)
	enter = append(enter, lookupState...)
	enter = append(enter,
		// The gap since the previous call; for the first call after a
		// reset, since the previous call returned data (its start was
		// before the reset), so that a gap is never shorter than a busy gap.
		asm.LoadMem(asm.R1, asm.R8, stLastEnter, asm.DWord),
		asm.JNE.Imm(asm.R1, 0, "gap"),
		asm.LoadMem(asm.R1, asm.R8, stLastData, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "busy"),
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("gap"),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.LoadMem(asm.R3, asm.R8, stMaxGap, asm.DWord),
		asm.JLE.Reg(asm.R2, asm.R3, "busy"),
		asm.StoreMem(asm.R8, stMaxGap, asm.R2, asm.DWord),
		asm.StoreMem(asm.R8, stMaxGapEnd, asm.R7, asm.DWord),
		// The time since the previous call returned data.
		asm.LoadMem(asm.R1, asm.R8, stLastData, asm.DWord).WithSymbol("busy"),
		asm.JEq.Imm(asm.R1, 0, "store"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.Mov.Imm(asm.R3, 0),
		asm.StoreMem(asm.R8, stLastData, asm.R3, asm.DWord),
		asm.LoadMem(asm.R3, asm.R8, stMaxBusy, asm.DWord),
		asm.JLE.Reg(asm.R2, asm.R3, "store"),
		asm.StoreMem(asm.R8, stMaxBusy, asm.R2, asm.DWord),
		asm.StoreMem(asm.R8, stLastEnter, asm.R7, asm.DWord).WithSymbol("store"),
		asm.LoadMem(asm.R1, asm.R8, stCalls, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stCalls, asm.R1, asm.DWord),
	)
	enter = append(enter, exit...)

	// sys_exit(struct pt_regs *regs, long ret): the registers still hold the
	// syscall number (orig_ax) and the first argument (di).
	exitProg := append(asm.Instructions{}, ourProcess...)
	exitProg = append(exitProg,
		asm.LoadMem(asm.R7, asm.R6, 8, asm.DWord),
		asm.JSLE.Imm(asm.R7, 0, "exit"),
		asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R3, off.regsNr, asm.DWord),
	)
	exitProg = append(exitProg, recvOnSocket(asm.R2, asm.R9)...)
	exitProg = append(exitProg, lookupState...)
	exitProg = append(exitProg,
		asm.StoreMem(asm.R8, stLastData, asm.R9, asm.DWord),
		asm.LoadMem(asm.R1, asm.R8, stDataCalls, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stDataCalls, asm.R1, asm.DWord),
	)
	exitProg = append(exitProg, exit...)

	// sched_process_exit(struct task_struct *p, bool group_dead), run by the
	// exiting thread itself: its tid and final runtime.
	threadExit := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentPidTgid.Call(),
		asm.Mov.Reg32(asm.R7, asm.R0),
		asm.RSh.Imm(asm.R0, 32),
		asm.JNE.Imm(asm.R0, int32(pid), "exit"),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.DWord),
		asm.LoadMem(asm.R3, asm.R2, off.taskRuntime, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("exited"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	}
	threadExit = append(threadExit, exit...)

	prog := func(name, attachTo string, ins asm.Instructions) *ebpf.ProgramSpec {
		return &ebpf.ProgramSpec{Name: name, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: attachTo,
			Instructions: ins, License: "Dual MIT/GPL"}
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"state":  {Name: "state", Type: ebpf.Array, KeySize: 4, ValueSize: stateWords * 8, MaxEntries: 1},
			"exited": {Name: "exited", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: maxExitedThreads},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"recv_enter":  prog("recv_enter", "sys_enter", enter),
			"recv_exit":   prog("recv_exit", "sys_exit", exitProg),
			"thread_exit": prog("thread_exit", "sched_process_exit", threadExit),
		},
	}
}

// reset starts a new measurement: the gaps and the exited threads are
// forgotten.
func (t *recvTracer) reset() error {
	if err := t.coll.Maps["state"].Put(uint32(0), make([]byte, stateWords*8)); err != nil {
		return fmt.Errorf("bench: reset the receive-call tracer: %w", err)
	}
	m := t.coll.Maps["exited"]
	var tid uint32
	var keys []uint32
	var rt uint64
	for it := m.Iterate(); it.Next(&tid, &rt); {
		keys = append(keys, tid)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("bench: reset the receive-call tracer: %w", err)
		}
	}
	return nil
}

// gaps reads the receive-call state.
func (t *recvTracer) gaps() (recvGaps, error) {
	var v [stateWords]uint64
	if err := t.coll.Maps["state"].Lookup(uint32(0), &v); err != nil {
		return recvGaps{}, fmt.Errorf("bench: read the receive-call tracer: %w", err)
	}
	return recvGaps{
		Calls:      v[stCalls/8],
		DataCalls:  v[stDataCalls/8],
		MaxGap:     time.Duration(v[stMaxGap/8]),
		MaxBusyGap: time.Duration(v[stMaxBusy/8]),
		MaxGapEnd:  int64(v[stMaxGapEnd/8]),
	}, nil
}

// exitedRuntimes returns the final runtime of every thread of the process
// that exited since the last reset, by thread id.
func (t *recvTracer) exitedRuntimes() (map[int]time.Duration, error) {
	out := map[int]time.Duration{}
	var tid uint32
	var rt uint64
	it := t.coll.Maps["exited"].Iterate()
	for it.Next(&tid, &rt) {
		out[int(tid)] = time.Duration(rt)
	}
	return out, it.Err()
}

func (t *recvTracer) close() {
	for _, l := range t.links {
		l.Close()
	}
	t.coll.Close()
}

// monotonicNow is CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns.
func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// nflogSocketFD returns the descriptor number, in process pid, of the
// netlink socket that binds NFLOG group g in pid's network namespace: the
// group's port id (/proc/PID/net/netfilter/nfnetlink_log) gives the socket's
// inode (/proc/PID/net/netlink), which one of the process's descriptors
// links to.
func nflogSocketFD(pid, g int) (int, error) {
	proc := fmt.Sprintf("/proc/%d", pid)
	bindings, err := parseFile(filepath.Join(proc, "net", "netfilter", "nfnetlink_log"), nsfacts.ParseNFLOGInstances)
	if err != nil {
		return 0, err
	}
	port, found := uint32(0), false
	for _, b := range bindings {
		if int(b.Group) == g {
			port, found = b.PortID, true
		}
	}
	if !found {
		return 0, fmt.Errorf("bench: NFLOG group %d is not bound", g)
	}
	socks, err := parseFile(filepath.Join(proc, "net", "netlink"), nsfacts.ParseNetlink)
	if err != nil {
		return 0, err
	}
	var inode uint64
	for _, s := range socks {
		if s.Protocol == unix.NETLINK_NETFILTER && s.PortID == port {
			inode = s.Inode
		}
	}
	if inode == 0 {
		return 0, fmt.Errorf("bench: no netlink socket with port id %d", port)
	}
	fds, err := os.ReadDir(filepath.Join(proc, "fd"))
	if err != nil {
		return 0, err
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, d := range fds {
		if l, err := os.Readlink(filepath.Join(proc, "fd", d.Name())); err == nil && l == want {
			return strconv.Atoi(d.Name())
		}
	}
	return 0, fmt.Errorf("bench: process %d holds no descriptor of %s (group %d)", pid, want, g)
}

// parseFile hands the file at path to parse.
func parseFile[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f)
}

// traceNote shortens a tracer error for the tables.
func traceNote(err error) string {
	return strings.TrimPrefix(err.Error(), "bench: ")
}
