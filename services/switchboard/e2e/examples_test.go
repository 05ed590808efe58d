package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
