package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestRunsOutput runs `switchboard runs list` and `runs get` against a
// real dev system: a table and a readable summary by default, the API's
// JSON with -o json.
func TestRunsOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer sink.Close()
	sys, err := dev.Start(ctx, dev.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
		ExamplesDir: "../../../../examples", ExamplesListener: strings.TrimPrefix(sink.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(context.Background()) })
	base := "http://" + sys.HTTPAddr
	call := func(method, path, token, body string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := call("PUT", "/v1/projects/dev/users/u1", sys.APIKey, `{}`); res.StatusCode != http.StatusOK {
		t.Fatalf("PUT user: %d", res.StatusCode)
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res := call("POST", "/v1/projects/dev/workflows/quote/trigger", token, `{"item":"pen","qty":4}`)
	runID := res.Header.Get("X-Switchboard-Run-Id")
	if res.StatusCode != http.StatusCreated || runID == "" {
		t.Fatalf("quote: %d run %q", res.StatusCode, runID)
	}

	try := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--url", base, "--api-key", sys.APIKey))
		err := root.Execute()
		return out.String(), err
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := try(args...)
		if err != nil {
			t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// Poll until the read model has the run, succeeded.
	deadline := time.Now().Add(20 * time.Second)
	var got runs.Run
	for {
		out, err := try("runs", "get", runID, "-o", "json")
		if err == nil && json.Unmarshal([]byte(out), &got) == nil && got.Status == runs.StatusSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s after 20s", runID, got.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	table := run("runs", "list", "--workflow", "quote")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "RUN ") || !strings.Contains(lines[0], "STATUS") ||
		!strings.HasPrefix(lines[1], runID) || !strings.Contains(lines[1], "succeeded") || !strings.Contains(lines[1], "u1") {
		t.Fatalf("runs list table:\n%s", table)
	}
	var page struct {
		Runs []runs.Run `json:"runs"`
	}
	if err := json.Unmarshal([]byte(run("runs", "list", "--workflow", "quote", "-o", "json")), &page); err != nil || len(page.Runs) != 1 || page.Runs[0].ID != runID {
		t.Fatalf("runs list -o json: %+v (%v)", page, err)
	}

	summary := run("runs", "get", runID)
	t.Logf("runs list:\n%s\nruns get:\n%s", table, summary)
	for _, want := range []string{"Run:", runID, "Workflow:", "quote", "Status:", "succeeded", "STEP", "reply", "response", "notify", "http"} {
		if !strings.Contains(summary, want) {
			t.Fatalf("runs get summary has no %q:\n%s", want, summary)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(summary), "{") {
		t.Fatalf("runs get printed JSON without -o json:\n%s", summary)
	}
	root := newRoot()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"runs", "list", "-o", "yaml", "--url", base, "--api-key", sys.APIKey})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "table or json") {
		t.Fatalf("-o yaml: %v, want an error naming table and json", err)
	}
}
