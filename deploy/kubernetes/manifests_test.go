// Package kubernetes_test validates the Kubernetes manifests offline: strict decoding into
// the Kubernetes and Prometheus Operator API types (an unknown or misspelt field fails),
// the least-privilege settings of the DaemonSet, the wiring between DaemonSet, Service and
// PodMonitor, and that prometheusrule.yaml is exactly what deploy/prometheus generates.
package kubernetes_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/deploy/internal/rulesets"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml from deploy/prometheus/*.yml")

const (
	prometheusDir  = "../prometheus"
	ruleManifest   = "prometheusrule.yaml"
	namespace      = "monitoring"
	appName        = "nfdrop-exporter"
	metricsPort    = 9786
	socketRcvBufMi = 32 // --nflog.socket.receive-buffer default, MiB
)

// durationRE is the Prometheus Operator's CRD pattern for monitoringv1.Duration. The API
// server enforces it; offline decoding does not, so the test does.
var durationRE = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

// decodeStrict decodes a single-document YAML manifest, rejecting unknown and duplicate fields.
func decodeStrict(data []byte, into any) error {
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1)[1:] {
		if strings.TrimSpace(stripComments(doc)) != "" {
			return fmt.Errorf("more than one YAML document")
		}
	}
	return yaml.UnmarshalStrict(data, into)
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func load(t *testing.T, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(data, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type manifests struct {
	ds   appsv1.DaemonSet
	ebpf appsv1.DaemonSet // daemonset-ebpf.yaml
	svc  corev1.Service
	pm   monitoringv1.PodMonitor
	rule monitoringv1.PrometheusRule
}

func loadAll(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	load(t, "daemonset.yaml", &m.ds)
	load(t, "daemonset-ebpf.yaml", &m.ebpf)
	load(t, "service.yaml", &m.svc)
	load(t, "podmonitor.yaml", &m.pm)
	load(t, ruleManifest, &m.rule)
	return m
}

// TestDeployKubernetesStrictDecode checks every manifest's kind, API version, name and
// namespace, and that the strict decoder really rejects what a typo would produce.
func TestDeployKubernetesStrictDecode(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	type expect struct {
		obj  any
		meta func() (metav1.TypeMeta, metav1.ObjectMeta)
		gvk  string
	}
	want := map[string]expect{
		"daemonset.yaml": {&m.ds, func() (metav1.TypeMeta, metav1.ObjectMeta) { return m.ds.TypeMeta, m.ds.ObjectMeta }, "apps/v1 DaemonSet"},
		"daemonset-ebpf.yaml": {&m.ebpf, func() (metav1.TypeMeta, metav1.ObjectMeta) { return m.ebpf.TypeMeta, m.ebpf.ObjectMeta },
			"apps/v1 DaemonSet"},
		"service.yaml": {&m.svc, func() (metav1.TypeMeta, metav1.ObjectMeta) { return m.svc.TypeMeta, m.svc.ObjectMeta }, "v1 Service"},
		"podmonitor.yaml": {&m.pm, func() (metav1.TypeMeta, metav1.ObjectMeta) { return m.pm.TypeMeta, m.pm.ObjectMeta },
			"monitoring.coreos.com/v1 PodMonitor"},
		ruleManifest: {&m.rule, func() (metav1.TypeMeta, metav1.ObjectMeta) { return m.rule.TypeMeta, m.rule.ObjectMeta },
			"monitoring.coreos.com/v1 PrometheusRule"},
	}

	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(files)
	sort.Strings(names)
	if !slices.Equal(files, names) {
		t.Fatalf("manifests in deploy/kubernetes = %q, the test knows %q: add the new one here", files, names)
	}
	for _, name := range names {
		w := want[name]
		t.Run(name, func(t *testing.T) {
			load(t, name, w.obj)
			tm, om := w.meta()
			if got := strings.TrimPrefix(tm.APIVersion+" "+tm.Kind, " "); got != w.gvk {
				t.Errorf("apiVersion/kind = %q, want %q", got, w.gvk)
			}
			if om.Namespace != namespace {
				t.Errorf("namespace = %q, want %q", om.Namespace, namespace)
			}
			if !strings.HasPrefix(om.Name, appName) {
				t.Errorf("name = %q, want prefix %q", om.Name, appName)
			}
			if om.Labels["app.kubernetes.io/name"] != appName {
				t.Errorf("labels = %v, want app.kubernetes.io/name=%s", om.Labels, appName)
			}
		})
	}

	// The decoder must fail on what typos and wrong types produce; otherwise the
	// checks above prove nothing.
	ds, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct{ name, old, new string }{
		// Anchored on indentation so that the comments, which quote some of these
		// settings, are not what gets mutated.
		{"misspelt field", "\n      hostNetwork: true\n", "\n      hostNetwrok: true\n"},
		{"wrong type", "\n      hostNetwork: true\n", "\n      hostNetwork: [true]\n"},
		{"duplicate field", "\n      hostNetwork: true\n", "\n      hostNetwork: true\n      hostNetwork: false\n"},
		{"field at wrong level", "\n            readOnlyRootFilesystem: true\n", "\n            readOnlyRootFilesystem: true\n            hostNetwork: true\n"},
		{"second document", "\nkind: DaemonSet\n", "\nkind: DaemonSet\n---\nkind: Service\n"},
	}
	for _, b := range bad {
		t.Run("rejects "+b.name, func(t *testing.T) {
			if n := strings.Count(string(ds), b.old); n != 1 {
				t.Fatalf("mutation target %q found %d times, want 1", b.old, n)
			}
			mutated := strings.Replace(string(ds), b.old, b.new, 1)
			if mutated == string(ds) {
				t.Fatalf("mutation %q did not apply", b.old)
			}
			var d appsv1.DaemonSet
			if err := decodeStrict([]byte(mutated), &d); err == nil {
				t.Errorf("strict decoding accepted the mutated manifest")
			}
		})
	}
}

// TestDeployKubernetesDaemonSetPrivileges pins the least-privilege settings.
func TestDeployKubernetesDaemonSetPrivileges(t *testing.T) {
	m := loadAll(t)
	pod := m.ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("hostNetwork must be true: the host firewall's NFLOG groups live in the host network namespace")
	}
	if pod.HostPID || pod.HostIPC {
		t.Errorf("hostPID=%v hostIPC=%v, want false", pod.HostPID, pod.HostIPC)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: the exporter never talks to the API server")
	}
	if len(pod.Volumes) != 0 || len(pod.InitContainers) != 0 || len(pod.Containers) != 1 {
		t.Fatalf("volumes=%d initContainers=%d containers=%d, want 0, 0, 1", len(pod.Volumes), len(pod.InitContainers), len(pod.Containers))
	}
	if psc := pod.SecurityContext; psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile must be RuntimeDefault")
	} else if psc.RunAsUser == nil || *psc.RunAsUser != 0 || psc.RunAsNonRoot == nil || *psc.RunAsNonRoot {
		// Documented choice: no ambient capabilities for non-root in Kubernetes, and file
		// capabilities are void under allowPrivilegeEscalation: false.
		t.Error("pod must run as UID 0 explicitly (runAsUser: 0, runAsNonRoot: false): see the comment in daemonset.yaml")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("container securityContext.capabilities missing")
	}
	if got := sc.Capabilities.Add; !slices.Equal(got, []corev1.Capability{"NET_ADMIN"}) {
		t.Errorf("capabilities.add = %q, want exactly [NET_ADMIN]", got)
	}
	if got := sc.Capabilities.Drop; !slices.Equal(got, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop = %q, want exactly [ALL]", got)
	}
	for name, p := range map[string]*bool{"privileged": sc.Privileged, "allowPrivilegeEscalation": sc.AllowPrivilegeEscalation} {
		if p == nil || *p {
			t.Errorf("%s must be set to false", name)
		}
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}

	// Requests and limits for both resources, requests not above limits, and memory
	// headroom for the NFLOG socket buffer that the pod's cgroup is charged for.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("%s: request set %v, limit set %v, want both", r, okReq, okLim)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s request %s above limit %s", r, req.String(), lim.String())
		}
	}
	minMem := resource.MustParse(strconv.Itoa(2*socketRcvBufMi) + "Mi")
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(minMem) < 0 {
		t.Errorf("memory limit %s below %s (twice the default socket receive buffer)", lim.String(), minMem.String())
	}

	// Port, listen address and probes agree.
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != metricsPort || c.Ports[0].HostPort != metricsPort {
		t.Errorf("ports = %+v, want one port named metrics, %d, hostPort %d", c.Ports, metricsPort, metricsPort)
	}
	if !slices.Contains(c.Args, "--web.listen-address=:"+strconv.Itoa(metricsPort)) {
		t.Errorf("args %q do not listen on :%d", c.Args, metricsPort)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", name)
			continue
		}
		if p.HTTPGet.Path != "/metrics" || p.HTTPGet.Port != intstr.FromString("metrics") {
			t.Errorf("%s probe: %s port %s, want /metrics on port metrics", name, p.HTTPGet.Path, p.HTTPGet.Port.String())
		}
	}
	if !slices.Contains(c.Args, "--nflog.group=0") {
		t.Errorf("args %q do not read NFLOG group 0 (the group deploy/firewall logs to)", c.Args)
	}
	rulesets.CheckGroup(t, 0, "the DaemonSet reads")

	// No surge: old and new pod would fight over the group and the host port.
	if u := m.ds.Spec.UpdateStrategy.RollingUpdate; u == nil || u.MaxSurge == nil || u.MaxSurge.IntValue() != 0 {
		t.Error("updateStrategy.rollingUpdate.maxSurge must be 0")
	}
}

// TestDeployKubernetesEBPFDaemonSet checks that daemonset-ebpf.yaml is daemonset.yaml with
// exactly --ebpf.enable and the capabilities BPF and PERFMON added, and the same object
// name (applying one replaces the other: both would bind the group and the host port).
// Everything TestDeployKubernetesDaemonSetPrivileges pins for daemonset.yaml therefore
// holds for it.
func TestDeployKubernetesEBPFDaemonSet(t *testing.T) {
	m := loadAll(t)
	v := m.ebpf.DeepCopy()
	if v.Name != m.ds.Name || v.Namespace != m.ds.Namespace {
		t.Errorf("daemonset-ebpf.yaml is %s/%s, daemonset.yaml %s/%s: want the same object", v.Namespace, v.Name, m.ds.Namespace, m.ds.Name)
	}
	if len(v.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("daemonset-ebpf.yaml has %d containers, want 1", len(v.Spec.Template.Spec.Containers))
	}
	c, base := &v.Spec.Template.Spec.Containers[0], m.ds.Spec.Template.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "BPF", "PERFMON"}) {
		t.Fatalf("daemonset-ebpf.yaml capabilities %+v, want add exactly [NET_ADMIN BPF PERFMON]", sc)
	}
	wantArgs := slices.Clone(base.Args)
	wantArgs = slices.Insert(wantArgs, slices.Index(wantArgs, "--nflog.group=0")+1, "--ebpf.enable")
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("daemonset-ebpf.yaml args %q, want %q", c.Args, wantArgs)
	}
	// With those two undone, the variant is the DaemonSet field by field.
	sc.Capabilities.Add = base.SecurityContext.Capabilities.Add
	c.Args = base.Args
	got, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.Marshal(&m.ds)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("daemonset-ebpf.yaml differs from daemonset.yaml beyond --ebpf.enable and the capabilities; first difference at line %d:\n got: %s\nwant: %s",
			firstDiffLine(got, want), lineAt(got, firstDiffLine(got, want)), lineAt(want, firstDiffLine(got, want)))
	}
}

// TestDeployKubernetesWiring checks that the selectors select the DaemonSet's pods and name
// a port the container has.
func TestDeployKubernetesWiring(t *testing.T) {
	m := loadAll(t)
	podLabels := labels.Set(m.ds.Spec.Template.Labels)
	dsSel, err := metav1.LabelSelectorAsSelector(m.ds.Spec.Selector)
	if err != nil || !dsSel.Matches(podLabels) {
		t.Errorf("DaemonSet selector %v does not match its pod template labels %v (err %v)", m.ds.Spec.Selector, podLabels, err)
	}
	if !labels.SelectorFromSet(m.svc.Spec.Selector).Matches(podLabels) || len(m.svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not match pod labels %v", m.svc.Spec.Selector, podLabels)
	}
	if len(m.svc.Spec.Ports) != 1 || m.svc.Spec.Ports[0].TargetPort != intstr.FromString("metrics") || m.svc.Spec.Ports[0].Port != metricsPort {
		t.Errorf("Service ports = %+v, want %d -> metrics", m.svc.Spec.Ports, metricsPort)
	}
	pmSel, err := metav1.LabelSelectorAsSelector(&m.pm.Spec.Selector)
	if err != nil || pmSel.Empty() || !pmSel.Matches(podLabels) {
		t.Errorf("PodMonitor selector %v does not match pod labels %v (err %v)", m.pm.Spec.Selector, podLabels, err)
	}
	if len(m.pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor has %d endpoints, want 1", len(m.pm.Spec.PodMetricsEndpoints))
	}
	ep := m.pm.Spec.PodMetricsEndpoints[0]
	if ep.Port == nil || *ep.Port != "metrics" || ep.Path != "/metrics" {
		t.Errorf("PodMonitor endpoint port %v path %q, want metrics /metrics", ep.Port, ep.Path)
	}
	if !durationRE.MatchString(string(ep.Interval)) {
		t.Errorf("PodMonitor interval %q is not a valid Duration", ep.Interval)
	}
}

// ruleFile is a Prometheus rule file. Decoding it strictly into the Operator's RuleGroup
// type proves that every field the rule files use exists in the PrometheusRule CRD.
type ruleFile struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

// ruleSources returns the rule files under deploy/prometheus: every *.yml whose only
// top-level key is "groups" (promtool test files and scrape configs have other keys).
func ruleSources(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(prometheusDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]any
		if err := yaml.Unmarshal(data, &top); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, ok := top["groups"]; ok && len(top) == 1 {
			out = append(out, f)
		}
	}
	for _, need := range []string{"alerts.yml", "rules.yml"} {
		if !slices.Contains(out, filepath.Join(prometheusDir, need)) {
			t.Errorf("deploy/prometheus/%s missing or not a rule file (found %q)", need, out)
		}
	}
	return out
}

// generateRule renders the PrometheusRule manifest from the rule files.
func generateRule(t *testing.T) []byte {
	t.Helper()
	sources := ruleSources(t)
	pr := monitoringv1.PrometheusRule{
		TypeMeta: metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      appName + "-rules",
			Namespace: namespace,
			Labels: map[string]string{
				"app.kubernetes.io/name":      appName,
				"app.kubernetes.io/component": "exporter",
			},
		},
	}
	var rel []string
	seen := map[string]string{}
	for _, f := range sources {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.UnmarshalStrict(data, &rf); err != nil {
			t.Fatalf("%s does not decode into the PrometheusRule rule group type: %v", f, err)
		}
		for _, g := range rf.Groups {
			if prev, dup := seen[g.Name]; dup {
				t.Fatalf("rule group %q in both %s and %s: group names must be unique in one PrometheusRule", g.Name, prev, f)
			}
			seen[g.Name] = f
		}
		pr.Spec.Groups = append(pr.Spec.Groups, rf.Groups...)
		rel = append(rel, "deploy/prometheus/"+filepath.Base(f))
	}
	body, err := yaml.Marshal(&pr)
	if err != nil {
		t.Fatal(err)
	}
	header := "# Code generated by `go test ./deploy/kubernetes/ -run PrometheusRule -update`. DO NOT EDIT.\n" +
		"# Source: " + strings.Join(rel, ", ") + " (edit those, then regenerate).\n" +
		"# The Prometheus resource's ruleSelector must match this object's labels\n" +
		"# (kube-prometheus-stack: add release: <its release name>, or set\n" +
		"# ruleSelectorNilUsesHelmValues: false).\n"
	return append([]byte(header), body...)
}

// TestDeployKubernetesPrometheusRuleDrift fails when prometheusrule.yaml differs from what
// deploy/prometheus generates; `-update` rewrites it.
func TestDeployKubernetesPrometheusRuleDrift(t *testing.T) {
	want := generateRule(t)
	if *update {
		if err := os.WriteFile(ruleManifest, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(ruleManifest)
	if err != nil {
		t.Fatalf("%v (run with -update to generate it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with deploy/prometheus; run `go test ./deploy/kubernetes/ -run PrometheusRule -update`.\nfirst difference at line %d:\n got: %s\nwant: %s",
			ruleManifest, firstDiffLine(got, want), lineAt(got, firstDiffLine(got, want)), lineAt(want, firstDiffLine(got, want)))
	}

	// The committed manifest decodes strictly and carries every rule of the sources.
	var pr monitoringv1.PrometheusRule
	if err := decodeStrict(got, &pr); err != nil {
		t.Fatalf("%s: %v", ruleManifest, err)
	}
	var alerts, records int
	for _, g := range pr.Spec.Groups {
		if g.Interval != nil && !durationRE.MatchString(string(*g.Interval)) {
			t.Errorf("group %s: interval %q is not a valid Duration", g.Name, *g.Interval)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert != "" && r.Record == "":
				alerts++
			case r.Record != "" && r.Alert == "":
				records++
			default:
				t.Errorf("group %s: rule must have exactly one of alert/record: %+v", g.Name, r)
			}
			if strings.TrimSpace(r.Expr.String()) == "" {
				t.Errorf("group %s rule %s%s: empty expr", g.Name, r.Alert, r.Record)
			}
			if r.For != nil && !durationRE.MatchString(string(*r.For)) {
				t.Errorf("rule %s: for %q is not a valid Duration", r.Alert, *r.For)
			}
			if r.KeepFiringFor != nil && !durationRE.MatchString(string(*r.KeepFiringFor)) {
				t.Errorf("rule %s: keep_firing_for %q is not a valid Duration", r.Alert, *r.KeepFiringFor)
			}
		}
	}
	if alerts == 0 || records == 0 {
		t.Errorf("%s has %d alerts and %d recording rules, want both > 0", ruleManifest, alerts, records)
	}
	t.Logf("%s: %d groups, %d alerts, %d recording rules", ruleManifest, len(pr.Spec.Groups), alerts, records)
}

func firstDiffLine(a, b []byte) int {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(la) && i < len(lb); i++ {
		if !bytes.Equal(la[i], lb[i]) {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

func lineAt(b []byte, n int) string {
	lines := bytes.Split(b, []byte("\n"))
	if n-1 < len(lines) {
		return string(lines[n-1])
	}
	return "<EOF>"
}

// TestDeployKubernetesPrometheusRuleLoads hands the committed manifest's groups to promtool
// as a rule file, which is what the Prometheus Operator does with them.
func TestDeployKubernetesPrometheusRuleLoads(t *testing.T) {
	promtool := e2e.Tool(t, "promtool")
	var pr monitoringv1.PrometheusRule
	load(t, ruleManifest, &pr)
	data, err := yaml.Marshal(ruleFile{Groups: pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
	t.Logf("promtool: %s", bytes.TrimSpace(out))
}

// imageRE is the name the DaemonSet must use: the image `make image` builds, pushed to a
// registry (a host name with a dot or port), tagged with a release version.
var imageRE = regexp.MustCompile(`^[a-z0-9-]+(\.[a-z0-9-]+)*(\.[a-z0-9-]+|:[0-9]+)/([a-z0-9._-]+/)*([a-z0-9._-]+):([0-9]+\.[0-9]+\.[0-9]+)$`)

// TestDeployKubernetesImageName checks that the DaemonSet, the Makefile's image target,
// the Containerfile and deploy/README.md name and run the image the same way.
func TestDeployKubernetesImageName(t *testing.T) {
	m := loadAll(t)
	c := m.ds.Spec.Template.Spec.Containers[0]
	match := imageRE.FindStringSubmatch(c.Image)
	if match == nil {
		t.Fatalf("image %q is not REGISTRY/nfdrop_exporter:VERSION", c.Image)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	def := regexp.MustCompile(`(?m)^IMAGE\s*\?=\s*(\S+)$`).FindSubmatch(mk)
	if def == nil {
		t.Fatal("Makefile sets no IMAGE ?= default")
	}
	if name := match[len(match)-2]; name != string(def[1]) || name != "nfdrop_exporter" {
		t.Errorf("DaemonSet image name %q, Makefile IMAGE %q: want both nfdrop_exporter", name, def[1])
	}
	cf, err := os.ReadFile("../container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nENTRYPOINT [\"/bin/nfdrop_exporter\"]\n", "\nEXPOSE " + strconv.Itoa(metricsPort) + "\n"} {
		if !bytes.Contains(cf, []byte(want)) {
			t.Errorf("Containerfile lacks %q", strings.TrimSpace(want))
		}
	}
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REGISTRY/nfdrop_exporter:VERSION", c.Image, "kubectl apply -f deploy/kubernetes/daemonset.yaml"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("deploy/README.md does not mention %q", want)
		}
	}
}
