//go:build linux

// Package deploy_test tests the deployment story end to end: the real binary, run in a
// network namespace of its own, as an unprivileged user holding only CAP_NET_ADMIN; TLS and
// basic auth with the shipped web-config.yml; clean shutdown, restart and SIGHUP; a group
// already bound by another process; the root warning.
//
// They need root (to create the namespace and switch users) and run only with
// NFDROP_E2E=1:
//
//	NFDROP_E2E=1 go test -run Deploy -v ./deploy/
//
// TestDeployWebConfigExample and TestDeployFlagsExist run everywhere: they check the
// shipped files offline.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

const (
	// deployExamplePassword is the password whose bcrypt hash deploy/web-config.yml ships
	// (documented there as "replace it").
	deployExampleUser     = "prometheus"
	deployExamplePassword = "example-only-change-me"
	deployListen          = "127.0.0.1:9786"
	// nobody: an unprivileged user that exists on every Debian system.
	deployUID     = "65534"
	capNetAdminHx = "0000000000001000" // 1 << CAP_NET_ADMIN (12), as /proc/PID/status prints it
)

// Privilege setups the exporter is started with. setpriv changes identity and
// capability sets, then execs the exporter.
var (
	// What the systemd unit does: DynamicUser + AmbientCapabilities/CapabilityBoundingSet
	// + NoNewPrivileges (ambient capabilities are not "new" privileges, so they survive it).
	privAmbient = []string{"setpriv", "--reuid=" + deployUID, "--regid=" + deployUID, "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin", "--no-new-privs", "--"}
	// An unprivileged user with no capabilities at all.
	privNone = []string{"setpriv", "--reuid=" + deployUID, "--regid=" + deployUID, "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", "--"}
	// What the DaemonSet does: UID 0, capabilities dropped to NET_ADMIN, no_new_privs
	// (allowPrivilegeEscalation: false).
	privRootNetAdmin = []string{"setpriv", "--inh-caps=-all", "--bounding-set=-all,+net_admin", "--no-new-privs", "--"}
	// A non-root user running a binary with file capabilities (setcap cap_net_admin+ep),
	// the alternative the exporter's error message offers. (Not tested: the same under
	// no_new_privs, which documented kernels refuse; see deploy/kubernetes/daemonset.yaml.)
	privFileCaps = []string{"setpriv", "--reuid=" + deployUID, "--regid=" + deployUID, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all,+net_admin", "--"}
)

// deployEnv is one test's namespace and the binaries under test.
type deployEnv struct {
	ns      *e2e.Netns
	bin     string // the exporter, world-executable (e2e.Binary)
	fcapBin string // a copy with file capability cap_net_admin+ep
	dir     string // world-readable scratch directory
	client  *http.Client
}

// deploySetup creates the namespace nfd<tag>-<pid> with its firewall and the binaries.
func deploySetup(t *testing.T, tag string) *deployEnv {
	t.Helper()
	e2e.Require(t, "ip", "setpriv", "iptables", "tcpdump", "setcap", "ulogd")
	// t.TempDir is 0700 and owned by root; the unprivileged exporter must be able to
	// read the TLS files, so use a directory of our own.
	dir, err := os.MkdirTemp("", "nfdE-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &deployEnv{dir: dir, bin: e2e.Binary(t), fcapBin: filepath.Join(dir, "nfdrop_exporter-fcap")}

	data, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.fcapBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setcap", "cap_net_admin+ep", e.fcapBin).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}

	// Only processes this test started live in the namespace; what still runs there at
	// the end is killed with it.
	e.ns = e2e.NewNetns(t, tag)
	// A firewall that logs UDP to 127.0.0.1:9 to group 0 and drops it: traffic the test
	// controls, without touching the exporter's TCP listener on the same loopback.
	ipt := []string{"-A", "INPUT", "-i", "lo", "-p", "udp", "--dport", "9"}
	e.ns.Exec("iptables", append(ipt, "-j", "NFLOG", "--nflog-group", "0", "--nflog-prefix", "denied", "--nflog-size", "256")...)
	e.ns.Exec("iptables", append(ipt, "-j", "DROP")...)
	e.client = lab.HTTPClient(e.ns.Name, 5*time.Second)
	return e
}

type deployProc struct {
	cmd    *exec.Cmd
	stderr *lab.SyncBuffer
	done   chan struct{}
	err    error // valid after done is closed
}

// start runs the exporter inside the namespace. `ip netns exec` and setpriv both exec,
// so the child's PID is the exporter's.
func (e *deployEnv) start(t *testing.T, priv []string, bin string, args ...string) *deployProc {
	t.Helper()
	argv := append(append(append([]string{}, priv...), bin), args...)
	p := &deployProc{cmd: e.ns.Command(argv[0], argv[1:]...), stderr: &lab.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("exporter output (%s):\n%s", strings.Join(priv, " "), p.stderr.String())
		}
	})
	return p
}

// exitCode waits for the process to exit and returns its exit code (-1 when a signal
// killed it).
// stopForRootWarnings stops the exporter with SIGTERM, expects exit 0 and
// returns the lines of its log that warn about running as root.
func (p *deployProc) stopForRootWarnings(t *testing.T) (warn []string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "running as root") {
			warn = append(warn, line)
		}
	}
	return warn
}

func (p *deployProc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("exporter still running after %s; output:\n%s", timeout, p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		t.Fatalf("wait: %v", p.err)
	}
	return ee.ExitCode()
}

func (p *deployProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// scrape fetches /metrics over plain HTTP inside the namespace.
func (e *deployEnv) scrape(t *testing.T) lab.Scrape {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := lab.FetchMetrics(ctx, e.client, "http://"+deployListen+"/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return s
}

// waitUp polls until the exporter reports group 0 bound, failing early if it exits.
func (e *deployEnv) waitUp(t *testing.T, p *deployProc) lab.Scrape {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !p.running() {
			t.Fatalf("exporter exited (%v) before serving; output:\n%s", p.err, p.stderr.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := lab.FetchMetrics(ctx, e.client, "http://"+deployListen+"/metrics")
		cancel()
		if err == nil {
			if v, ok := s.Value("nfdrop_up", map[string]string{"group": "0"}); ok && v == 1 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nfdrop_up{group=\"0\"} not 1 within 10s (last error %v); output:\n%s", err, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sendDrops sends n UDP datagrams that the namespace's firewall logs to group 0 and drops.
func (e *deployEnv) sendDrops(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := lab.DialContext(ctx, e.ns.Name, "udp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := c.Write([]byte("nfdE")); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
}

// waitPackets polls until group 0 has counted exactly want packets.
func (e *deployEnv) waitPackets(t *testing.T, want float64) lab.Scrape {
	t.Helper()
	var got float64
	for range 50 {
		s := e.scrape(t)
		if got = lab.Sum(s.Packets("0")); got == want {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sum(nfdrop_packets_total{group=\"0\"}) = %v within 5s, want %v", got, want)
	return nil
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func TestMain(m *testing.M) { e2e.Main(m) }

func TestDeployE2E(t *testing.T) {
	e := deploySetup(t, "E-e2e")
	t.Run("LeastPrivilege", func(t *testing.T) { deployLeastPrivilege(t, e) })
	t.Run("TLSBasicAuth", func(t *testing.T) { deployTLS(t, e) })
	t.Run("ShutdownRestart", func(t *testing.T) { deployRestart(t, e) })
	t.Run("GroupBusy", func(t *testing.T) { deployGroupBusy(t, e) })
}

// deployLeastPrivilege: with CAP_NET_ADMIN alone the exporter binds and serves, with no
// capability it exits non-zero naming CAP_NET_ADMIN; it warns exactly when it is root.
func deployLeastPrivilege(t *testing.T, e *deployEnv) {
	tests := []struct {
		name      string
		priv      []string
		fcap      bool
		wantUp    bool
		wantUID   string
		wantRoot  bool   // expect the "running as root" warning
		wantNoNew string // /proc NoNewPrivs
	}{
		{name: "systemd model: nobody with ambient CAP_NET_ADMIN and no_new_privs", priv: privAmbient, wantUp: true, wantUID: deployUID, wantNoNew: "1"},
		{name: "Kubernetes model: root with only NET_ADMIN and no_new_privs", priv: privRootNetAdmin, wantUp: true, wantUID: "0", wantRoot: true, wantNoNew: "1"},
		{name: "nobody with file capability", priv: privFileCaps, fcap: true, wantUp: true, wantUID: deployUID, wantNoNew: "0"},
		{name: "nobody without any capability", priv: privNone},
		{name: "plain root", priv: nil, wantUp: true, wantUID: "0", wantRoot: true, wantNoNew: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := e.bin
			if tc.fcap {
				bin = e.fcapBin
			}
			p := e.start(t, tc.priv, bin, "--web.listen-address="+deployListen)
			if !tc.wantUp {
				if code := p.exitCode(t, 10*time.Second); code == 0 {
					t.Fatalf("exit code 0 without CAP_NET_ADMIN, want non-zero")
				}
				if out := p.stderr.String(); !strings.Contains(out, "CAP_NET_ADMIN") {
					t.Errorf("stderr does not mention CAP_NET_ADMIN:\n%s", out)
				}
				return
			}
			s := e.waitUp(t, p)
			st := procStatus(t, p.cmd.Process.Pid)
			want := map[string]string{
				"Name":       "nfdrop_exporter",
				"Uid":        strings.Repeat(tc.wantUID+" ", 3) + tc.wantUID,
				"CapEff":     capNetAdminHx,
				"CapBnd":     capNetAdminHx,
				"NoNewPrivs": tc.wantNoNew,
			}
			if tc.priv == nil { // plain root keeps every capability; only its identity is checked
				delete(want, "CapEff")
				delete(want, "CapBnd")
			}
			for k, v := range want {
				if st[k] != v {
					t.Errorf("/proc/%d/status %s = %q, want %q", p.cmd.Process.Pid, k, st[k], v)
				}
			}
			if v, ok := s.Value("nfdrop_exporter_build_info", map[string]string{"version": e2e.Version}); !ok || v != 1 {
				t.Errorf("nfdrop_exporter_build_info{version=%q} = %v (present %v), want 1", e2e.Version, v, ok)
			}
			// The kernel's own views need nothing beyond CAP_NET_ADMIN either:
			// the nf_tables ruleset (the namespace's one NFLOG rule) and
			// conntrack's statistics over ctnetlink.
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   func(float64) bool
			}{
				{"nfdrop_log_rule_audit_success", nil, func(v float64) bool { return v == 1 }},
				{"nfdrop_log_rules", map[string]string{"group": "0"}, func(v float64) bool { return v == 1 }},
				{"nfdrop_log_rule_packets_total", map[string]string{"group": "0", "family": "ip", "table": "filter", "chain": "INPUT"}, func(v float64) bool { return v >= 0 }},
				{"nfdrop_conntrack_stats_success", nil, func(v float64) bool { return v == 1 }},
				{"nfdrop_conntrack_stat_invalid_total", nil, func(v float64) bool { return v >= 0 }},
				{"nfdrop_conntrack_entries_limit", nil, func(v float64) bool { return v > 0 }},
			} {
				if v, ok := s.Value(c.name, c.labels); !ok || !c.want(v) {
					t.Errorf("%s%v = %v (present %v) with CAP_NET_ADMIN alone", c.name, c.labels, v, ok)
				}
			}
			warn := p.stopForRootWarnings(t)
			switch {
			case tc.wantRoot && (len(warn) != 1 || !strings.Contains(strings.ToLower(warn[0]), "level=warn")):
				t.Errorf("want one level=warn line saying \"running as root\", got %q", warn)
			case !tc.wantRoot && len(warn) != 0:
				t.Errorf("unprivileged exporter warns about root: %q", warn)
			}
		})
	}
}

// deployCert writes a self-signed ECDSA certificate for 127.0.0.1 and its key under the
// names deploy/web-config.yml refers to, and returns the certificate.
func deployCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "nfdrop_exporter e2e"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crtPath, keyPath := filepath.Join(dir, "nfdrop_exporter.crt"), filepath.Join(dir, "nfdrop_exporter.key")
	if err := os.WriteFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Readable by the unprivileged exporter only, as it would be under LoadCredential=.
	if uid, err := strconv.Atoi(deployUID); err == nil && os.Geteuid() == 0 {
		if err := os.Chown(keyPath, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// deployWebConfigCopy copies deploy/web-config.yml byte for byte next to a fresh
// certificate and key: its relative paths resolve there.
func deployWebConfigCopy(t *testing.T, dir string) (string, *x509.Certificate) {
	t.Helper()
	src, err := os.ReadFile("web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	cert := deployCert(t, dir)
	p := filepath.Join(dir, "web-config.yml")
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, cert
}

// TestDeployWebConfigExample checks deploy/web-config.yml offline: exporter-toolkit
// accepts it (strict YAML, certificate and key load, valid bcrypt hashes) and the hash is
// the documented example password's.
func TestDeployWebConfigExample(t *testing.T) {
	dir := t.TempDir()
	p, _ := deployWebConfigCopy(t, dir)
	if err := web.Validate(p); err != nil {
		t.Fatalf("exporter-toolkit rejects deploy/web-config.yml: %v", err)
	}
	src, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	for _, line := range strings.Split(string(src), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), deployExampleUser+": "); ok {
			hash = v
		}
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(deployExamplePassword)); err != nil {
		t.Errorf("hash for user %s %q does not match the documented example password: %v", deployExampleUser, hash, err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost < bcrypt.DefaultCost {
		t.Errorf("bcrypt cost %d (err %v), want >= %d", cost, err, bcrypt.DefaultCost)
	}
	// The check above must be able to fail: a misspelt key is rejected.
	bad := strings.Replace(string(src), "basic_auth_users:", "basic_auth_user:", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := web.Validate(p); err == nil {
		t.Error("exporter-toolkit accepted a misspelt basic_auth_users key")
	}
}

// deployTLS: with the shipped web config the exporter serves only over TLS and only to
// the configured user.
func deployTLS(t *testing.T, e *deployEnv) {
	dir, err := os.MkdirTemp(e.dir, "tls-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, cert := deployWebConfigCopy(t, dir)
	p := e.start(t, privAmbient, e.bin, "--web.listen-address="+deployListen, "--web.config.file="+cfg)

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	trusting := lab.HTTPClient(e.ns.Name, 5*time.Second)
	trusting.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	untrusting := lab.HTTPClient(e.ns.Name, 5*time.Second)
	untrusting.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool()}

	// Wait until the TLS listener answers (a 401 is an answer).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !p.running() {
			t.Fatalf("exporter exited: %v\n%s", p.err, p.stderr.String())
		}
		resp, err := trusting.Get("https://" + deployListen + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS listener not answering within 10s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tests := []struct {
		name       string
		client     *http.Client
		url        string
		user, pass string
		wantStatus int  // 0: the request must fail before HTTP
		wantUp     bool // body carries nfdrop_up{group="0"} 1
	}{
		{name: "no credentials", client: trusting, url: "https://" + deployListen + "/metrics", wantStatus: http.StatusUnauthorized},
		{name: "wrong password", client: trusting, url: "https://" + deployListen + "/metrics", user: deployExampleUser, pass: "wrong", wantStatus: http.StatusUnauthorized},
		{name: "unknown user", client: trusting, url: "https://" + deployListen + "/metrics", user: "admin", pass: deployExamplePassword, wantStatus: http.StatusUnauthorized},
		{name: "valid credentials", client: trusting, url: "https://" + deployListen + "/metrics", user: deployExampleUser, pass: deployExamplePassword, wantStatus: http.StatusOK, wantUp: true},
		{name: "landing page needs credentials too", client: trusting, url: "https://" + deployListen + "/", wantStatus: http.StatusUnauthorized},
		{name: "landing page with credentials", client: trusting, url: "https://" + deployListen + "/", user: deployExampleUser, pass: deployExamplePassword, wantStatus: http.StatusOK},
		{name: "plain HTTP is refused", client: e.client, url: "http://" + deployListen + "/metrics", user: deployExampleUser, pass: deployExamplePassword, wantStatus: http.StatusBadRequest},
		{name: "untrusted certificate", client: untrusting, url: "https://" + deployListen + "/metrics", user: deployExampleUser, pass: deployExamplePassword, wantStatus: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := tc.client.Do(req)
			if tc.wantStatus == 0 {
				var uerr x509.UnknownAuthorityError
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %s, want a certificate verification error", resp.Status)
				} else if !errors.As(err, &uerr) {
					t.Fatalf("error %v, want x509.UnknownAuthorityError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %.200s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantUp && !bytes.Contains(body, []byte("\nnfdrop_up{group=\"0\"} 1\n")) {
				t.Errorf("body lacks nfdrop_up{group=\"0\"} 1:\n%.2000s", body)
			}
			if resp.StatusCode == http.StatusUnauthorized && bytes.Contains(body, []byte("nfdrop_")) {
				t.Errorf("401 response leaks metrics: %.200s", body)
			}
		})
	}

	// exporter-toolkit re-reads the web config per request: a new password takes effect
	// without a restart (the README tells operators so).
	t.Run("password change without restart", func(t *testing.T) {
		const newPassword = "rotated-nfdE"
		hash, err := bcrypt.GenerateFromPassword([]byte(newPassword), bcrypt.DefaultCost)
		if err != nil {
			t.Fatal(err)
		}
		old, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		replaced := 0
		for _, line := range strings.SplitAfter(string(old), "\n") {
			if strings.HasPrefix(line, "  "+deployExampleUser+": ") {
				line = "  " + deployExampleUser + ": " + string(hash) + "\n"
				replaced++
			}
			b.WriteString(line)
		}
		if replaced != 1 {
			t.Fatalf("replaced %d user lines, want 1", replaced)
		}
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		for pass, want := range map[string]int{deployExamplePassword: http.StatusUnauthorized, newPassword: http.StatusOK} {
			req, err := http.NewRequest(http.MethodGet, "https://"+deployListen+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(deployExampleUser, pass)
			resp, err := trusting.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("password %q after the change: status %d, want %d", pass, resp.StatusCode, want)
			}
		}
		if !p.running() {
			t.Error("exporter exited")
		}
	})

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

// deployRestart: SIGTERM exits 0 and unbinds the group at once; a new instance starts
// from zero with up and build info right, and SIGHUP neither stops nor resets it.
func deployRestart(t *testing.T, e *deployEnv) {
	first := e.start(t, privAmbient, e.bin, "--web.listen-address="+deployListen)
	e.waitUp(t, first)
	e.sendDrops(t, 5)
	e.waitPackets(t, 5)

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}

	// Started right after the first one exited: binding fails if the group were still held.
	second := e.start(t, privAmbient, e.bin, "--web.listen-address="+deployListen)
	s := e.waitUp(t, second)
	if got := lab.Sum(s.Packets("0")); got != 0 {
		t.Errorf("restarted exporter: sum(nfdrop_packets_total) = %v, want 0", got)
	}
	// The counters the exporter keeps start from zero; those it reads from the
	// kernel (the log rules', the firewall's drop rules', conntrack's) are
	// the kernel's and carry on.
	kernelOwned := func(name string) bool {
		return strings.HasPrefix(name, "nfdrop_log_rule_") || strings.HasPrefix(name, "nfdrop_conntrack_stat_") ||
			strings.HasPrefix(name, "nfdrop_firewall_")
	}
	for name, mf := range s {
		if !strings.HasPrefix(name, "nfdrop_") || !strings.HasSuffix(name, "_total") || kernelOwned(name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("restarted exporter: %s%v = %v, want 0", name, m.GetLabel(), v)
			}
		}
	}
	for _, want := range []struct {
		name   string
		labels map[string]string
	}{
		{"nfdrop_messages_lost_total", map[string]string{"group": "0"}},
		{"nfdrop_exporter_build_info", map[string]string{"version": e2e.Version, "revision": e2e.Revision, "branch": e2e.Branch}},
	} {
		if _, ok := s.Value(want.name, want.labels); !ok {
			t.Errorf("restarted exporter: no %s%v series", want.name, want.labels)
		}
	}
	// The rule counted the 5 datagrams before the restart, and still says so.
	if v, ok := s.Value("nfdrop_log_rule_packets_total", map[string]string{"group": "0", "family": "ip", "table": "filter", "chain": "INPUT"}); !ok || v != 5 {
		t.Errorf("restarted exporter: nfdrop_log_rule_packets_total = %v (present %v), want the rule's 5", v, ok)
	}
	// The new instance really reads the group.
	e.sendDrops(t, 3)
	e.waitPackets(t, 3)

	// SIGHUP (a reflexive "reload", or a closed terminal) must not end the exporter:
	// systemd counts death by SIGHUP as a clean exit and would not restart it.
	if err := second.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if !second.running() {
		t.Errorf("exporter died on SIGHUP (%v); it should ignore it or reload without resetting counters", second.err)
	} else {
		s = e.waitUp(t, second)
		if got := lab.Sum(s.Packets("0")); got != 3 {
			t.Errorf("after SIGHUP: sum(nfdrop_packets_total) = %v, want 3 (counters must not reset)", got)
		}
	}
	if second.running() {
		if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := second.exitCode(t, 10*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	}
}

// startHolder starts another NFLOG reader inside the namespace and waits until its
// output shows ready. The returned check asserts it is still running.
func (e *deployEnv) startHolder(t *testing.T, ready string, argv ...string) (*deployProc, func(*testing.T)) {
	t.Helper()
	h := &deployProc{stderr: &lab.SyncBuffer{}, done: make(chan struct{})}
	h.cmd = e.ns.Command(argv[0], argv[1:]...)
	h.cmd.Stdout = h.stderr
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.err = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		if h.running() {
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-h.done:
			case <-time.After(5 * time.Second):
				_ = h.cmd.Process.Kill()
				<-h.done
			}
		}
	})
	for i := 0; !strings.Contains(h.stderr.String(), ready); i++ {
		if !h.running() || i == 100 {
			t.Fatalf("%s not ready (%q) within 10s: %s", argv[0], ready, h.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return h, func(t *testing.T) {
		if !h.running() {
			t.Errorf("%s exited: %v\n%s", argv[0], h.err, h.stderr.String())
		}
	}
}

// deployGroupBusy: when another process holds the group the exporter exits non-zero and
// names ulogd2, and the holder keeps its group.
func deployGroupBusy(t *testing.T, e *deployEnv) {
	const otherListen = "127.0.0.1:9787"
	tests := []struct {
		name  string
		start func(t *testing.T) (holder *deployProc, stillHeld func(t *testing.T))
	}{
		{
			name: "tcpdump -i nflog:0",
			start: func(t *testing.T) (*deployProc, func(*testing.T)) {
				return e.startHolder(t, "listening on nflog:0", "tcpdump", "-i", "nflog:0", "-n", "-w", "/dev/null")
			},
		},
		{
			// Debian's ulogd2 with its stock /etc/ulogd.conf (whose active stack reads
			// group 0), only with its log files moved to a scratch directory.
			name: "ulogd2 with the stock configuration",
			start: func(t *testing.T) (*deployProc, func(*testing.T)) {
				stock, err := os.ReadFile("/etc/ulogd.conf")
				if err != nil {
					t.Fatalf("no stock ulogd2 configuration (apt-get install ulogd2): %v", err)
				}
				dir := t.TempDir()
				conf := strings.ReplaceAll(string(stock), `logfile="syslog"`, `logfile="`+filepath.Join(dir, "ulogd.log")+`"`)
				conf = strings.ReplaceAll(conf, `"/var/log/ulog/`, `"`+dir+`/`)
				for _, line := range strings.Split(conf, "\n") {
					if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && strings.Contains(l, "/var/log/") {
						t.Fatalf("stock ulogd.conf still writes to /var/log after rewriting: %s", l)
					}
				}
				p := filepath.Join(dir, "ulogd.conf")
				if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
					t.Fatal(err)
				}
				return e.startHolder(t, "entering main loop", "ulogd", "-v", "-c", p)
			},
		},
		{
			name: "a second exporter",
			start: func(t *testing.T) (*deployProc, func(*testing.T)) {
				h := e.start(t, privAmbient, e.bin, "--web.listen-address="+deployListen)
				e.waitUp(t, h)
				return h, func(t *testing.T) {
					// The loser's failed bind must not have unbound the winner.
					e.sendDrops(t, 2)
					e.waitPackets(t, 2)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			holder, stillHeld := tc.start(t)
			p := e.start(t, privAmbient, e.bin, "--web.listen-address="+otherListen)
			if code := p.exitCode(t, 10*time.Second); code == 0 {
				t.Fatal("exit code 0 although the group is bound by another process")
			}
			out := p.stderr.String()
			for _, want := range []string{"already bound", "ulogd2"} {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q:\n%s", want, out)
				}
			}
			stillHeld(t)
			if holder.running() {
				_ = holder.cmd.Process.Signal(syscall.SIGTERM)
				_ = holder.exitCode(t, 10*time.Second)
			}
		})
	}
}

// TestDeployFlagsExist checks that every exporter flag the deployment files use (unit,
// options file, DaemonSet args, web config comments) exists in the built binary's --help,
// so renaming a flag cannot silently break a shipped deployment.
func TestDeployFlagsExist(t *testing.T) {
	help, err := exec.Command(e2e.Binary(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, help)
	}
	// Exporter flags are dotted (--nflog.group); iptables' --nflog-group is not.
	flagRE := regexp.MustCompile(`--(?:\[no-\])?([a-z][a-z0-9-]*\.[a-z0-9.-]*[a-z0-9])`)
	known := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	if !known["nflog.group"] || !known["web.config.file"] {
		t.Fatalf("--help parsing found %d flags, not nflog.group and web.config.file:\n%s", len(known), help)
	}
	files := map[string][]string{ // file -> flags it must use
		"deploy/systemd/nfdrop_exporter.service":      {"web.config.file"},
		"deploy/systemd/nfdrop_exporter-ebpf.service": {"ebpf.enable", "web.config.file"},
		"deploy/systemd/nfdrop_exporter.default":      {"nflog.group", "web.listen-address"},
		"deploy/kubernetes/daemonset.yaml":            {"nflog.group", "web.listen-address"},
		"deploy/kubernetes/daemonset-ebpf.yaml":       {"nflog.group", "ebpf.enable", "web.listen-address"},
		"deploy/web-config.yml":                       {"web.config.file"},
	}
	for file, mustUse := range files {
		data, err := os.ReadFile(filepath.Join(e2e.Root(), file))
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, m := range flagRE.FindAllStringSubmatch(string(data), -1) {
			used[m[1]] = true
			if !known[m[1]] {
				t.Errorf("%s uses --%s, which nfdrop_exporter --help does not list", file, m[1])
			}
		}
		for _, f := range mustUse {
			if !used[f] {
				t.Errorf("%s does not mention --%s", file, f)
			}
		}
	}
}
