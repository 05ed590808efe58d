package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUsersImport runs `switchboard users import` against a real dev system.
func TestUsersImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys := startDev(ctx, t)
	file := filepath.Join(t.TempDir(), "users.ndjson")
	body := `{"id":"u1","metadata":{"timezone":"UTC"}}` + "\n" +
		`{"id":"u2","credentials":[{"id":"c1","integration":"nope"}]}` + "\n" +
		`{"id":"u3"}` + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, quiet := range []bool{true, false} {
		root := newRoot()
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		args := []string{"users", "import", file, "--url", "http://" + sys.HTTPAddr, "--api-key", sys.APIKey}
		if quiet {
			args = append(args, "--quiet")
		}
		root.SetArgs(args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "1 line(s) not imported") {
			t.Errorf("quiet=%v: err = %v", quiet, err)
		}
		if got := out.String(); !strings.Contains(got, "imported 2 users, 0 credentials") ||
			!strings.Contains(got, "line 2: unknown_integration (credentials[0].integration)") {
			t.Errorf("quiet=%v: output %q", quiet, got)
		}
		if !quiet && !strings.Contains(errOut.String(), "importing") {
			t.Errorf("no progress bar on stderr: %q", errOut.String())
		}
	}
}
