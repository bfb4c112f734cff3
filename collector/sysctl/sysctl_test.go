package sysctl

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fakeDir writes a /proc/sys/net/netfilter look-alike with files (name:
// content) and returns its path.
func fakeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRead(t *testing.T) {
	// nf_conntrack_tcp_ignore_invalid_rst is left out, as on kernels before 5.14.
	dir := fakeDir(t, map[string]string{
		"nf_conntrack_tcp_loose": "1", "nf_conntrack_tcp_be_liberal": "0", "nf_conntrack_tcp_max_retrans": "3",
		"nf_conntrack_events": "2", "nf_conntrack_timestamp": "0", "nf_conntrack_count": "17",
		"nf_conntrack_tcp_timeout_close_wait": "60", "nf_conntrack_tcp_timeout_time_wait": "120",
		"nf_conntrack_tcp_timeout_established": "432000",
		"nf_conntrack_max":                     "262144",
		"nf_conntrack_log_invalid":             "6",
		"nf_log/2":                             "nfnetlink_log",
		"nf_log/10":                            "NONE",
	})
	want := Settings{
		Conntrack:     []Value{{"tcp_loose", 1}, {"tcp_be_liberal", 0}, {"tcp_max_retrans", 3}, {"events", 2}, {"timestamp", 0}},
		TCPTimeouts:   []Value{{"established", 432000}, {"close_wait", 60}, {"time_wait", 120}},
		LogInvalid:    6,
		HasLogInvalid: true,
		Loggers:       []Logger{{"ipv4", "nfnetlink_log"}, {"ipv6", "NONE"}},
	}
	got := Read(dir)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read() = %+v\nwant %+v", got, want)
	}
	if v, ok := got.ConntrackValue("tcp_loose"); !ok || v != 1 {
		t.Errorf("ConntrackValue(tcp_loose) = %v, %v", v, ok)
	}
	if _, ok := got.ConntrackValue("tcp_ignore_invalid_rst"); ok {
		t.Error("ConntrackValue found a sysctl the kernel does not have")
	}
}

// A namespace without the conntrack module has no such files: nothing is read.
func TestReadMissing(t *testing.T) {
	if got := Read(filepath.Join(t.TempDir(), "none")); !reflect.DeepEqual(got, Settings{}) {
		t.Errorf("Read of a missing directory = %+v, want nothing", got)
	}
	if got := Read(fakeDir(t, map[string]string{"nf_conntrack_log_invalid": "300", "nf_conntrack_tcp_loose": "x"})); !reflect.DeepEqual(got, Settings{}) {
		t.Errorf("Read of values that are no numbers = %+v, want nothing", got)
	}
}
