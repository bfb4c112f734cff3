// Package nsfacts reads what a network namespace's /proc says about its
// netfilter set-up that nf_tables netlink does not show: which process
// binds each NFLOG group, whether iptables-legacy holds rules there, and
// the conntrack settings that decide what the firewall sees as INVALID.
package nsfacts

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/sysctl"
)

// Paths are where the facts are read; the zero value reads the calling
// thread's namespace.
type Paths struct {
	// ProcNet is the namespace's /proc/net (default /proc/thread-self/net,
	// which follows the thread, not the process).
	ProcNet string
	// ProcSys is /proc/sys, which shows the namespace of the thread that
	// opens it (default /proc/sys).
	ProcSys string
	// Proc is the procfs whose processes' descriptors name socket owners
	// (default /proc).
	Proc string
}

func (p Paths) withDefaults() Paths {
	if p.ProcNet == "" {
		p.ProcNet = "/proc/thread-self/net"
	}
	if p.ProcSys == "" {
		p.ProcSys = "/proc/sys"
	}
	if p.Proc == "" {
		p.Proc = "/proc"
	}
	return p
}

// Binding is one NFLOG group bound by a netlink socket.
type Binding struct {
	Group  uint16
	PortID uint32 // the socket's netlink port id
	// PID and Process name the process that holds the socket (0 and ""
	// when no process readable here holds it).
	PID     int
	Process string
}

// Facts are the namespace's facts.
type Facts struct {
	// NFLOGLoaded says that nfnetlink_log is loaded (without it no group
	// can be bound, and Bindings is empty).
	NFLOGLoaded bool
	Bindings    []Binding
	// Legacy lists the iptables-legacy tables that exist, by family ("ip",
	// "ip6"); their rules are invisible over nf_tables.
	Legacy map[string][]string
	// TCPLoose and LogInvalid are net.netfilter.nf_conntrack_tcp_loose and
	// nf_conntrack_log_invalid; nil when conntrack is not loaded here.
	TCPLoose   *int
	LogInvalid *int
}

// Bound returns the binding of a group, if any.
func (f Facts) Bound(group uint16) (Binding, bool) {
	for _, b := range f.Bindings {
		if b.Group == group {
			return b, true
		}
	}
	return Binding{}, false
}

// Read reads the facts. Files that do not exist (modules not loaded) leave
// their facts empty; other read errors are returned.
func Read(p Paths) (Facts, error) {
	p = p.withDefaults()
	var f Facts
	b, err := os.ReadFile(filepath.Join(p.ProcNet, "netfilter", "nfnetlink_log"))
	switch {
	case err == nil:
		f.NFLOGLoaded = true
		if f.Bindings, err = ParseNFLOGInstances(strings.NewReader(string(b))); err != nil {
			return f, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return f, err
	}
	if len(f.Bindings) > 0 {
		if err := nameOwners(p, f.Bindings); err != nil {
			return f, err
		}
	}
	f.Legacy = map[string][]string{}
	for fam, file := range map[string]string{"ip": "ip_tables_names", "ip6": "ip6_tables_names"} {
		b, err := os.ReadFile(filepath.Join(p.ProcNet, file))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return f, err
		}
		if names := strings.Fields(string(b)); len(names) > 0 {
			slices.Sort(names)
			f.Legacy[fam] = names
		}
	}
	settings := sysctl.Read(filepath.Join(p.ProcSys, "net", "netfilter"))
	if v, ok := settings.ConntrackValue("tcp_loose"); ok {
		n := int(v)
		f.TCPLoose = &n
	}
	if settings.HasLogInvalid {
		n := int(settings.LogInvalid)
		f.LogInvalid = &n
	}
	return f, nil
}

// maxLines bounds what the parsers read from one /proc file.
const maxLines = 1 << 20

// ParseNFLOGInstances parses /proc/net/netfilter/nfnetlink_log: one line
// per bound group, "group portid qlen copy_mode copy_range flush_timeout
// use" (the kernel's "%5d %6u %5d %1d %5d %6d %2d").
func ParseNFLOGInstances(r io.Reader) ([]Binding, error) {
	var out []Binding
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan(); n++ {
		if n >= maxLines {
			return out, errors.New("nfnetlink_log: too many lines")
		}
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return out, fmt.Errorf("nfnetlink_log line %d: %q: want group and port id", n+1, sc.Text())
		}
		g, err1 := strconv.ParseUint(fields[0], 10, 16)
		port, err2 := strconv.ParseUint(fields[1], 10, 32)
		if err1 != nil || err2 != nil {
			return out, fmt.Errorf("nfnetlink_log line %d: %q: want numbers", n+1, sc.Text())
		}
		out = append(out, Binding{Group: uint16(g), PortID: uint32(port)})
	}
	return out, sc.Err()
}

// NetlinkSocket is one line of /proc/net/netlink.
type NetlinkSocket struct {
	Protocol int
	PortID   uint32
	Inode    uint64
}

// ParseNetlink parses /proc/net/netlink: a header, then "sk Eth Pid Groups
// Rmem Wmem Dump Locks Drops Inode" per socket (Eth is the protocol, Pid
// the port id).
func ParseNetlink(r io.Reader) ([]NetlinkSocket, error) {
	var out []NetlinkSocket
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan(); n++ {
		if n >= maxLines {
			return out, errors.New("netlink: too many lines")
		}
		fields := strings.Fields(sc.Text())
		if n == 0 || len(fields) == 0 {
			continue // the header
		}
		if len(fields) < 10 {
			return out, fmt.Errorf("netlink line %d: %q: want 10 fields", n+1, sc.Text())
		}
		proto, err1 := strconv.Atoi(fields[1])
		port, err2 := strconv.ParseUint(fields[2], 10, 32)
		inode, err3 := strconv.ParseUint(fields[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return out, fmt.Errorf("netlink line %d: %q: want numbers", n+1, sc.Text())
		}
		out = append(out, NetlinkSocket{Protocol: proto, PortID: uint32(port), Inode: inode})
	}
	return out, sc.Err()
}

const netlinkNetfilter = 12 // NETLINK_NETFILTER

// nameOwners finds the process holding each binding's socket: the port id
// gives the socket's inode (/proc/net/netlink), and a process's descriptor
// links to "socket:[inode]".
func nameOwners(p Paths, bs []Binding) error {
	fh, err := os.Open(filepath.Join(p.ProcNet, "netlink"))
	if err != nil {
		return err
	}
	socks, err := ParseNetlink(fh)
	fh.Close()
	if err != nil {
		return err
	}
	want := map[uint64][]int{} // inode → indexes into bs
	for i, b := range bs {
		for _, s := range socks {
			if s.Protocol == netlinkNetfilter && s.PortID == b.PortID {
				want[s.Inode] = append(want[s.Inode], i)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	procs, err := os.ReadDir(p.Proc)
	if err != nil {
		return err
	}
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(p.Proc, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			idx, ok := want[inode]
			if !ok {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(p.Proc, d.Name(), "comm"))
			for _, i := range idx {
				bs[i].PID, bs[i].Process = pid, strings.TrimSpace(string(comm))
			}
			delete(want, inode)
			if len(want) == 0 {
				return nil
			}
		}
	}
	return nil
}
