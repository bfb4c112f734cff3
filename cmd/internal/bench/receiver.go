package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// Receiver kinds.
const (
	KindExporter = "exporter" // nfdrop_exporter: counts from /metrics
	KindEBPF     = "ebpf"     // nfdrop_exporter reading the eBPF drop source alone (--no-nflog.enable --ebpf.enable): counts every drop, from /metrics
	KindUlogd    = "ulogd"    // Debian's ulogd2, NFLOG input, PCAP output: counts pcap records
	KindCommand  = "command"  // any program that prints "received=N" (and optionally "lost=N", "mallocs=N") on stdout when sent SIGTERM
	// KindReference is the reference receiver (reference/reference.c): it
	// binds the group with Options.Settings and reports like KindCommand.
	KindReference = "reference"
)

// Receiver is one program the bench floods.
type Receiver struct {
	Name string   // table label
	Kind string   // KindExporter, KindEBPF, KindUlogd, KindCommand or KindReference
	Path string   // binary
	Args []string // extra arguments (exporter: flags after the bench's own)
	Env  []string // extra environment (KindCommand)
}

// exporter reports whether r is nfdrop_exporter, read through /metrics.
func (r Receiver) exporter() bool { return r.Kind == KindExporter || r.Kind == KindEBPF }

// group is the label value of the group the receiver's counts are in: the
// NFLOG group, or "ebpf".
func (r Receiver) group(o *Options) string {
	if r.Kind == KindEBPF {
		return "ebpf"
	}
	return strconv.Itoa(o.Group)
}

// process is a started receiver.
type process struct {
	rcv    Receiver
	cmd    *exec.Cmd
	pid    int
	dir    string
	stdout lab.SyncBuffer
	stderr lab.SyncBuffer
	url    string
	group  string // the group label of its counts
	client *http.Client
	done   chan error
}

// exporterPort is where the exporter listens inside the server namespace
// (its own loopback: nothing else listens there).
const exporterPort = 9786

// startReceiver starts r pinned to cpu in the lab's server namespace and
// waits until it has bound the group.
func startReceiver(ctx context.Context, l *lab.Lab, r Receiver, o *Options, dir string) (*process, error) {
	p := &process{rcv: r, dir: dir, group: r.group(o), done: make(chan error, 1)}
	cpu := strconv.Itoa(o.ReceiverCPU)
	var args []string
	switch r.Kind {
	case KindExporter, KindEBPF:
		p.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", exporterPort)
		p.client = lab.HTTPClient(l.Server, 5*time.Second)
		source := "--nflog.group=" + strconv.Itoa(o.Group)
		if r.Kind == KindEBPF {
			source = "--no-nflog.enable --ebpf.enable"
		}
		args = append(append([]string{"-c", cpu, r.Path,
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", exporterPort)}, strings.Fields(source)...), append([]string{"--log.level=warn"}, r.Args...)...)
	case KindUlogd:
		conf, err := writeUlogdConf(dir, o)
		if err != nil {
			return nil, err
		}
		args = append([]string{"-c", cpu, r.Path, "-c", conf}, r.Args...)
	case KindCommand:
		args = append([]string{"-c", cpu, r.Path}, r.Args...)
	case KindReference:
		args = append(append([]string{"-c", cpu, r.Path}, referenceArgs(o.Group, o.Settings)...), r.Args...)
	default:
		return nil, fmt.Errorf("bench: unknown receiver kind %q", r.Kind)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Server, "taskset"}, args...)...)
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.Env = append(os.Environ(), r.Env...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// ip netns exec and taskset exec in place: the pid is the receiver's.
	p.cmd, p.pid = cmd, cmd.Process.Pid
	go func() { p.done <- cmd.Wait() }()

	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for {
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("bench: %s exited at start: %v: %s", r.Name, err, tail(p.stderr.String()))
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		// The eBPF source binds no NFLOG group; its nfdrop_up says it is
		// attached and read.
		ready := r.Kind == KindEBPF || groupBound(p.pid, o.Group)
		if ready && r.exporter() {
			s, err := scrapeOnce(p.client, p.url, p.group)
			ready, lastErr = err == nil && s.Up == 1, err
		}
		if ready {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("bench: %s did not come up on group %s within 10s (%v): %s", r.Name, p.group, lastErr, tail(p.stderr.String()))
		}
	}
}

// writeUlogdConf writes the cheapest sensible ulogd2 configuration: NFLOG
// input with the exporter's batching and socket buffer, raw packets to a
// pcap file (no formatting), so that the file's record count is what ulogd
// received.
func writeUlogdConf(dir string, o *Options) (string, error) {
	pd := o.UlogdPluginDir
	for _, p := range []string{"ulogd_inppkt_NFLOG.so", "ulogd_raw2packet_BASE.so", "ulogd_output_PCAP.so"} {
		if _, err := os.Stat(filepath.Join(pd, p)); err != nil {
			return "", fmt.Errorf("bench: ulogd plugin %s missing (apt-get install ulogd2 ulogd2-pcap): %w", p, err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nlogfile=%q\nloglevel=5\n", filepath.Join(dir, "ulogd.log"))
	fmt.Fprintf(&b, "plugin=%q\nplugin=%q\nplugin=%q\n", filepath.Join(pd, "ulogd_inppkt_NFLOG.so"),
		filepath.Join(pd, "ulogd_raw2packet_BASE.so"), filepath.Join(pd, "ulogd_output_PCAP.so"))
	b.WriteString("stack=log1:NFLOG,base1:BASE,pcap1:PCAP\n\n[log1]\n")
	fmt.Fprintf(&b, "group=%d\n", o.Group)
	if o.UlogdDefaults {
		// Debian's shipped [log1]: socket buffer rmem_default, kernel batching defaults.
	} else {
		// The same group settings as the exporter's defaults, as far as ulogd
		// has them (it cannot set nlbufsiz, so batches stay one page).
		s := o.Settings
		fmt.Fprintf(&b, "netlink_socket_buffer_size=%d\nnetlink_socket_buffer_maxsize=%d\n", s.ReceiveBuffer, 2*s.ReceiveBuffer)
		fmt.Fprintf(&b, "netlink_qthreshold=%d\nnetlink_qtimeout=%d\n", s.QueueThreshold, s.FlushTimeout/(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "\n[pcap1]\nfile=%q\nsync=0\n", filepath.Join(dir, "ulogd.pcap"))
	path := filepath.Join(dir, "ulogd.conf")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// result is what a receiver reports when stopped.
type result struct {
	Received uint64
	Lost     uint64 // the receiver's own loss count (exporter: sequence gaps)
	HasLost  bool
	Mallocs  uint64 // KindCommand only: heap allocations while receiving
}

// stop ends the receiver and collects its counts. For the exporter, final
// must be a scrape taken after the flood drained.
func (p *process) stop(final *scrape) (result, error) {
	var r result
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var werr error
	select {
	case werr = <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		return r, fmt.Errorf("bench: %s did not exit within 10s of SIGTERM", p.rcv.Name)
	}
	switch p.rcv.Kind {
	case KindExporter, KindEBPF:
		if final == nil {
			return r, errors.New("bench: no final scrape")
		}
		r.Received, r.Lost, r.HasLost = uint64(final.Packets), uint64(final.Lost), true
	case KindUlogd:
		f, err := os.Open(filepath.Join(p.dir, "ulogd.pcap"))
		if err != nil {
			return r, fmt.Errorf("bench: ulogd wrote no pcap (%v); ulogd.log: %s", err, readTail(filepath.Join(p.dir, "ulogd.log")))
		}
		defer f.Close()
		r.Received, err = countPcap(f)
		if err != nil {
			return r, err
		}
	case KindCommand, KindReference:
		if werr != nil {
			return r, fmt.Errorf("bench: %s: %v: %s", p.rcv.Name, werr, tail(p.stderr.String()))
		}
		return parseCommandOutput(p.stdout.String())
	}
	return r, nil
}

// parseCommandOutput reads "key=value" words of a KindCommand receiver.
func parseCommandOutput(s string) (result, error) {
	var r result
	seen := false
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "received":
			r.Received, seen = n, true
		case "lost":
			r.Lost, r.HasLost = n, true
		case "mallocs":
			r.Mallocs = n
		}
	}
	if !seen {
		return r, fmt.Errorf("bench: receiver printed no received=N: %q", tail(s))
	}
	return r, nil
}

func (p *process) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b))
}
