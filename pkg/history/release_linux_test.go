package history

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
)

// releaseMapped finds the file's mapping and hands it back without changing
// what reads see.
func TestReleaseMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, nil, nil)
	r := mkRun("acme", "w", "u", runs.StatusSucceeded, 1, time.Now())
	if err := s.Apply(1, "sb.history.acme.run", nil, mustJSON(t, r)); err != nil {
		t.Fatal(err)
	}
	n, err := releaseMapped(path)
	if err != nil {
		t.Fatal(err)
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	if n == 0 || !strings.Contains(string(maps), path) {
		t.Fatalf("released %d bytes; the file is mapped: %v", n, strings.Contains(string(maps), path))
	}
	got, err := s.GetRun("acme", r.ID)
	if err != nil || got.ID != r.ID {
		t.Fatalf("read after release: %v %v", got, err)
	}
}
