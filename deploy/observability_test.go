package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The alerting rules and the dashboard are checked against what Switchboard
// really exports: a `switchboard dev` built from this tree is started, made
// to route, run, fail and dead-letter a little, and scraped on its admin
// listener. Every metric a rule or a panel names must be in that scrape,
// with the labels it matches on.
const (
	rulesFile     = "prometheus/switchboard-rules.yaml"
	dashboardFile = "grafana/switchboard.json"
)

// synthetic are series Prometheus records itself for every scrape target;
// a running Switchboard cannot export them.
var synthetic = map[string]bool{"up": true}

// targetLabels are attached by Prometheus to every series it scrapes.
var targetLabels = map[string]bool{"job": true, "instance": true}

func TestAlertRulesParseAndNameRealMetrics(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.LegacyValidation, p, nil)
	if len(errs) > 0 {
		t.Fatalf("%s does not load in Prometheus: %v", rulesFile, errs)
	}
	scrape := devScrape(t)
	seen := map[string]bool{}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			name := r.Alert
			if name == "" {
				t.Errorf("group %s: rule %q is not an alert (this file ships alerts only)", g.Name, r.Record)
				continue
			}
			if seen[name] {
				t.Errorf("alert %s is defined twice", name)
			}
			seen[name] = true
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("alert %s: severity %q, want critical, warning or info", name, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", name)
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", name, err)
				continue
			}
			scrape.check(t, "alert "+name, expr)
		}
	}
	if n == 0 {
		t.Fatalf("%s holds no rules", rulesFile)
	}
}

// grafanaPanel is the part of a Grafana panel the check reads.
type grafanaPanel struct {
	ID      int                      `json:"id"`
	Type    string                   `json:"type"`
	Title   string                   `json:"title"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

// grafanaVars are the dashboard variables PromQL cannot parse; they are
// replaced by what Grafana would put there before the expression is parsed.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

func TestDashboardPanelsNameRealMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string         `json:"title"`
		UID        string         `json:"uid"`
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s: a dashboard needs a title, a uid and panels", dashboardFile)
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "job"} {
		if !vars[v] {
			t.Errorf("dashboard variable $%s is used by the panels but not defined", v)
		}
	}
	scrape := devScrape(t)
	p := parser.NewParser(parser.Options{})
	ids := map[int]bool{}
	used := map[string]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, pn := range panels {
			if ids[pn.ID] {
				t.Errorf("panel id %d is used twice", pn.ID)
			}
			ids[pn.ID] = true
			if pn.GridPos.W <= 0 || pn.GridPos.X+pn.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos x %d w %d does not fit 24 columns", pn.Title, pn.GridPos.X, pn.GridPos.W)
			}
			if pn.Type == "row" {
				walk(pn.Panels)
				continue
			}
			if len(pn.Targets) == 0 {
				t.Errorf("panel %q has no query", pn.Title)
			}
			for _, tg := range pn.Targets {
				expr, err := p.ParseExpr(grafanaVars.Replace(tg.Expr))
				if err != nil {
					t.Errorf("panel %q, query %s: %v", pn.Title, tg.RefID, err)
					continue
				}
				for _, name := range scrape.check(t, fmt.Sprintf("panel %q", pn.Title), expr) {
					used[name] = true
				}
			}
		}
	}
	walk(dash.Panels)
	// Every Switchboard metric has a place on the dashboard: a new one
	// fails here until a panel shows it.
	shown := map[string]bool{}
	for name := range used {
		shown[baseName(name)] = true
	}
	for _, name := range scrape.names() {
		if strings.HasPrefix(name, "switchboard_") && !shown[baseName(name)] {
			t.Errorf("%s is exported but no panel of %s shows it", name, dashboardFile)
		}
	}
}

// baseName is a histogram's or summary's name without the suffix of one of
// its series.
func baseName(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			return b
		}
	}
	return name
}

// scrape is one /metrics answer: every series name (a histogram's _bucket,
// _sum and _count each) with the label names seen on it.
type scrape map[string]map[string]bool

func (s scrape) names() []string {
	var out []string
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// check reports every vector selector of expr that names a metric the
// scrape does not have, or matches on a label that metric does not carry,
// and returns the metric names expr uses.
func (s scrape) check(t *testing.T, where string, expr parser.Expr) []string {
	t.Helper()
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			t.Errorf("%s: selector %s names no metric", where, vs)
			return nil
		}
		names = append(names, name)
		labels, ok := s[name]
		if !ok && !synthetic[name] {
			t.Errorf("%s: %s is not exported by switchboard dev (scrape has %d series names)", where, name, len(s))
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel || targetLabels[m.Name] {
				continue
			}
			if !labels[m.Name] {
				t.Errorf("%s: %s has no label %q", where, name, m.Name)
			}
		}
		return nil
	})
	return names
}

// client bounds every call to the dev system, so a stuck process fails the
// test instead of hanging it.
var client = &http.Client{Timeout: 15 * time.Second}

var (
	scrapeOnce   sync.Once
	scrapeResult scrape
	scrapeErr    error
)

// devScrape starts one `switchboard dev` for the whole test binary, drives
// it through every path that creates a series, and scrapes it.
func devScrape(t *testing.T) scrape {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs switchboard dev")
	}
	scrapeOnce.Do(func() { scrapeResult, scrapeErr = runDevAndScrape() })
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	return scrapeResult
}

func runDevAndScrape() (scrape, error) {
	dir, err := os.MkdirTemp("", "switchboard-observability-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := os.Getenv("SWITCHBOARD_OBSERVABILITY_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "switchboard")
		build := exec.Command("go", "build", "-o", bin, "./services/switchboard/cmd/switchboard")
		// The workspace root: go.work has every module, even when the
		// test itself runs with GOWORK=off.
		root, err := filepath.Abs("..")
		if err != nil {
			return nil, err
		}
		build.Dir = root
		build.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build switchboard: %v\n%s", err, out)
		}
	}
	// The examples' http steps call 127.0.0.1:9000; dev rewrites that to
	// this listener, which answers like a remote API would.
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer listener.Close()
	httpAddr, natsAddr, adminAddr := freeAddr(), freeAddr(), freeAddr()
	data := filepath.Join(dir, "data")
	logf, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "dev", "--data-dir", data, "--http-addr", httpAddr, "--nats-addr", natsAddr)
	cmd.Env = append(os.Environ(),
		"SWITCHBOARD_ADMIN_ADDR="+adminAddr,
		"SWITCHBOARD_EXAMPLES_LISTENER="+strings.TrimPrefix(listener.URL, "http://"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	fail := func(err error) (scrape, error) {
		log, _ := os.ReadFile(logf.Name())
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return nil, fmt.Errorf("%w\nswitchboard dev log (tail):\n%s", err, log)
	}

	sb := "http://" + httpAddr
	if err := poll(30*time.Second, func() error {
		res, err := client.Get(sb + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", res.StatusCode)
		}
		return nil
	}); err != nil {
		return fail(err)
	}
	key, err := os.ReadFile(filepath.Join(data, "dev-api-key"))
	if err != nil {
		return fail(err)
	}
	out, err := exec.Command(bin, "token", "--user", "u1", "--data-dir", data).Output()
	if err != nil {
		return fail(fmt.Errorf("switchboard token: %v", err))
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	token := lines[len(lines)-1]
	call := func(method, path, bearer, body string, want ...int) error {
		req, _ := http.NewRequest(method, sb+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !slices.Contains(want, res.StatusCode) {
			return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		return nil
	}
	apiKey := strings.TrimSpace(string(key))
	for _, c := range []struct{ method, path, bearer, body string }{
		{"PUT", "/v1/projects/dev/users/u1", apiKey, `{"metadata":{"timezone":"Europe/Berlin"}}`},
		{"PUT", "/v1/projects/dev/users/u1/credentials/c1", apiKey, `{"integration":"crm","providerAccountId":"acct-42","secret":{"accessToken":"crm-token-123"}}`},
		// An App Event whose run goes through RUNS and succeeds.
		{"POST", "/v1/projects/dev/events", token, `{"name":"Contact Created","payload":{"email":"ada@example.com"}}`},
		// A synchronous request trigger, run by the router in place.
		{"POST", "/v1/projects/dev/workflows/quote/trigger", token, `{"item":"pen","qty":4}`},
		// A run that fails after its retries and is copied to DEAD.
		{"POST", "/v1/projects/dev/workflows/unreachable/trigger", token, `{}`},
	} {
		if err := call(c.method, c.path, c.bearer, c.body, 200, 201, 202); err != nil {
			return fail(err)
		}
	}
	// A trigger that can never be routed, straight onto the bus: the router
	// dead-letters it.
	if err := natsPublish(natsAddr, "sb.trigger.dev.app_event.u1", "{not json"); err != nil {
		return fail(err)
	}

	admin := "http://" + adminAddr + "/metrics"
	var got scrape
	want := []string{
		"switchboard_triggers_received_total", "switchboard_triggers_routed_total",
		"switchboard_runs_dispatched_total", "switchboard_runs_finished_total",
		"switchboard_run_duration_seconds_bucket", "switchboard_consumer_pending",
		"switchboard_consumer_handled_total", "switchboard_consumer_dead_lettered_total",
		"switchboard_http_requests_total", "switchboard_http_request_duration_seconds_bucket",
		"switchboard_ready", "switchboard_trigger_publish_failures_total",
	}
	err = poll(60*time.Second, func() error {
		s, fams, err := scrapeMetrics(admin)
		if err != nil {
			return err
		}
		for _, n := range want {
			if _, ok := s[n]; !ok {
				return fmt.Errorf("no %s yet", n)
			}
		}
		// Both outcomes of a run and of routing, so the series the rules
		// select by label exist.
		for name, vals := range map[string][]string{
			"switchboard_runs_finished_total":   {"succeeded", "failed"},
			"switchboard_triggers_routed_total": {"routed", "dead"},
		} {
			for _, v := range vals {
				if !hasLabelValue(fams[name], v) {
					return fmt.Errorf("no %s with %q yet", name, v)
				}
			}
		}
		got = s
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return got, nil
}

func scrapeMetrics(url string) (scrape, map[string]*dto.MetricFamily, error) {
	res, err := client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %d", url, res.StatusCode)
	}
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("parse /metrics: %w", err)
	}
	s := scrape{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if s[name] == nil {
			s[name] = map[string]bool{}
		}
		for _, lp := range m.GetLabel() {
			s[name][lp.GetName()] = true
		}
		for _, l := range extra {
			s[name][l] = true
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return s, fams, nil
}

func hasLabelValue(f *dto.MetricFamily, v string) bool {
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetValue() == v {
				return true
			}
		}
	}
	return false
}

// natsPublish is a core NATS publish over the plain text protocol (the
// dev server takes local clients without credentials); JetStream stores
// it like any publish on a stream's subject.
func natsPublish(addr, subject, payload string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO") {
		return fmt.Errorf("nats %s: no INFO (%q, %v)", addr, line, err)
	}
	if _, err := fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPUB %s %d\r\n%s\r\nPING\r\n", subject, len(payload), payload); err != nil {
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "PONG"):
			return nil
		case strings.HasPrefix(line, "-ERR"):
			return fmt.Errorf("nats: %s", strings.TrimSpace(line))
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func poll(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", d, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
