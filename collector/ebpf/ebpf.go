// Package ebpf sees every packet netfilter drops in one network namespace,
// without any log rule: a BPF program on the kernel's skb:kfree_skb
// tracepoint keeps the drops whose reason is SKB_DROP_REASON_NETFILTER_DROP
// and hands each IPv4/IPv6 one, with its headers, to Go through a BPF ring
// buffer. It also counts every drop of the namespace by the kernel's drop
// reason. README.md says what it sees and what it cannot tell.
//
// # Accounting
//
// The program counts every netfilter drop it keeps (Counts.Matched) and every
// one the full ring buffer had no room for (Counts.Lost); each other one is a
// record. So once Read has drained the ring,
//
//	Matched == Read + Lost
//
// (a record that cannot be decoded, which never happens unless the Go and C
// sides disagree, is still handed on, without headers, and counted in
// Malformed too), and while drops flow Matched >= Read + Lost. Matched equals the kernel's
// counters of the rules and policies that dropped the packets, apart from the
// drops the kernel did not run the program for (Counts.Missed).
package ebpf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// DefaultRingSize is the ring buffer's default size: 8 MiB holds about 52000
// records (160 bytes each with the ring's header), the drops of a
// batchDelay plus the time the reader may be descheduled on a busy host.
const DefaultRingSize = 8 << 20

// batchDelay is how long Read lets records gather after it emptied the ring,
// while drops stream in; it bounds the extra delay of a record. Each wakeup
// of the reader costs far more than a record: the longer the delay, the
// fewer wakeups per drop, which needs a ring that holds a delay's drops.
const batchDelay = 10 * time.Millisecond

// vmlinuxBTF is where the running kernel publishes its BTF.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// Config configures Load. The zero value watches the process's own network
// namespace with a DefaultRingSize ring buffer.
type Config struct {
	// RingSize is the ring buffer's size in bytes: a power of two and a
	// multiple of the page size. 0 means DefaultRingSize.
	RingSize int
	// Netns is the file of the network namespace to watch, e.g.
	// /run/netns/NAME; "" means /proc/self/ns/net.
	Netns string
	// KernelTypes replaces the running kernel's BTF in the checks and the
	// CO-RE relocations (tests: a BTF without SKB_DROP_REASON_NETFILTER_DROP).
	KernelTypes *btf.Spec
}

// Program is the loaded and attached BPF program. Read, Counts and
// KernelDrops may run concurrently with each other; Read must not run twice
// at once.
type Program struct {
	objs    kfreeSkbObjects
	link    link.Link
	reader  *ringbuf.Reader
	reasons reasonTable
	netns   uint32 // inode number of the watched namespace

	// Read's state, reused for every record.
	reading   atomic.Bool
	raw       ringbuf.Record
	rec       Record
	clock     wallClock
	read      atomic.Uint64
	malformed atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// Load checks that the kernel and the process can run the program, loads it
// and attaches it to the tracepoint. The errors for a kernel without BTF,
// a kernel too old and missing privileges match ErrNoBTF, ErrKernelTooOld
// and ErrPermission (and ErrUnavailable).
func Load(cfg Config) (*Program, error) {
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	page := os.Getpagesize()
	if cfg.RingSize < page || cfg.RingSize&(cfg.RingSize-1) != 0 || cfg.RingSize > 1<<30 {
		return nil, fmt.Errorf("eBPF drop source: ring buffer size %d is not a power of two between the page size (%d) and 1 GiB", cfg.RingSize, page)
	}
	if cfg.Netns == "" {
		cfg.Netns = "/proc/self/ns/net"
	}

	kernel := cfg.KernelTypes
	if kernel == nil {
		if _, err := os.Stat(vmlinuxBTF); errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoBTF
		}
		var err error
		if kernel, err = btf.LoadKernelSpec(); err != nil {
			return nil, fmt.Errorf("eBPF drop source: read the kernel's BTF: %w", err)
		}
	}
	reasons, err := readReasons(kernel)
	if err != nil {
		return nil, err
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	ino, err := netnsInode(cfg.Netns)
	if err != nil {
		return nil, err
	}

	spec, err := loadKfreeSkb()
	if err != nil {
		return nil, err
	}
	spec.Maps[kfreeSkbMapDrops].MaxEntries = uint32(cfg.RingSize)
	spec.Maps[kfreeSkbMapReasons].MaxEntries = reasons.max + 1
	if err := spec.Variables[kfreeSkbVarNetnsIno].Set(ino); err != nil {
		return nil, fmt.Errorf("eBPF drop source: set the namespace: %w", err)
	}

	p := &Program{reasons: reasons, netns: ino}
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}}
	if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, refusedError(err)
		}
		return nil, fmt.Errorf("eBPF drop source: load the program: %w", err)
	}
	p.link, err = link.AttachTracing(link.TracingOptions{Program: p.objs.KfreeSkb, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		p.objs.Close()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, refusedError(err)
		}
		return nil, fmt.Errorf("eBPF drop source: attach to tracepoint kfree_skb: %w", err)
	}
	p.reader, err = ringbuf.NewReader(p.objs.Drops)
	if err != nil {
		p.link.Close()
		p.objs.Close()
		return nil, fmt.Errorf("eBPF drop source: open the ring buffer: %w", err)
	}
	p.raw.RawSample = make([]byte, recordSize)
	p.clock = newWallClock()
	return p, nil
}

// nsGetNsType is the ioctl NS_GET_NSTYPE (include/uapi/linux/nsfs.h):
// _IO(0xb7, 0x3).
const nsGetNsType = 0xb703

// netnsInode returns the inode number of a network namespace file, the number
// the kernel keeps in the namespace's ns.inum.
func netnsInode(path string) (uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("eBPF drop source: network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if typ, err := unix.IoctlRetInt(fd, nsGetNsType); err != nil || typ != unix.CLONE_NEWNET {
		return 0, fmt.Errorf("eBPF drop source: %s is not a network namespace", path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("eBPF drop source: network namespace %s: %w", path, err)
	}
	if st.Ino == 0 || st.Ino > 1<<32-1 {
		return 0, fmt.Errorf("eBPF drop source: network namespace %s has inode %d, which the kernel cannot hold", path, st.Ino)
	}
	return uint32(st.Ino), nil
}

// Netns returns the inode number of the watched network namespace.
func (p *Program) Netns() uint32 { return p.netns }

// ErrClosed is returned by the methods of a closed Program.
var ErrClosed = errors.New("eBPF drop source is closed")

// errReading is returned by a second concurrent Read.
var errReading = errors.New("eBPF drop source: Read is already running")

// Read reads the ring buffer until ctx is cancelled or the Program is closed
// (then it returns nil), calling fn for each record in the order the kernel
// reserved them. The Record and its Payload are valid only during the call;
// fn must not block for long, or the ring fills and drops are counted lost.
//
// Read sleeps in the kernel while no drop happens: the program wakes it
// when a record arrives and Read had caught up with the ring. Under a steady
// stream of drops (more than one per batchDelay), Read waits batchDelay
// after draining the ring before it reads on, so that the program finds it
// behind and does not wake it for every record (each wakeup costs the
// program several times its own run time).
func (p *Program) Read(ctx context.Context, fn func(*Record)) error {
	return p.readRecords(ctx, fn, nil)
}

// readRecords is Read that also calls drained, if set, each time the ring is
// empty: the end of a batch.
func (p *Program) readRecords(ctx context.Context, fn func(*Record), drained func()) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if !p.reading.CompareAndSwap(false, true) {
		return errReading
	}
	defer p.reading.Store(false)
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() {
		stop.Store(true)
		_ = p.reader.Flush() // wakes a Read that sleeps in the kernel
	})()
	var lastDrained uint64 // KernelTimeNs of the record that last emptied the ring
	for !stop.Load() {
		err := p.reader.ReadInto(&p.raw)
		switch {
		case err == nil:
		case errors.Is(err, ringbuf.ErrFlushed):
			continue // stop tells whether it was ctx
		case errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("eBPF drop source: read the ring buffer: %w", err)
		}
		if decodeRecord(p.raw.RawSample, &p.rec) {
			p.rec.TimestampNs = p.clock.wall(p.rec.KernelTimeNs)
		} else {
			// Still a drop: handed on without headers, so that it is
			// counted (as malformed) rather than lost from the sum.
			p.malformed.Add(1)
			p.rec = Record{TimestampNs: time.Now().UnixNano()}
		}
		fn(&p.rec)
		p.read.Add(1)
		if p.raw.Remaining != 0 {
			continue
		}
		if drained != nil {
			drained()
		}
		// The ring is empty. When it last was less than batchDelay ago,
		// drops are streaming in: let them gather.
		t := p.rec.KernelTimeNs
		busy := t-lastDrained < uint64(batchDelay)
		lastDrained = t
		if busy {
			// A plain sleep: short enough for Close and ctx to wait for,
			// and unlike a select it takes nothing from the heap.
			time.Sleep(batchDelay)
		}
	}
	return nil
}

// Counts is the accounting of the netfilter drops of the watched namespace
// (see Accounting in the package documentation).
type Counts struct {
	Matched   uint64 // netfilter drops of IPv4/IPv6 packets the program kept: each became a record or was lost
	Lost      uint64 // of Matched, those the full ring buffer had no room for
	Read      uint64 // records Read handed to its function, Malformed included
	Malformed uint64 // records Read could not decode and handed on without headers (never, unless the program and this package disagree)
	// Missed counts the tracepoint's events the kernel did not run the
	// program for because it was already running on that CPU (an
	// interrupt freeing a packet during a run): drops of any reason and
	// namespace that neither Matched nor KernelDrops saw.
	Missed uint64
}

// Counts returns the program's counters summed over CPUs, and Read's.
func (p *Program) Counts() (Counts, error) {
	if p.closed.Load() {
		return Counts{}, ErrClosed
	}
	var c Counts
	// Read before Lost before Matched: each drop is matched before it is
	// lost or read, so counts read in this order keep Matched >= Read +
	// Lost while drops flow.
	c.Read, c.Malformed = p.read.Load(), p.malformed.Load()
	var per []uint64
	for _, k := range []struct {
		slot uint32
		dst  *uint64
	}{{1, &c.Lost}, {0, &c.Matched}} {
		if err := p.objs.Counters.Lookup(k.slot, &per); err != nil {
			return Counts{}, fmt.Errorf("eBPF drop source: read the counters: %w", err)
		}
		for _, v := range per {
			*k.dst += v
		}
	}
	st, err := p.objs.KfreeSkb.Stats()
	if err != nil {
		return Counts{}, fmt.Errorf("eBPF drop source: read the program's statistics: %w", err)
	}
	c.Missed = st.RecursionMisses
	return c, nil
}

// ReasonCount is the number of packets of the watched namespace the kernel
// dropped for one reason.
type ReasonCount struct {
	// Reason is the kernel's name without SKB_DROP_REASON_, lower-cased
	// (no_socket, tcp_invalid_sequence, netfilter_drop, ...), or
	// ReasonUnknown for every value outside the kernel's enum.
	Reason string
	// Value is the enum value; the unknown slot has SKB_DROP_REASON_MAX.
	Value uint32
	Count uint64
}

// KernelDrops returns the drops of the watched namespace by the kernel's drop
// reason, in the enum's order, for every reason whose count is not 0, and
// netfilter_drop always. The kernel knows about 130 reasons and most never
// happen on a host: returning only those that did keeps the series few, and
// a reason's series, once there, stays (a count never goes back to 0).
// Drops of packets that have neither a device nor a socket cannot be placed
// in a namespace and are not counted.
func (p *Program) KernelDrops() ([]ReasonCount, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	n := int(p.reasons.max) + 1
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("eBPF drop source: %w", err)
	}
	keys := make([]uint32, n)
	values := make([]uint64, n*cpus)
	var cursor ebpf.MapBatchCursor
	got, err := p.objs.Reasons.BatchLookup(&cursor, keys, values, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("eBPF drop source: read the drop reasons: %w", err)
	}
	if got != n {
		return nil, fmt.Errorf("eBPF drop source: read %d of %d drop reasons", got, n)
	}
	var out []ReasonCount
	for i, k := range keys {
		var sum uint64
		for _, v := range values[i*cpus : (i+1)*cpus] {
			sum += v
		}
		if sum != 0 || k == p.reasons.netfilterDrop {
			out = append(out, ReasonCount{Reason: p.reasons.name(k), Value: k, Count: sum})
		}
	}
	return out, nil
}

// Close detaches the program and frees what Load took; a Read in progress
// returns. It is safe to call more than once.
func (p *Program) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		errs := []error{p.reader.Close(), p.link.Close(), p.objs.Close()}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
