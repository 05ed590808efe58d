package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

// TestDefect9MetricsNotOnPublicPort: /metrics on the API's port named
// every project id to anyone who asked. Metrics (and profiles) are on the
// admin listener, loopback by default; the public port keeps only the
// probes Kubernetes needs.
func TestDefect9MetricsNotOnPublicPort(t *testing.T) {
	a := startDefect7(t, defect9Options(t))
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := httpClient.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pub := "http://" + a.HTTPAddr()
	if status, body := get(pub + "/metrics"); status != http.StatusNotFound {
		t.Fatalf("public /metrics: %d %.200s, want 404", status, body)
	}
	if status, _ := get(pub + "/debug/pprof/"); status != http.StatusNotFound {
		t.Fatalf("public /debug/pprof/: %d, want 404", status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := get(pub + path); status != http.StatusOK {
			t.Fatalf("public %s: %d %s", path, status, body)
		}
	}
	defect9Admin(t, a, get)
}

func defect9Options(t *testing.T) app.Options {
	return app.Options{AdminAddr: "127.0.0.1:0", AdminPprof: true}
}

// defect9Admin: what left the public port is on the admin listener.
func defect9Admin(t *testing.T, a *app.App, get func(string) (int, string)) {
	t.Helper()
	adm := "http://" + a.AdminAddr()
	if status, body := get(adm + "/metrics"); status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("admin /metrics: %d %.200s", status, body)
	}
	if status, _ := get(adm + "/debug/pprof/"); status != http.StatusOK {
		t.Fatalf("admin /debug/pprof/: %d", status)
	}
}
