// Package sysctl reads the netfilter sysctls of the exporter's network
// namespace that explain its drops: which late packets conntrack calls
// INVALID, whether DESTROY events exist, how long each TCP state lasts,
// and whether and where conntrack logs what it rejects. They are read when
// asked (at scrape time): operators change them at run time, and a dozen
// small procfs reads are cheap.
package sysctl

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultDir is where the netfilter sysctls of the calling process's network
// namespace are.
const DefaultDir = "/proc/sys/net/netfilter"

// Value is one numeric sysctl.
type Value struct {
	Name  string
	Value float64
}

// Logger is the default logger of one protocol family.
type Logger struct {
	Family string // ipv4 (nf_log.2) or ipv6 (nf_log.10)
	Name   string // nfnetlink_log, nf_log_ipv4, NONE ...
}

// Settings are the sysctls found; a missing one (an older kernel, or no
// conntrack module) is left out.
type Settings struct {
	// Conntrack are nf_conntrack_<name> for the names of ConntrackNames.
	Conntrack []Value
	// TCPTimeouts are nf_conntrack_tcp_timeout_<state> in seconds, by state.
	TCPTimeouts []Value
	// LogInvalid is nf_conntrack_log_invalid: the protocol number whose
	// INVALID packets conntrack logs (6 TCP, 255 all, 0 none).
	LogInvalid    uint8
	HasLogInvalid bool
	// Loggers are the families' default loggers (nf_log.2, nf_log.10).
	Loggers []Logger
}

// ConntrackNames are the sysctls that decide which late packets are INVALID
// (tcp_loose, tcp_be_liberal, tcp_ignore_invalid_rst, tcp_max_retrans) and
// whether and how DESTROY events exist (events, timestamp).
var ConntrackNames = []string{"tcp_loose", "tcp_be_liberal", "tcp_ignore_invalid_rst", "tcp_max_retrans", "events", "timestamp"}

// TCPStates are the states of nf_conntrack_tcp_timeout_<state>.
var TCPStates = []string{"syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close", "max_retrans", "unacknowledged"}

var loggerFiles = [...]struct{ family, file string }{{"ipv4", "2"}, {"ipv6", "10"}}

// Read reads the settings under dir ("" = DefaultDir).
func Read(dir string) Settings {
	if dir == "" {
		dir = DefaultDir
	}
	var s Settings
	for _, n := range ConntrackNames {
		if v, err := ReadUint(filepath.Join(dir, "nf_conntrack_"+n)); err == nil {
			s.Conntrack = append(s.Conntrack, Value{n, float64(v)})
		}
	}
	for _, st := range TCPStates {
		if v, err := ReadUint(filepath.Join(dir, "nf_conntrack_tcp_timeout_"+st)); err == nil {
			s.TCPTimeouts = append(s.TCPTimeouts, Value{st, float64(v)})
		}
	}
	if v, err := readString(filepath.Join(dir, "nf_conntrack_log_invalid")); err == nil {
		if n, err := strconv.ParseUint(v, 10, 8); err == nil {
			s.LogInvalid, s.HasLogInvalid = uint8(n), true
		}
	}
	for _, f := range loggerFiles {
		if v, err := readString(filepath.Join(dir, "nf_log", f.file)); err == nil {
			s.Loggers = append(s.Loggers, Logger{f.family, v})
		}
	}
	return s
}

// ConntrackValue returns the value of nf_conntrack_<name> if it was read.
func (s *Settings) ConntrackValue(name string) (float64, bool) {
	for _, v := range s.Conntrack {
		if v.Name == name {
			return v.Value, true
		}
	}
	return 0, false
}

// ReadUint reads a sysctl that holds one unsigned number.
func ReadUint(path string) (uint64, error) {
	v, err := readString(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 10, 64)
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
