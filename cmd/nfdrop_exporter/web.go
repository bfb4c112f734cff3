package main

import (
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"github.com/prometheus/exporter-toolkit/web"
)

// timeouts bound how long one HTTP connection may hold the server.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

// serverTimeouts suit scrapes: a scrape is one small GET answered in
// milliseconds, and Prometheus' scrape timeout is 10s by default and never
// longer than its interval. Write allows a slow client a minute to take the
// body; idle keeps a scraper's keep-alive connection across a 1m interval
// but closes connections nobody uses.
var serverTimeouts = timeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second,
	write:      time.Minute,
	idle:       2 * time.Minute,
}

func newServer(h http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
	}
}

// checkTelemetryPath accepts what http.ServeMux can route as one exact path
// next to the landing page at / and the summary: an absolute, clean path of
// URL-safe characters (a bad one would otherwise panic after the groups are
// bound).
func checkTelemetryPath(p string) error {
	if p == summary.Path {
		return fmt.Errorf("--web.telemetry-path=%q: the summary is served there; pick another path, such as /metrics", p)
	}
	ok := len(p) > 1 && p[0] == '/' && path.Clean(p) == p
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("--web.telemetry-path=%q: want an absolute path such as /metrics, other than / (the landing page), of letters, digits and -._~/", p)
	}
	return nil
}

// checkListenAddresses rejects listen addresses that net.Listen would take
// for something else (an empty one listens on a random port on every
// interface) or refuse only after the groups are bound. An explicit port 0
// asks for a random port and is allowed. With systemd socket
// activation the addresses are not used.
func checkListenAddresses(f *web.FlagConfig) error {
	if f.WebSystemdSocket != nil && *f.WebSystemdSocket {
		return nil
	}
	for _, a := range *f.WebListenAddresses {
		_, port, err := net.SplitHostPort(strings.TrimPrefix(a, "vsock://"))
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("--web.listen-address=%q: want [host]:port, such as :9786 or 127.0.0.1:9786", a)
		}
	}
	return nil
}
