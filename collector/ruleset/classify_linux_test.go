//go:build linux

package ruleset

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClassify: the kernel's answers become errors that say what to do. A
// kernel without nf_tables cannot be made on a shared test machine (the
// module is in use); nfnetlink answers EINVAL to a request for a subsystem
// that is not registered, and a kernel without nfnetlink refuses the socket
// with EPROTONOSUPPORT.
func TestClassify(t *testing.T) {
	wrap := func(e error) error { return fmt.Errorf("receive: %w", e) }
	for _, tc := range []struct {
		in   error
		want error
	}{
		{wrap(unix.EPERM), ErrNoNetAdmin},
		{wrap(unix.EINVAL), ErrNoNFTables},
		{wrap(unix.EPROTONOSUPPORT), ErrNoNFTables},
	} {
		if got := classify(tc.in, time.Second); !errors.Is(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.in, got, tc.want)
		}
	}
	var te *TimeoutError
	if got := classify(wrap(os.ErrDeadlineExceeded), 3*time.Second); !errors.As(got, &te) || te.Timeout != 3*time.Second {
		t.Errorf("deadline: %v", got)
	}
	if got := classify(wrap(unix.ENOBUFS), time.Second); errors.Is(got, ErrNoNFTables) || !errors.Is(got, unix.ENOBUFS) {
		t.Errorf("other errors keep their cause: %v", got)
	}
	if !retryable(wrap(unix.ENOENT)) || retryable(wrap(unix.EPERM)) {
		t.Error("retryable: ENOENT (a set gone between two dumps) is, EPERM is not")
	}
}
