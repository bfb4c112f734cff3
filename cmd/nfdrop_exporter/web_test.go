package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// TestServerTimeouts pins the timeouts the exporter serves with: before, only
// the header timeout was set and an idle keep-alive connection was never
// closed.
func TestServerTimeouts(t *testing.T) {
	want := timeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: time.Minute, idle: 2 * time.Minute}
	if serverTimeouts != want {
		t.Errorf("serverTimeouts = %+v, want %+v", serverTimeouts, want)
	}
	s := newServer(http.NotFoundHandler(), serverTimeouts)
	if s.ReadHeaderTimeout != want.readHeader || s.ReadTimeout != want.read || s.WriteTimeout != want.write || s.IdleTimeout != want.idle {
		t.Errorf("server timeouts: header %s read %s write %s idle %s, want %+v", s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, want)
	}
	// A long scrape must fit: the write timeout is above Prometheus' default
	// scrape timeout (10s) and the idle timeout above a 1m scrape interval.
	if want.write <= 10*time.Second || want.idle <= time.Minute || want.readHeader > want.read {
		t.Errorf("timeouts %+v do not suit scrapes", want)
	}
}

// TestIdleKeepAliveClosed serves through exporter-toolkit as the exporter
// does, with a short idle timeout, and requires the server to close a
// keep-alive connection that stays idle after a request.
func TestIdleKeepAliveClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	addr := freePort(t)
	tm := serverTimeouts
	tm.idle = idle
	s := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }), tm)
	listen, systemd := []string{addr}, false
	cfg := ""
	served := make(chan error, 1)
	go func() {
		served <- web.ListenAndServe(s, &web.FlagConfig{WebListenAddresses: &listen, WebSystemdSocket: &systemd, WebConfigFile: &cfg}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	var c net.Conn
	for i := 0; ; i++ {
		var err error
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server closed the connection after the request: not a keep-alive test")
	}
	start := time.Now()
	// Far above the idle timeout: only a connection the server never closes
	// runs into this deadline.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := br.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d bytes, err %v after %s; want the server to close it (EOF) after %s", n, err, time.Since(start).Round(time.Millisecond), idle)
	}
	if d := time.Since(start); d < idle/2 {
		t.Errorf("closed after %s, before the idle timeout %s", d, idle)
	}
}

func TestCheckTelemetryPath(t *testing.T) {
	for _, p := range []string{"/metrics", "/nfdrop/metrics", "/a.b-c_d~e", "/Metrics2"} {
		if err := checkTelemetryPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		// What it accepts, the mux takes without panicking and routes exactly.
		mux := http.NewServeMux()
		mux.Handle(p, http.NotFoundHandler())
		mux.Handle("/", http.NotFoundHandler())
		if _, pat := mux.Handler(&http.Request{Method: "GET", URL: mustURL(t, p)}); pat != p {
			t.Errorf("%q routes to pattern %q", p, pat)
		}
	}
	for _, p := range []string{"", "/", "metrics", "//metrics", "/metrics/", "/a/../b", "/./m", "GET /metrics", "/m etrics", "/{x}", "/m?x", "/m#x", "/m%20", "/ä", "/m\n"} {
		err := checkTelemetryPath(p)
		if err == nil {
			t.Errorf("%q accepted", p)
			continue
		}
		if msg := err.Error(); strings.Count(msg, ". ") > 0 || !strings.HasPrefix(msg, "--web.telemetry-path=") {
			t.Errorf("%q: message %q is not one sentence naming the flag", p, msg)
		}
	}
}

func mustURL(t *testing.T, p string) *url.URL {
	t.Helper()
	u, err := url.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
