package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are every overlay under k8s/overlays, with what differs between
// them: the NATS servers the overlay brings and the stream replicas.
var overlays = map[string]struct{ natsServers, replicas int }{
	"dev":  {natsServers: 1, replicas: 1},
	"prod": {natsServers: 3, replicas: 3},
}

// autoscaled are the roles that take outside traffic or do the runs, the
// ones worth scaling on CPU.
var autoscaled = []string{"ingress", "webhook-receiver", "router"}

// secretName is the Secret the operator creates from the env file (README);
// it is referenced, never rendered, so no secret value is committed.
const secretName = "switchboard-secrets"

// rendered is one overlay's output, each object decoded strictly into its
// Kubernetes type.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	statefulsets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	namespaces   map[string]*corev1.Namespace
}

// render runs kustomize's own library on an overlay, as `kubectl apply -k`
// does, and decodes every object. A field the Kubernetes type does not
// have (a typo, a wrong nesting level) fails the decode, which the API
// server would otherwise reject or, worse, silently drop.
func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("k8s", "overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	out := &rendered{
		deployments: map[string]*appsv1.Deployment{}, statefulsets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		namespaces: map[string]*corev1.Namespace{},
	}
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		name := r.GetName()
		var obj any
		switch gvk {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			out.deployments[name], obj = o, o
		case "apps/v1/StatefulSet":
			o := &appsv1.StatefulSet{}
			out.statefulsets[name], obj = o, o
		case "v1/Service":
			o := &corev1.Service{}
			out.services[name], obj = o, o
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			out.configMaps[name], obj = o, o
		case "v1/Namespace":
			o := &corev1.Namespace{}
			out.namespaces[name], obj = o, o
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			out.pdbs[name], obj = o, o
		case "autoscaling/v2/HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			out.hpas[name], obj = o, o
		default:
			t.Fatalf("%s: %s %s: no Kubernetes type to check it against (add it to render)", overlay, gvk, name)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s: %s %s does not decode strictly: %v", overlay, gvk, name, err)
		}
	}
	return out
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	// The guard the render relies on: a misspelt field is an error, not a
	// field quietly dropped.
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n")
	if err := yaml.UnmarshalStrict(doc, &appsv1.Deployment{}); err == nil {
		t.Fatal("spec.replica decoded into a Deployment without an error")
	}
}

func TestOverlays(t *testing.T) {
	roles := binaryRoles(t)
	for overlay, want := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			if len(r.namespaces) != 1 {
				t.Errorf("want one Namespace, got %d", len(r.namespaces))
			}
			var cfg map[string]string
			for _, role := range roles {
				cfg = checkRole(t, r, role)
			}
			if cfg == nil {
				return
			}
			if got := cfg["SWITCHBOARD_REPLICAS"]; got != strconv.Itoa(want.replicas) {
				t.Errorf("SWITCHBOARD_REPLICAS = %q, want %d", got, want.replicas)
			}
			checkNATS(t, r, cfg, want.natsServers)
			for name, h := range r.hpas {
				ref := h.Spec.ScaleTargetRef
				if ref.Kind != "Deployment" || r.deployments[ref.Name] == nil {
					t.Errorf("HPA %s scales %s %s, not a rendered Deployment", name, ref.Kind, ref.Name)
				}
			}
		})
	}
}

// checkRole checks one role's Deployment, Service, PodDisruptionBudget and
// (for the autoscaled roles) HPA, and returns the settings its pods get.
func checkRole(t *testing.T, r *rendered, role string) map[string]string {
	t.Helper()
	name := "switchboard-" + role
	d := r.deployments[name]
	if d == nil {
		t.Errorf("no Deployment %s for the role %s", name, role)
		return nil
	}
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if !selects(t, d.Spec.Selector, podLabels) {
		t.Errorf("%s: its selector does not select its own pods", name)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", name, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if want := []string{"serve", "--role", role}; !slices.Equal(c.Args, want) {
		t.Errorf("%s: args %q, want %q", name, c.Args, want)
	}
	if !strings.Contains(c.Image, ":") || !strings.Contains(c.Image, "/") {
		t.Errorf("%s: image %q is not a registry image with a tag (the images transformer did not apply)", name, c.Image)
	}

	// Settings: the ConfigMap it refers to must be in the render; the Secret
	// is the operator's.
	cfg := map[string]string{}
	var secretRef bool
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := r.configMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				t.Errorf("%s: envFrom ConfigMap %s is not rendered", name, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				cfg[k] = v
			}
		case ef.SecretRef != nil:
			secretRef = ef.SecretRef.Name == secretName && (ef.SecretRef.Optional == nil || !*ef.SecretRef.Optional)
		}
	}
	for _, e := range c.Env {
		cfg[e.Name] = e.Value
	}
	if !secretRef {
		t.Errorf("%s: no required envFrom secretRef %s (admin token, secret key)", name, secretName)
	}

	// Ports and probes: /healthz and /readyz on the HTTP port the process
	// listens on; the admin listener bound wide enough to scrape.
	httpPort := port(t, name, cfg["SWITCHBOARD_HTTP_ADDR"])
	if cfg["SWITCHBOARD_ADMIN_ADDR"] != ":9090" {
		t.Errorf("%s: SWITCHBOARD_ADMIN_ADDR = %q: containers must bind :9090 (the default is loopback)", name, cfg["SWITCHBOARD_ADMIN_ADDR"])
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", name, what)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s: %s probe on %s, want %s", name, what, p.HTTPGet.Path, path)
		}
		if got := containerPort(c, p.HTTPGet.Port.String()); got != httpPort {
			t.Errorf("%s: %s probe on port %d, the process listens on %d", name, what, got, httpPort)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")

	// Resources: requests to schedule on, a memory limit above GOMEMLIMIT.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("%s: want cpu and memory requests and a memory limit, got %v / %v", name, req, lim)
	}

	// Security: non-root, read-only root, and so a writable data dir.
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container must have readOnlyRootFilesystem true and allowPrivilegeEscalation false", name)
	}
	if !mountsVolume(pod.Spec, c, cfg["SWITCHBOARD_DATA_DIR"]) {
		t.Errorf("%s: SWITCHBOARD_DATA_DIR %q is not a mounted volume (the root file system is read-only)", name, cfg["SWITCHBOARD_DATA_DIR"])
	}

	// Spread over nodes and zones.
	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		t.Errorf("%s: no topologySpreadConstraints", name)
	}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector, podLabels) {
			t.Errorf("%s: the spread constraint on %s does not select its pods", name, tsc.TopologyKey)
		}
	}

	// Graceful termination: the kubelet waits longer than the drain delay
	// plus the shutdown budget before SIGKILL.
	drain := duration(t, name, "SWITCHBOARD_DRAIN_DELAY", cfg["SWITCHBOARD_DRAIN_DELAY"], 2*time.Second)
	shutdown := duration(t, name, "SWITCHBOARD_SHUTDOWN_TIMEOUT", cfg["SWITCHBOARD_SHUTDOWN_TIMEOUT"], 30*time.Second)
	grace := time.Duration(30) * time.Second
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= drain+shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %s is not longer than the drain delay %s + shutdown timeout %s", name, grace, drain, shutdown)
	}

	// Its Service, PodDisruptionBudget and HPA.
	svc := r.services[name]
	if svc == nil {
		t.Errorf("no Service %s", name)
	} else {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s does not select the %s pods", name, role)
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return containerPort(c, p.TargetPort.String()) == httpPort
		}) {
			t.Errorf("Service %s has no port to the HTTP port %d", name, httpPort)
		}
	}
	if !slices.ContainsFunc(mapValues(r.pdbs), func(p *policyv1.PodDisruptionBudget) bool {
		return selects(t, p.Spec.Selector, podLabels)
	}) {
		t.Errorf("no PodDisruptionBudget selects the %s pods", role)
	}
	h := r.hpas[name]
	switch {
	case slices.Contains(autoscaled, role) && h == nil:
		t.Errorf("no HorizontalPodAutoscaler %s", name)
	case h != nil && (h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas):
		t.Errorf("HPA %s: minReplicas %v, maxReplicas %d", name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	return cfg
}

// checkNATS checks the NATS the overlay brings against the URL the roles
// connect to: n servers in a StatefulSet on persistent volumes, and for a
// cluster the official chart's shape — a headless service publishing not
// ready pods, routes to every pod through it, a budget keeping the quorum.
func checkNATS(t *testing.T, r *rendered, cfg map[string]string, n int) {
	t.Helper()
	ss := r.statefulsets["nats"]
	if ss == nil {
		t.Fatal("no StatefulSet nats")
	}
	if ss.Spec.Replicas == nil || int(*ss.Spec.Replicas) != n {
		t.Errorf("StatefulSet nats: replicas %v, want %d", ss.Spec.Replicas, n)
	}
	if len(ss.Spec.VolumeClaimTemplates) == 0 || ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().IsZero() {
		t.Error("StatefulSet nats: no volumeClaimTemplate with a storage request for JetStream")
	}
	pvc := ss.Spec.VolumeClaimTemplates[0].Name
	c := ss.Spec.Template.Spec.Containers[0]
	var storeDir string
	for _, m := range c.VolumeMounts {
		if m.Name == pvc {
			storeDir = m.MountPath
		}
	}
	if storeDir == "" {
		t.Errorf("StatefulSet nats: the volume claim %s is not mounted", pvc)
	}
	podLabels := labels.Set(ss.Spec.Template.Labels)
	for _, svc := range r.services {
		if strings.HasPrefix(svc.Name, "switchboard-") && labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects the NATS pods", svc.Name)
		}
	}

	// Every host in SWITCHBOARD_NATS_URL is a rendered Service (or a pod of
	// the StatefulSet through its governing service), on the client port.
	hosts := map[string]bool{}
	for _, u := range strings.Split(cfg["SWITCHBOARD_NATS_URL"], ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Scheme != "nats" || pu.Port() != "4222" {
			t.Errorf("SWITCHBOARD_NATS_URL %q: want nats://HOST:4222 URLs", u)
			continue
		}
		host := pu.Hostname()
		hosts[host] = true
		svc, _, _ := strings.Cut(host, ".")
		if pod, gov, ok := strings.Cut(host, "."); ok {
			svc = gov
			if !strings.HasPrefix(pod, ss.Name+"-") || gov != ss.Spec.ServiceName {
				t.Errorf("SWITCHBOARD_NATS_URL host %s is not a pod of StatefulSet %s under its service %s", host, ss.Name, ss.Spec.ServiceName)
			}
		}
		if s := r.services[svc]; s == nil || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("SWITCHBOARD_NATS_URL host %s: no rendered Service %s for the NATS pods", host, svc)
		}
	}

	gov := r.services[ss.Spec.ServiceName]
	if gov == nil {
		t.Fatalf("StatefulSet nats: its serviceName %s is not rendered", ss.Spec.ServiceName)
	}
	if n == 1 {
		if !slices.Contains(c.Args, "-js") || !slices.Contains(c.Args, "-sd") {
			t.Errorf("single NATS: args %q lack -js -sd DIR", c.Args)
		}
		return
	}

	// A cluster.
	if gov.Spec.ClusterIP != corev1.ClusterIPNone || !gov.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: a cluster's governing service must be headless and publish not-ready addresses", gov.Name)
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet nats: podManagementPolicy %q, want Parallel (a quorum cannot form one pod at a time)", ss.Spec.PodManagementPolicy)
	}
	for i := range n {
		host := fmt.Sprintf("%s-%d.%s", ss.Name, i, ss.Spec.ServiceName)
		if !hosts[host] {
			t.Errorf("SWITCHBOARD_NATS_URL does not list %s", host)
		}
	}
	var conf string
	for _, v := range ss.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && r.configMaps[v.ConfigMap.Name] != nil {
			conf = r.configMaps[v.ConfigMap.Name].Data["nats.conf"]
		}
	}
	if conf == "" {
		t.Fatal("StatefulSet nats: no mounted ConfigMap with nats.conf")
	}
	// The config as nats-server itself reads it (its own parser and option
	// checks, $SERVER_NAME from the pod's env): a typo in nats.conf is
	// nothing to the Kubernetes types, and a pod in CrashLoopBackOff later.
	opts := natsConf(t, conf, ss.Name+"-0")
	if !opts.JetStream || opts.StoreDir != storeDir {
		t.Errorf("nats.conf: JetStream %t with store_dir %q, want it on the volume claim's mount %s", opts.JetStream, opts.StoreDir, storeDir)
	}
	if opts.ServerName != ss.Name+"-0" {
		t.Errorf("nats.conf: server_name %q, want the pod name from $SERVER_NAME", opts.ServerName)
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port != containerPort(c, "cluster") {
		t.Errorf("nats.conf: cluster %q on port %d, want a named cluster on the container's cluster port %d", opts.Cluster.Name, opts.Cluster.Port, containerPort(c, "cluster"))
	}
	var routes []string
	for _, r := range opts.Routes {
		routes = append(routes, r.String())
	}
	for i := range n {
		route := fmt.Sprintf("nats://%s-%d.%s:%d", ss.Name, i, gov.Name, opts.Cluster.Port)
		if !slices.Contains(routes, route) {
			t.Errorf("nats.conf: no cluster route %s (routes %q)", route, routes)
		}
	}
	if ss.Spec.Template.Spec.TerminationGracePeriodSeconds == nil ||
		time.Duration(*ss.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second <= opts.LameDuckDuration {
		t.Errorf("StatefulSet nats: terminationGracePeriodSeconds must exceed lame_duck_duration %s", opts.LameDuckDuration)
	}
	if pid := opts.PidFile; pid == "" || !mountsVolume(ss.Spec.Template.Spec, c, filepath.Dir(pid)) {
		t.Errorf("nats.conf: pid_file %q is not on a mounted volume (the root file system is read-only; the preStop signal needs it)", pid)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
		!slices.ContainsFunc(c.Lifecycle.PreStop.Exec.Command, func(s string) bool { return strings.HasPrefix(s, "-sl=ldm") }) {
		t.Error("StatefulSet nats: no preStop lame-duck signal (nats-server -sl=ldm=PIDFILE)")
	}
	var quorum bool
	for _, p := range r.pdbs {
		if selects(t, p.Spec.Selector, podLabels) && p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.IntValue() == (n-1)/2 {
			quorum = true
		}
	}
	if !quorum {
		t.Errorf("no PodDisruptionBudget with maxUnavailable %d for the NATS pods (keeps the JetStream quorum)", (n-1)/2)
	}
}

// binaryRoles reads the role list of the binary (roleList in
// services/switchboard/app), so a role added there without deploy files
// fails here. It parses the source rather than importing the package: this
// module stays free of the services' dependencies.
func binaryRoles(t *testing.T) []string {
	t.Helper()
	consts, list := parseConsts(t, filepath.Join("..", "services", "switchboard", "app"), true)
	if list == nil {
		t.Fatal("no roleList in services/switchboard/app")
	}
	var roles []string
	for _, e := range list.Elts {
		cl, ok := e.(*ast.CompositeLit)
		if !ok || len(cl.Elts) == 0 {
			continue
		}
		switch v := cl.Elts[0].(type) {
		case *ast.Ident:
			roles = append(roles, consts[v.Name])
		case *ast.BasicLit:
			s, _ := strconv.Unquote(v.Value)
			roles = append(roles, s)
		}
	}
	if len(roles) < 6 || slices.Contains(roles, "") {
		t.Fatalf("roleList in services/switchboard/app read as %q", roles)
	}
	return roles
}

// modulePrefix is the import path prefix of this repository's packages.
const modulePrefix = "github.com/switchboard-hq/switchboard/"

// parseConsts returns the string constants of the package in dir — a
// constant defined as another of this repository's packages' constant
// (RoleWebhookReceiver = receiver.Name) is followed there — and, when
// wantList, the first composite literal in func roleList.
func parseConsts(t *testing.T, dir string, wantList bool) (map[string]string, *ast.CompositeLit) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	consts := map[string]string{}
	var list *ast.CompositeLit
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := map[string]string{} // local name -> directory
		for _, im := range af.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			rel, ok := strings.CutPrefix(path, modulePrefix)
			if !ok {
				continue
			}
			local := filepath.Base(path)
			if im.Name != nil {
				local = im.Name.Name
			}
			imports[local] = filepath.Join("..", filepath.FromSlash(rel))
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i >= len(n.Values) {
						continue
					}
					switch v := n.Values[i].(type) {
					case *ast.BasicLit:
						if v.Kind == token.STRING {
							consts[id.Name], _ = strconv.Unquote(v.Value)
						}
					case *ast.SelectorExpr:
						if x, ok := v.X.(*ast.Ident); ok && imports[x.Name] != "" {
							other, _ := parseConsts(t, imports[x.Name], false)
							consts[id.Name] = other[v.Sel.Name]
						}
					}
				}
			case *ast.FuncDecl:
				if wantList && n.Name.Name == "roleList" {
					ast.Inspect(n.Body, func(m ast.Node) bool {
						if cl, ok := m.(*ast.CompositeLit); ok && list == nil {
							list = cl
						}
						return list == nil
					})
				}
			}
			return true
		})
	}
	return consts, list
}

func selects(t *testing.T, ls *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	if ls == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("label selector %v: %v", ls, err)
		return false
	}
	return !sel.Empty() && sel.Matches(set)
}

// containerPort resolves a probe's or service's port (a number or a port
// name) to the container's port number.
func containerPort(c corev1.Container, p string) int {
	if n, err := strconv.Atoi(p); err == nil {
		return n
	}
	for _, cp := range c.Ports {
		if cp.Name == p {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func port(t *testing.T, name, addr string) int {
	t.Helper()
	_, p, ok := strings.Cut(addr, ":")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || strings.Contains(strings.TrimSuffix(addr, ":"+p), "127.0.0.1") {
		t.Errorf("%s: SWITCHBOARD_HTTP_ADDR %q: want :PORT (a pod must listen beyond loopback)", name, addr)
	}
	return n
}

func duration(t *testing.T, name, key, v string, def time.Duration) time.Duration {
	t.Helper()
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("%s: %s %q: %v", name, key, v, err)
	}
	return d
}

// natsConf parses a nats.conf with nats-server's own config processing,
// as the server named serverName (the pod name the StatefulSet gives it).
func natsConf(t *testing.T, conf, serverName string) *server.Options {
	t.Helper()
	t.Setenv("SERVER_NAME", serverName)
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}
	return opts
}

func mountsVolume(spec corev1.PodSpec, c corev1.Container, dir string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir && !m.ReadOnly && slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			return true
		}
	}
	return false
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
