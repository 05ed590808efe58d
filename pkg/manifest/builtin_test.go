package manifest_test

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// Every embedded manifest parses, compiles and names its file's id.
func TestBuiltinsCompile(t *testing.T) {
	ids, err := manifest.BuiltinIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 40 {
		t.Fatalf("%d built-in manifests, want at least 40", len(ids))
	}
}
