//go:build linux

package ruleset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds one Read, retries included.
const DefaultTimeout = 5 * time.Second

// MaxAnonymousSets bounds the anonymous sets ("{ 80, 443 }" in a rule)
// whose elements a read dumps (one dump each) to compare the conditions
// that use them; beyond it a condition on such a set never equals another.
const MaxAnonymousSets = 256

// DefaultAttempts is how often Read tries when the ruleset changes while
// it is read.
const DefaultAttempts = 3

// ErrNoNetAdmin: reading nf_tables needs CAP_NET_ADMIN in the namespace.
var ErrNoNetAdmin = errors.New("reading the nf_tables ruleset needs CAP_NET_ADMIN: run as root or grant the capability (AmbientCapabilities=CAP_NET_ADMIN in systemd, setcap cap_net_admin+ep on the binary)")

// ErrNoNFTables: the kernel has no nf_tables (or no nfnetlink).
var ErrNoNFTables = errors.New("this kernel has no nf_tables: load the module (modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES; iptables-legacy rules are not readable over nf_tables")

// ChangingError says that the ruleset changed during every attempt to read
// it (a firewall reload in a loop, or a program that rewrites it
// constantly).
type ChangingError struct{ Attempts int }

func (e *ChangingError) Error() string {
	return fmt.Sprintf("the nf_tables ruleset changed while it was read, %d times in a row; try again when the firewall is idle", e.Attempts)
}

// TimeoutError says that reading the ruleset took longer than allowed.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("reading the nf_tables ruleset took longer than %s (a very large ruleset, or a busy kernel)", e.Timeout)
}

// Netlink reads the ruleset over nf_tables netlink.
type Netlink struct {
	// Timeout bounds one Read, retries included (0: DefaultTimeout).
	Timeout time.Duration
	// Attempts is how often Read tries when the ruleset changes while it
	// is read (0: DefaultAttempts).
	Attempts int
	// NetNS is a file descriptor of the network namespace to read; 0 reads
	// the calling thread's.
	NetNS int

	// between runs after an attempt's dumps and before the generation is
	// read again (tests change the ruleset there).
	between func(attempt int)
}

// Read reads one consistent snapshot: the generation id is read before and
// after the dumps, and every dump message carries it; when they disagree
// (the ruleset changed in between) the read starts again, up to Attempts
// times.
func (n Netlink) Read() (*Snapshot, error) {
	start := time.Now()
	raw, attempt, took, err := n.read(start)
	if err != nil {
		return nil, err
	}
	snap, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	snap.ReadAt, snap.ReadTook, snap.Attempts = time.Now(), took, attempt
	return snap, nil
}

// ReadMessages returns the messages of one consistent read, as Decode and
// Snapshot.Recount take them (tests record real rulesets with it).
func (n Netlink) ReadMessages() ([]byte, error) {
	raw, _, _, err := n.read(time.Now())
	return raw, err
}

func (n Netlink) read(start time.Time) (raw []byte, attempt int, took time.Duration, err error) {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: n.NetNS})
	if err != nil {
		return nil, 0, 0, classify(err, timeout)
	}
	defer conn.Close()
	if err := conn.SetDeadline(start.Add(timeout)); err != nil {
		return nil, 0, 0, err
	}
	for attempt = 1; attempt <= attempts; attempt++ {
		t0 := time.Now()
		raw, ok, err := n.attempt(conn, attempt)
		if err != nil {
			if retryable(err) && attempt < attempts {
				continue
			}
			return nil, attempt, 0, classify(err, timeout)
		}
		if ok {
			return raw, attempt, time.Since(t0), nil
		}
	}
	return nil, attempts, 0, &ChangingError{Attempts: attempts}
}

// attempt dumps everything once; ok is false when the generation changed.
func (n Netlink) attempt(conn *netlink.Conn, attempt int) (raw []byte, ok bool, err error) {
	genMsg, gen, err := getGen(conn)
	if err != nil {
		return nil, false, err
	}
	raw = append(raw, genMsg...)
	consistent := true
	dump := func(typ uint16, fam Family, attrs []netlink.Attribute) ([]netlink.Message, error) {
		msgs, err := dumpMsgs(conn, typ, fam, attrs)
		if err != nil {
			return nil, err
		}
		size := 0
		for _, m := range msgs {
			size += int(m.Header.Length)
		}
		raw = slices.Grow(raw, size)
		for _, m := range msgs {
			if m.Header.Flags&netlink.DumpInterrupted != 0 || len(m.Data) < 4 || binary.BigEndian.Uint16(m.Data[2:]) != uint16(gen) {
				consistent = false
			}
			if raw, err = appendMessage(raw, m); err != nil {
				return nil, err
			}
		}
		return msgs, nil
	}
	for _, typ := range []uint16{msgGetTable, msgGetChain, msgGetObj} {
		if _, err := dump(typ, 0, nil); err != nil {
			return nil, false, err
		}
	}
	sets, err := dump(msgGetSet, 0, nil)
	if err != nil {
		return nil, false, err
	}
	anonymous := 0
	for _, m := range sets {
		if len(m.Data) < 4 {
			continue
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, false, err
		}
		flags, _ := as.u32(setFlags)
		dt, _ := as.u32(setDataType)
		switch {
		case flags&setFlagMap != 0 && dt == dataTypeVerdict:
		case flags&setFlagAnon != 0 && flags&setFlagMap == 0 && anonymous < MaxAnonymousSets:
			anonymous++
		default:
			continue
		}
		tbl, _ := as.get(setTable)
		name, _ := as.get(setName)
		if _, err := dump(msgGetSetElem, Family(m.Data[0]), []netlink.Attribute{
			{Type: setElemListTable, Data: tbl},
			{Type: setElemListSet, Data: name},
		}); err != nil {
			return nil, false, err
		}
	}
	if _, err := dump(msgGetRule, 0, nil); err != nil {
		return nil, false, err
	}
	if n.between != nil {
		n.between(attempt)
	}
	_, after, err := getGen(conn)
	if err != nil {
		return nil, false, err
	}
	return raw, consistent && after == gen, nil
}

// appendMessage appends m to b as m.MarshalBinary writes it, without
// allocating for each message.
func appendMessage(b []byte, m netlink.Message) ([]byte, error) {
	l := int(m.Header.Length)
	if l < nlmsg.HeaderLen || l%4 != 0 || len(m.Data) > l-nlmsg.HeaderLen {
		return nil, fmt.Errorf("netlink message of length %d with %d bytes of data", l, len(m.Data))
	}
	var h [nlmsg.HeaderLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(h[0:], m.Header.Length)
	ne.PutUint16(h[4:], uint16(m.Header.Type))
	ne.PutUint16(h[6:], uint16(m.Header.Flags))
	ne.PutUint32(h[8:], m.Header.Sequence)
	ne.PutUint32(h[12:], m.Header.PID)
	b = append(b, h[:]...)
	b = append(b, m.Data...)
	return append(b, make([]byte, l-nlmsg.HeaderLen-len(m.Data))...), nil
}

func getGen(conn *netlink.Conn) ([]byte, uint32, error) {
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(msgType(msgGetGen)), Flags: netlink.Request},
		Data:   []byte{0, 0, 0, 0},
	})
	if err != nil {
		return nil, 0, err
	}
	for _, m := range msgs {
		if uint16(m.Header.Type) != msgType(msgNewGen) || len(m.Data) < 4 {
			continue
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, 0, err
		}
		if id, ok := as.u32(genID); ok {
			b, err := m.MarshalBinary()
			return b, id, err
		}
	}
	return nil, 0, errors.New("nf_tables sent no generation id")
}

func dumpMsgs(conn *netlink.Conn, typ uint16, fam Family, attrs []netlink.Attribute) ([]netlink.Message, error) {
	data := []byte{byte(fam), 0, 0, 0}
	if len(attrs) > 0 {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return nil, err
		}
		data = append(data, b...)
	}
	return conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(msgType(typ)), Flags: netlink.Request | netlink.Dump},
		Data:   data,
	})
}

// retryable errors come from a ruleset that changed between two dumps (a
// set deleted before its elements were dumped).
func retryable(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN)
}

// classify turns the kernel's answers into errors that say what to do.
func classify(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return ErrNoNetAdmin
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		// nfnetlink answers EINVAL to a well-formed request for a
		// subsystem that is not registered.
		return fmt.Errorf("%w (%v)", ErrNoNFTables, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &TimeoutError{Timeout: timeout}
	}
	return fmt.Errorf("reading the nf_tables ruleset: %w", err)
}
