package e2e

import (
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sbexamples "github.com/switchboard-hq/switchboard/examples"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// examplesDir is the repository's examples/, which `make run` applies.
const examplesDir = "../../../examples"

// TestExamplesApply parses every document in examples/ and starts dev mode
// with them, as `make run` does: each workflow they declare is served.
func TestExamplesApply(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	var want []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := workflow.Parse(b, dev.Project)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			if w, ok := o.(*workflow.Workflow); ok {
				want = append(want, w.ID)
			}
		}
	}
	sys, _ := startDev(t, dev.Options{ExamplesDir: examplesDir})
	var list struct {
		Workflows []workflow.Workflow `json:"workflows"`
	}
	newAPI(sys.HTTPAddr).must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows", sys.APIKey, nil).decode(t, &list)
	var got []string
	for _, w := range list.Workflows {
		got = append(got, w.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("workflows served %v, want the examples' %v", got, want)
	}
}

// TestExamplesListener moves the examples' listener off 127.0.0.1:9000, as
// `SWITCHBOARD_EXAMPLES_LISTENER` does for `make run` on a machine whose
// port 9000 is taken: quote's notify step posts to the listener given.
func TestExamplesListener(t *testing.T) {
	l := newListener(t)
	sys, _ := startDev(t, dev.Options{ExamplesDir: examplesDir, ExamplesListener: strings.TrimPrefix(l.URL, "http://")})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", sys.APIKey, map[string]any{})
	a.must(t, http.StatusCreated, "POST", "/v1/projects/dev/workflows/quote/trigger", token, map[string]any{"item": "moved", "qty": 2})
	got := l.waitFor(t, "item", "moved", 1)
	if got[0].Path != "/quotes" {
		t.Fatalf("notify posted to %s, want /quotes on the moved listener", got[0].Path)
	}
}

// TestExamplesEmbedded: the binary's embedded examples are the repository's
// examples/ (so `switchboard dev` outside the repository root applies the
// same documents), and dev mode applies them and logs what it applied.
func TestExamplesEmbedded(t *testing.T) {
	embedded, err := fs.Glob(sbexamples.FS(), "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(embedded) == 0 || len(embedded) != len(onDisk) {
		t.Fatalf("embedded %v, on disk %v", embedded, onDisk)
	}
	for _, f := range onDisk {
		want, _ := os.ReadFile(f)
		got, err := fs.ReadFile(sbexamples.FS(), filepath.Base(f))
		if err != nil || string(got) != string(want) {
			t.Fatalf("embedded %s differs from %s (%v)", filepath.Base(f), f, err)
		}
	}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	sys, _ := startDev(t, dev.Options{Examples: sbexamples.FS(), Logger: logger})
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows/quote", sys.APIKey, nil)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, `"msg":"dev: applied examples"`) || !strings.Contains(out, "Workflow quote") || !strings.Contains(out, "request-triggers.yaml") {
		t.Fatalf("the log does not say which examples were applied:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
