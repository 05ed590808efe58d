package cli

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// execute runs the CLI with args and returns its output.
func execute(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestHelp: every command, `serve` included, answers --help with its usage
// and does nothing else.
func TestHelp(t *testing.T) {
	var walk func(prefix []string, c *cobra.Command)
	n := 0
	walk = func(prefix []string, c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			path := append(append([]string(nil), prefix...), sub.Name())
			out, err := execute(append(path, "--help")...)
			if err != nil || !strings.Contains(out, "Usage:") {
				t.Errorf("switchboard %s --help: %v\n%s", strings.Join(path, " "), err, out)
			}
			n++
			walk(path, sub)
		}
	}
	walk(nil, newRoot())
	if n < 10 {
		t.Fatalf("only %d commands", n)
	}
}

// TestVersion: `switchboard version` names the build and the Go version.
func TestVersion(t *testing.T) {
	out, err := execute("version")
	if err != nil || !strings.HasPrefix(out, "switchboard ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version: %v %q", err, out)
	}
}

// TestTokenProject: `switchboard token --project P` for a project other
// than dev asks the API: a project that does not exist, one that does not
// trust the data dir's key, and an API it cannot reach are clear errors;
// a project that trusts the key gets its token.
func TestTokenProject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	sys, err := dev.Start(ctx, dev.Options{DataDir: dataDir, HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(context.Background()) })
	base := "http://" + sys.HTTPAddr
	token := func(project, url string) (string, error) {
		return execute("token", "--data-dir", dataDir, "--user", "u1", "--project", project, "--url", url)
	}
	put := func(project, body string) {
		req, _ := http.NewRequestWithContext(ctx, "PUT", base+"/v1/projects/"+project, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+sys.AdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("PUT project %s: %v %v", project, err, res)
		}
		res.Body.Close()
	}

	if out, err := token("dev", base); err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("token for dev: %v %q", err, out)
	}
	if _, err := token("nope", base); err == nil || !strings.Contains(err.Error(), `project "nope" does not exist`) {
		t.Fatalf("token for a missing project: %v", err)
	}
	put("other", `{}`)
	if _, err := token("other", base); err == nil || !strings.Contains(err.Error(), "does not trust the signing key") {
		t.Fatalf("token for a project without the key: %v", err)
	}
	pem, err := json.Marshal(auth.EncodePublicKeyPEM(&sys.SigningKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	put("other", `{"userTokenKeys":[`+string(pem)+`]}`)
	out, err := token("other", base)
	if err != nil {
		t.Fatalf("token for a project that trusts the key: %v", err)
	}
	claims, err := auth.VerifyUserToken(strings.TrimSpace(out), []*rsa.PublicKey{&sys.SigningKey.PublicKey}, time.Now())
	if err != nil || claims.Subject != "u1" || claims.Project != "other" {
		t.Fatalf("token for other: %v %+v", err, claims)
	}
	if _, err := token("other", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cannot check") {
		t.Fatalf("token with the API unreachable: %v", err)
	}
}
