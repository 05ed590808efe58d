package service

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// TestLoggerDurations: durations are logged as Go duration strings, at the
// top level and in groups.
func TestLoggerDurations(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, slog.LevelInfo).Info("ready", "startup", 200*time.Millisecond, slog.Group("g", "wait", 1500*time.Millisecond), "n", 3)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	if got["startup"] != "200ms" || got["g"].(map[string]any)["wait"] != "1.5s" || got["n"] != float64(3) {
		t.Fatalf("logged %s, want startup \"200ms\", g.wait \"1.5s\" and n 3", buf.Bytes())
	}
}
