package lab

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns"
)

// NetnsDir is where iproute2 keeps its named network namespaces.
const NetnsDir = netns.Dir

// InNetns runs f on the calling goroutine's OS thread while that thread is
// switched into the named network namespace, then switches it back
// (netns.Do).
//
// Sockets created by f belong to the namespace for their whole life, so a
// listener or connection made inside f can be used from any goroutine after
// InNetns returns. Goroutines started by f do NOT run in the namespace (they
// may be scheduled on any thread).
func InNetns(name string, f func() error) error { return netns.Do(name, f) }

// ListenTCP opens a TCP listener inside the named namespace.
func ListenTCP(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext dials from inside the named namespace. addr must be a literal
// IP:port (a name lookup could run on another thread, outside the namespace).
func DialContext(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are made inside the named
// namespace, e.g. to scrape an exporter that listens on 127.0.0.1 inside the
// lab's server namespace from the test process.
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialContext(ctx, ns, network, addr)
			},
			// A pooled connection would hide a dead listener behind an old
			// socket; scrapes are rare, so always dial.
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// SyncBuffer is a bytes.Buffer that a child process' output copier and the
// code reading it (tests, the bench) can use at the same time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
