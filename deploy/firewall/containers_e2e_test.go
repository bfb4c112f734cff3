//go:build linux

package firewall_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// webSource is the container image's only program: an HTTP server (serve
// ADDR) and a TCP connect probe (dial ADDR, exit status 1 when it fails).
const webSource = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "dial" {
		c, err := net.DialTimeout("tcp", os.Args[2], 1500*time.Millisecond)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c.Close()
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") })
	panic(http.ListenAndServe(":8080", nil))
}
`

// containerHost is a podman (and, when installed, docker) host in the lab.
type containerHost struct {
	r      *rlab
	dir    string
	tarred string // the image's root file system
	env    []string
}

// TestContainerHosts: podman 4 with the CNI plugins (and docker.io) in the
// lab's server namespace, a FORWARD policy DROP with the usual accepts for
// published ports (DNAT) and a routed container network, the recipe, and
// the exporter on its group.
func TestContainerHosts(t *testing.T) {
	e2e.Require(t, "ip", "nft", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "nsenter",
		"unshare", "nmap", "conntrack", "apt-get", "podman", "runc", "go", "dockerd")
	r := newRecipeLab(t, "ctr", 7)
	sb := r.sb
	h := newContainerHost(t, r)
	install := filepath.Join(recipeDir("containers"), "install")

	// The admin's FORWARD: policy DROP (docker sets it too), published ports
	// (DNAT) and port 8080 of the routed container networks accepted.
	for _, c := range [][]string{
		{"iptables", "-P", "FORWARD", "DROP"},
		{"iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"},
		{"iptables", "-A", "FORWARD", "-d", "10.88.0.0/14", "-p", "tcp", "--dport", "8080", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
		{"ip6tables", "-P", "FORWARD", "DROP"},
		{"ip6tables", "-A", "FORWARD", "-d", "fd89::/16", "-p", "tcp", "--dport", "8080", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
	} {
		sb.must(c[0], c[1:]...)
	}
	for _, c := range [][]string{
		{"ip", "route", "add", "10.88.0.0/14", "via", srv4},
		{"ip", "route", "add", "172.16.0.0/12", "via", srv4},
		{"ip", "-6", "route", "add", "fd89::/16", "via", srv6},
	} {
		if _, err := r.Run(r.Client, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}

	step(t, "podman containers")
	h.podman("network", "create", "--subnet", "fd89:6::/64", "--ipv6", "--subnet", "10.89.6.0/24", "nfr6")
	h.podman("network", "create", "--opt", "isolate=true", "--subnet", "10.89.1.0/24", "nfra")
	h.podman("network", "create", "--opt", "isolate=true", "--subnet", "10.89.2.0/24", "nfrb")
	h.podman("run", "-d", "--name", "web", "-p", "8080:8080", "localhost/nfr-web:1", "serve")
	h.podman("run", "-d", "--name", "web6", "--network", "nfr6", "localhost/nfr-web:1", "serve")
	h.podman("run", "-d", "--name", "isoa", "--network", "nfra", "localhost/nfr-web:1", "serve")
	h.podman("run", "-d", "--name", "isob", "--network", "nfrb", "localhost/nfr-web:1", "serve")
	web := h.podmanIP("web", "")
	web6 := h.podmanIP("web6", "6")
	isob := h.podmanIP("isob", "")

	step(t, "doctor on the vanilla podman host")
	{
		var iso uint64
		dropped, _ := r.quietTraffic("podman: vanilla", true, func() { iso = h.podmanTraffic(web, web6, isob) })
		d := r.doctor()
		d.golden(t, "containers-vanilla")
		// The admin's FORWARD policies and CNI's isolation of the two
		// isolated networks.
		packets := d.check(t, 1, append([]string{
			"drop-not-logged ip filter FORWARD: policy",
			"drop-not-logged ip6 filter FORWARD: policy",
		}, cniIsolation...))
		if p := packets[cniIsolationB]; p == nil || *p != iso {
			t.Errorf("doctor: %s: packets %v, want the %d of the connection from isoa", cniIsolationB, p, iso)
		}
		// The containers' own IPv6 traffic can meet the policy after the
		// hooks were read: iptables' counters are read with doctor's.
		ipt, _ := r.iptablesCounters()
		if sum := sumPackets(packets); sum != ipt || dropped > ipt {
			t.Errorf("doctor's packets add up to %d, iptables' DROP/REJECT and policy counters to %d, the hooks dropped %d", sum, ipt, dropped)
		}
	}

	step(t, "install")
	t.Log(sb.must(install, "--group", r.group))
	lastRuleOurs(t, r)
	rules := r.iptablesS()
	if out := sb.must(install, "--group", r.group); !strings.Contains(out, "nothing to change") {
		t.Errorf("second install said:\n%s", out)
	}
	if got := r.iptablesS(); strings.Join(got, "\n") != strings.Join(rules, "\n") {
		t.Errorf("second install changed the ruleset")
	}
	r.startExporter()

	step(t, "podman: traffic")
	{
		p := r.beginPhaseIptables("podman: traffic")
		iso := h.podmanTraffic(web, web6, isob)
		res := p.settle(iso)
		wantPrefixes(t, res, map[string]int{"forward-policy": -1})
		if res.byPrefix["forward-policy"] < 3+12 {
			t.Errorf("forward-policy %d: want the late FIN/RST (3 connections) and the 12 probes", res.byPrefix["forward-policy"])
		}
		r.checkIptables(t, res)
		d := r.doctor()
		d.golden(t, "containers-recipe")
		// CNI's isolation, which no rule can stay in front of.
		packets := d.check(t, 1, cniIsolation)
		if p := packets[cniIsolationB]; p == nil || *p != iso {
			t.Errorf("doctor: %s: packets %v, want %d", cniIsolationB, p, iso)
		}
	}

	step(t, "podman network reload and a container restart keep it")
	h.podman("network", "reload", "--all")
	h.podman("restart", "web")
	lastRuleOurs(t, r)
	web = h.podmanIP("web", "") // a restart may give it another address
	h.forwardPhase(t, "podman: after reload", web+":8080", web, web)

	step(t, "apt-get install --reinstall podman keeps it")
	rules = r.iptablesS()
	t.Log(sb.reinstall("podman"))
	if got := r.iptablesS(); strings.Join(got, "\n") != strings.Join(rules, "\n") {
		t.Errorf("the reinstall changed the ruleset:\n%s", strings.Join(got, "\n"))
	}
	lastRuleOurs(t, r)
	h.forwardPhase(t, "podman: after reinstall", web+":8080", web, web)

	step(t, "docker")
	dockerd := h.startDocker()
	h.docker("import", "--change", `ENTRYPOINT ["/web"]`, h.tarred, "nfr-web:1")
	h.docker("network", "create", "--subnet", "172.30.1.0/24", "dka")
	h.docker("network", "create", "--subnet", "172.30.2.0/24", "dkb")
	h.docker("run", "-d", "--name", "dweb", "-p", "8081:8080", "nfr-web:1", "serve")
	h.docker("run", "-d", "--name", "da", "--network", "dka", "nfr-web:1", "serve")
	h.docker("run", "-d", "--name", "db", "--network", "dkb", "nfr-web:1", "serve")
	lastRuleOurs(t, r)
	if out := sb.must(install, "--group", r.group); !strings.Contains(out, "nothing to change") {
		t.Errorf("install with docker running said:\n%s", out)
	}
	for _, n := range []string{"dka", "dkb"} {
		id := strings.TrimSpace(h.docker("network", "inspect", "-f", "{{.Id}}", n))
		r.renames = append(r.renames, "br-"+id[:12], "br-"+n)
	}
	dweb := h.dockerIP("dweb")
	db := h.dockerIP("db")
	{
		p := r.beginPhaseIptables("docker: traffic")
		h.get(srv4 + ":8081") // published port
		// Not 8080: docker's DOCKER chain accepts the published container
		// port from anywhere, routed too.
		r.nmap("-sS", "22,25,9090", dweb)
		r.nmap("-sA", "22,25,9090", dweb)
		if out, err := h.run("docker", "-H", h.dockerSock(), "exec", "da", "/web", "dial", db+":8080"); err == nil {
			t.Errorf("docker networks connected:\n%s", out)
		}
		iso := r.chainDrops("DOCKER-ISOLATION-STAGE-2")
		if iso == 0 {
			t.Error("DOCKER-ISOLATION-STAGE-2 dropped nothing")
		}
		res := p.settle(iso)
		// At least the 6 probes: the containers' own IPv6 neighbour
		// discovery can meet the policy too.
		wantPrefixes(t, res, map[string]int{"forward-policy": -1})
		if res.byPrefix["forward-policy"] < 6 {
			t.Errorf("forward-policy %d, want at least the 6 probes", res.byPrefix["forward-policy"])
		}
		r.checkIptables(t, res)
		d := r.doctor()
		d.golden(t, "containers-recipe-docker")
		// CNI's and docker's isolation.
		packets := d.check(t, 1, append([]string{
			"drop-not-logged " + dockerIsolation + `oifname "docker0" counter drop`,
			"drop-not-logged " + dockerIsolation + `oifname "br-dka" counter drop`,
			"drop-not-logged " + dockerIsolation + `oifname "br-dkb" counter drop`,
		}, cniIsolation...))
		if p := packets[dockerIsolation+`oifname "br-dkb" counter drop`]; p == nil || *p != iso {
			t.Errorf("doctor: docker's isolation of dkb: packets %v, want the %d of the connection from da", p, iso)
		}
	}

	step(t, "docker restart keeps it")
	dockerd.stop(t, 60*time.Second)
	h.startDocker()
	h.docker("start", "dweb", "da", "db")
	lastRuleOurs(t, r)
	h.forwardPhase(t, "docker: after restart", srv4+":8081", "", h.dockerIP("dweb"))

	step(t, "uninstall")
	rules = withoutOurs(r.iptablesS())
	t.Log(sb.must(install, "--uninstall"))
	if got := r.iptablesS(); strings.Join(got, "\n") != strings.Join(rules, "\n") {
		t.Errorf("ruleset after uninstall:\n%s\nwant the one before without the NFLOG rule:\n%s",
			strings.Join(got, "\n"), strings.Join(rules, "\n"))
	}
}

// The isolation rules of podman's CNI plugins (networks nfra and nfrb,
// created third and fourth) and of docker, which no recipe covers.
const (
	cniIsolationB   = `ip filter CNI-ISOLATION-STAGE-2: oifname "cni-podman3" counter drop`
	dockerIsolation = "ip filter DOCKER-ISOLATION-STAGE-2: "
)

var cniIsolation = []string{
	`drop-not-logged ip filter CNI-ISOLATION-STAGE-2: oifname "cni-podman2" counter drop`,
	"drop-not-logged " + cniIsolationB,
}

// podmanTraffic is the podman phase's traffic: GETs to a published port
// and to routed containers (IPv4 and IPv6), routed connections that leave
// late FIN/RST, scans of container addresses, and a connection between
// isolated networks, which CNI's isolation rules drop. It returns what
// those dropped (since the counters were zeroed): no recipe covers them.
func (h *containerHost) podmanTraffic(web, web6, isob string) uint64 {
	t := h.r.t
	t.Helper()
	r := h.r
	h.get(srv4 + ":8080") // published port
	h.get(web + ":8080")  // routed
	h.get("[" + web6 + "]:8080")
	h.lateClose(web, false)
	h.lateClose(web, true)
	h.lateClose(web6, false)
	r.nmap("-sS", "22,25,9090", web)
	r.nmap("-sA", "22,25,9090", web)
	r.nmap("-sS", "22,25,9090", web6)
	r.nmap("-sA", "22,25,9090", web6)
	// Between isolated networks: CNI's isolation rules drop it, and
	// they are re-created with every network: not covered.
	if out, err := h.run("podman", "exec", "isoa", "/web", "dial", isob+":8080"); err == nil {
		t.Errorf("isolated networks connected:\n%s", out)
	}
	iso := r.chainDrops("CNI-ISOLATION-STAGE-2")
	if iso == 0 {
		t.Error("CNI-ISOLATION-STAGE-2 dropped nothing")
	}
	return iso
}

func newContainerHost(t *testing.T, r *rlab) *containerHost {
	t.Helper()
	dir := t.TempDir()
	h := &containerHost{r: r, dir: dir}
	// The image: the static program above, alone.
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "main.go"), webSource)
	writeFile(t, filepath.Join(src, "go.mod"), "module web\n\ngo 1.22\n")
	root := filepath.Join(dir, "rootfs")
	build := exec.Command("go", "build", "-o", filepath.Join(root, "web"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the image's program: %v\n%s", err, out)
	}
	h.tarred = filepath.Join(dir, "web.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", h.tarred, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	// podman: runc with the machine's limits and no systemd; storage in
	// the test's directory; CNI's state in the sandbox's /var.
	conf := filepath.Join(dir, "containers.conf")
	writeFile(t, conf, fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_backend = "cni"
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "libpod")))
	storage := filepath.Join(dir, "storage.conf")
	writeFile(t, storage, fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run")))
	h.env = []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage}
	h.podman("import", "--change", `ENTRYPOINT ["/web"]`, h.tarred, "localhost/nfr-web:1")
	t.Cleanup(func() { _, _ = h.run("podman", "rm", "-af", "-t", "0") })
	return h
}

// run runs a command in the sandbox with the container runtimes' settings.
func (h *containerHost) run(name string, args ...string) (string, error) {
	return h.r.sb.runEnv(h.env, name, args...)
}

func (h *containerHost) podman(args ...string) string {
	h.r.t.Helper()
	out, err := h.run("podman", args...)
	if err != nil {
		h.r.t.Fatal(err)
	}
	return out
}

// podmanIP is a container's address (family "" or "6").
func (h *containerHost) podmanIP(name, family string) string {
	h.r.t.Helper()
	f := "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
	if family == "6" {
		f = "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}"
	}
	ip := strings.TrimSpace(h.podman("inspect", "-f", f, name))
	if net.ParseIP(ip) == nil {
		h.r.t.Fatalf("podman inspect %s: address %q", name, ip)
	}
	return ip
}

func (h *containerHost) dockerSock() string { return "unix://" + filepath.Join(h.dir, "docker.sock") }

// startDocker starts dockerd in the sandbox (its own containerd, storage
// and sockets in the test's directory) and waits for its API.
func (h *containerHost) startDocker() *proc {
	t := h.r.t
	t.Helper()
	cfg := filepath.Join(h.dir, "daemon.json")
	writeFile(t, cfg, `{"storage-driver": "vfs", "iptables": true, "ip6tables": false, "userland-proxy": false}`)
	p := h.r.sb.startEnv(h.env, "dockerd", "--data-root", filepath.Join(h.dir, "docker"), "--exec-root", filepath.Join(h.dir, "dexec"),
		"--pidfile", filepath.Join(h.dir, "docker.pid"), "-H", h.dockerSock(), "--config-file", cfg)
	e2e.WaitEvery(t, 90*time.Second, 500*time.Millisecond, "dockerd to answer", func() bool {
		_, err := h.run("docker", "-H", h.dockerSock(), "version")
		return err == nil
	})
	// The containers' processes live in namespaces of their own: the lab,
	// which ends what runs in its namespaces, would not end them. Registered
	// after this dockerd's own cleanup, so it runs first.
	t.Cleanup(func() {
		select {
		case <-p.done:
			return // stopped by the test, which stopped its containers
		default:
		}
		out, err := h.run("sh", "-c", `ids=$(docker -H "$1" ps -aq); [ -z "$ids" ] || docker -H "$1" rm -f $ids`, "rm", h.dockerSock())
		if err != nil {
			t.Errorf("removing docker's containers: %v\n%s", err, out)
		}
	})
	return p
}

func (h *containerHost) docker(args ...string) string {
	h.r.t.Helper()
	out, err := h.run("docker", append([]string{"-H", h.dockerSock()}, args...)...)
	if err != nil {
		h.r.t.Fatal(err)
	}
	return out
}

func (h *containerHost) dockerIP(name string) string {
	h.r.t.Helper()
	ip := strings.TrimSpace(h.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name))
	if net.ParseIP(ip) == nil {
		h.r.t.Fatalf("docker inspect %s: address %q", name, ip)
	}
	return ip
}

// get fetches http://ADDR/ from the client and fails unless it answers.
func (h *containerHost) get(addr string) {
	t := h.r.t
	t.Helper()
	c := lab.HTTPClient(h.r.Client, 5*time.Second)
	var err error
	for i := 0; i < 20; i++ { // a container's server may need a moment
		var resp *http.Response
		resp, err = c.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "hi" {
				return
			}
			err = fmt.Errorf("answer %q", b)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/: %v", addr, err)
}

// lateClose opens a routed connection from the client to a container's
// server, makes the request, deletes the flow from the host's conntrack
// table and closes (FIN, or RST with rst): the host's FORWARD chain sees
// the late segments as INVALID.
func (h *containerHost) lateClose(ip string, rst bool) {
	t := h.r.t
	t.Helper()
	network := "tcp4"
	if strings.Contains(ip, ":") {
		network = "tcp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lab.DialContext(ctx, h.r.Client, network, net.JoinHostPort(ip, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	fam := "ipv4"
	if network == "tcp6" {
		fam = "ipv6"
	}
	if _, err := h.r.Run(h.r.Server, "conntrack", "-D", "-f", fam, "-p", "tcp", "-d", ip, "--dport", "8080"); err != nil {
		t.Fatal(err)
	}
	if rst {
		_ = tc.SetLinger(0)
	}
	_ = tc.Close()
	time.Sleep(300 * time.Millisecond)
}

// forwardPhase is a quick round of forwarded traffic that checks the
// identity: a GET that must work, a late RST to lateIP (if not empty) and
// a scan of two closed ports of scanIP.
func (h *containerHost) forwardPhase(t *testing.T, name, get, lateIP, scanIP string) {
	t.Helper()
	p := h.r.beginPhase(name)
	h.get(get)
	want := uint64(2)
	if lateIP != "" {
		h.lateClose(lateIP, true)
		want++
	}
	h.r.nmap("-sS", "22,25", scanIP)
	res := p.settle(0)
	if res.byPrefix["forward-policy"] < want {
		t.Errorf("%s: forward-policy %d, want at least %d", name, res.byPrefix["forward-policy"], want)
	}
}

// lastRuleOurs fails unless the last rule of FORWARD in both families is
// the recipe's, on its group, and there is no other.
func lastRuleOurs(t *testing.T, r *rlab) {
	t.Helper()
	for _, tool := range []string{"iptables", "ip6tables"} {
		out, err := r.Run(r.Server, tool, "-S", "FORWARD")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		if !strings.Contains(last, "--comment nfdrop_exporter -j NFLOG --nflog-prefix forward-policy --nflog-group "+r.group+" ") {
			t.Errorf("%s: last rule of FORWARD is %q, want the recipe's on group %s", tool, last, r.group)
		}
		if n := strings.Count(out, "nfdrop_exporter"); n != 1 {
			t.Errorf("%s: %d rules of the recipe in FORWARD, want 1", tool, n)
		}
	}
}

// chainDrops is what the DROP and REJECT rules of the given chains (both
// families) dropped since the counters were zeroed.
func (r *rlab) chainDrops(chains ...string) uint64 {
	r.t.Helper()
	time.Sleep(200 * time.Millisecond)
	var n uint64
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := r.Run(r.Server, tool, "-c", "-t", "filter")
		if err != nil {
			r.t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			for _, c := range chains {
				if strings.Contains(l, "-A "+c+" ") {
					lines = append(lines, l)
					break
				}
			}
		}
		d, _, err := saveCounters(strings.Join(lines, "\n"))
		if err != nil {
			r.t.Fatal(err)
		}
		n += d
	}
	return n
}
