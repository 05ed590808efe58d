package service_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/service"
)

func TestConfigFromEnvLimits(t *testing.T) {
	t.Setenv("SWITCHBOARD_ADMIN_ADDR", "off")
	t.Setenv("SWITCHBOARD_BODY_TIMEOUT", "5s")
	t.Setenv("SWITCHBOARD_MAX_SLOW_BODIES", "-1")
	c, err := service.ConfigFromEnv("127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != "" || c.HTTPLimits.BodyTimeout != 5*time.Second || c.HTTPLimits.MaxSlowBodies != -1 {
		t.Errorf("config %+v", c)
	}
	t.Setenv("SWITCHBOARD_ADMIN_ADDR", "")
	t.Setenv("SWITCHBOARD_MAX_SLOW_BODIES", "0")
	if _, err := service.ConfigFromEnv(""); err == nil {
		t.Error("SWITCHBOARD_MAX_SLOW_BODIES=0 accepted")
	}
	t.Setenv("SWITCHBOARD_MAX_SLOW_BODIES", "")
	if c, _ := service.ConfigFromEnv(""); c.AdminAddr != service.DefaultAdminAddr {
		t.Errorf("default admin addr %q", c.AdminAddr)
	}
}

func TestReadyzNamesFailingChecks(t *testing.T) {
	var h service.Health
	natsOK := true
	h.AddCheck(service.Check{Name: "nats", Probe: func() service.CheckResult {
		if natsOK {
			return service.OK()
		}
		return service.CheckResult{Status: "disconnected", Detail: "RECONNECTING"}
	}})
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	h.Register(e)
	get := func() (int, service.Readiness) {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var r service.Readiness
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return rec.Code, r
	}
	if code, r := get(); code != http.StatusServiceUnavailable || r.Checks["shutdown"].Status != "starting" {
		t.Errorf("before SetReady: %d %+v", code, r)
	}
	h.SetReady(true)
	if code, r := get(); code != http.StatusOK || r.Status != "ready" || r.Checks["nats"].Status != service.StatusOK {
		t.Errorf("ready: %d %+v", code, r)
	}
	natsOK = false
	if code, r := get(); code != http.StatusServiceUnavailable || r.Status != "not ready" || r.Checks["nats"].Status != "disconnected" {
		t.Errorf("nats down: %d %+v", code, r)
	}
	natsOK = true
	h.SetReady(false)
	if code, r := get(); code != http.StatusServiceUnavailable || r.Checks["shutdown"].Status != "stopping" {
		t.Errorf("stopping: %d %+v", code, r)
	}
}
