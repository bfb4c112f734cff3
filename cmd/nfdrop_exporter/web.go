package main

import (
	"fmt"
	"net/http"
	"path"
	"time"
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
// next to the landing page at /: an absolute, clean path of URL-safe
// characters (a bad one would otherwise panic after the groups are bound).
func checkTelemetryPath(p string) error {
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
