package directory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t testing.TB, d *directory.Directory, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

func putCred(t testing.TB, d *directory.Directory, p, u, c string, edit func(*directory.Credential)) (*directory.Credential, uint64) {
	t.Helper()
	cr, rev, err := d.UpdateCredential(ctxT(t), p, u, c, func(cr *directory.Credential, _ bool) error {
		if cr.Integration == "" {
			cr.Integration = "crm"
		}
		if edit != nil {
			edit(cr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCredential(%s, %s): %v", u, c, err)
	}
	return cr, rev
}

// TestReaderContract runs the Reader contract against a Directory and the
// writes that feed it, in order.
func TestReaderContract(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	ctx := ctxT(t)
	const p = "acme"
	var firstCreated time.Time
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"unknown user reads as not found", func(t *testing.T) {
			if _, err := d.User(ctx, p, "ghost"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("User = %v", err)
			}
			if crs, err := d.Credentials(ctx, p, "ghost"); err != nil || len(crs) != 0 {
				t.Errorf("Credentials = %v, %v", crs, err)
			}
			if _, err := d.Credential(ctx, p, "ghost", "c"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Credential = %v", err)
			}
			if _, err := d.User(ctx, p, strings.Repeat("x", 300)); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("User(too long) = %v", err)
			}
		}},
		{"create user", func(t *testing.T) {
			u, rev, err := d.UpdateUser(ctx, p, "u1", func(u *directory.User) error {
				u.Metadata = map[string]any{"timezone": "Europe/Berlin"}
				return nil
			})
			if err != nil || rev == 0 {
				t.Fatal(rev, err)
			}
			firstCreated = u.CreatedAt
			got, err := d.User(ctx, p, "u1") // own write, no wait
			if err != nil || got.Metadata["timezone"] != "Europe/Berlin" || got.ID != "u1" || got.Project != p || got.CreatedAt.IsZero() {
				t.Fatalf("User = %+v, %v", got, err)
			}
		}},
		{"update keeps identity and creation time", func(t *testing.T) {
			u, _, err := d.UpdateUser(ctx, p, "u1", func(u *directory.User) error {
				u.ID, u.Project, u.CreatedAt = "other", "other", time.Time{}
				u.Metadata["plan"] = "pro"
				return nil
			})
			if err != nil || u.ID != "u1" || u.Project != p || !u.CreatedAt.Equal(firstCreated) || u.UpdatedAt.Before(u.CreatedAt) {
				t.Fatalf("UpdateUser = %+v, %v", u, err)
			}
			if got, _ := d.User(ctx, p, "u1"); got.Metadata["plan"] != "pro" {
				t.Errorf("User = %+v", got)
			}
		}},
		{"a failing fn writes nothing", func(t *testing.T) {
			boom := errors.New("boom")
			if _, _, err := d.UpdateUser(ctx, p, "u1", func(u *directory.User) error { u.Metadata = nil; return boom }); !errors.Is(err, boom) {
				t.Errorf("err = %v", err)
			}
			if _, _, err := d.UpdateCredential(ctx, p, "u1", "z", func(*directory.Credential, bool) error { return boom }); !errors.Is(err, boom) {
				t.Errorf("err = %v", err)
			}
			if got, _ := d.User(ctx, p, "u1"); got.Metadata["plan"] != "pro" {
				t.Errorf("User = %+v", got)
			}
			if _, err := d.Credential(ctx, p, "u1", "z"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Credential(z) = %v", err)
			}
		}},
		{"connect credentials", func(t *testing.T) {
			var flags []bool
			for _, id := range []string{"c2", "c1", "c2"} {
				_, _, err := d.UpdateCredential(ctx, p, "u1", id, func(cr *directory.Credential, created bool) error {
					flags = append(flags, created)
					cr.Integration = "crm"
					cr.Secret = map[string]any{"accessToken": "tok-" + id}
					cr.Settings = map[string]any{"pipeline": "default"}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(flags, []bool{true, true, false}) {
				t.Errorf("created flags = %v", flags)
			}
			crs, err := d.Credentials(ctx, p, "u1")
			if err != nil || len(crs) != 2 || crs[0].ID != "c1" || crs[1].ID != "c2" {
				t.Fatalf("Credentials = %+v, %v", crs, err)
			}
			for _, cr := range crs {
				if cr.Secret != nil || !cr.HasSecret || cr.Status != directory.CredentialValid || len(cr.WebhookToken) != 22 ||
					cr.User != "u1" || cr.Project != p || cr.Settings["pipeline"] != "default" {
					t.Errorf("credential = %+v", cr)
				}
				if pub := cr.Public(); pub.Secret["redacted"] != true {
					t.Errorf("Public = %+v", pub)
				}
			}
			if crs[0].WebhookToken == crs[1].WebhookToken {
				t.Error("two credentials share a webhook token")
			}
		}},
		{"an update keeps the token and the secret", func(t *testing.T) {
			before, _ := d.Credential(ctx, p, "u1", "c1")
			after, _ := putCred(t, d, p, "u1", "c1", func(cr *directory.Credential) {
				cr.Status = directory.CredentialInvalid
				cr.WebhookToken = "forged"
			})
			if after.WebhookToken != before.WebhookToken || !after.HasSecret || after.Status != directory.CredentialInvalid {
				t.Errorf("after = %+v", after)
			}
			if s, err := d.Secret(ctx, p, "u1", "c1"); err != nil || s["accessToken"] != "tok-c1" {
				t.Errorf("Secret = %v, %v", s, err)
			}
		}},
		{"a credential implies its user", func(t *testing.T) {
			putCred(t, d, p, "implicit", "c", nil)
			if _, err := d.User(ctx, p, "implicit"); err != nil {
				t.Errorf("User(implicit) = %v", err)
			}
		}},
		{"disconnect", func(t *testing.T) {
			if _, err := d.DeleteCredential(ctx, p, "u1", "c2"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Credential(ctx, p, "u1", "c2"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Credential(c2) = %v", err)
			}
			if _, err := d.DeleteCredential(ctx, p, "u1", "c2"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("second delete = %v", err)
			}
			if _, err := d.Secret(ctx, p, "u1", "c2"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Secret(c2) = %v", err)
			}
			// Reconnecting creates it anew, with a new token.
			cr, _ := putCred(t, d, p, "u1", "c2", nil)
			if cr.HasSecret {
				t.Errorf("reconnected credential inherited a secret: %+v", cr)
			}
		}},
		{"enablement", func(t *testing.T) {
			off := false
			w := &workflow.Workflow{ID: "wf", EnabledByDefault: &off}
			cr, _, err := d.SetCredentialWorkflow(ctx, p, "u1", "c1", "wf", true)
			if err != nil || !cr.Enabled(w) {
				t.Fatalf("SetCredentialWorkflow = %+v, %v", cr, err)
			}
			if got, _ := d.Credential(ctx, p, "u1", "c1"); !got.Enabled(w) {
				t.Error("stored credential not enabled")
			}
			u, _, err := d.SetUserWorkflow(ctx, p, "u1", "wf", true)
			if err != nil || !u.Enabled(w) {
				t.Fatalf("SetUserWorkflow = %+v, %v", u, err)
			}
			if _, _, err := d.SetCredentialWorkflow(ctx, p, "u1", "nope", "wf", true); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("enable on unknown credential = %v", err)
			}
		}},
		{"odd ids", func(t *testing.T) {
			for _, u := range []string{"alice@example.com", "a.b", "with space", "=x", "ünï", "a/b", "*", ">"} {
				putCred(t, d, p, u, u+".c", nil)
				got, err := d.Credential(ctx, p, u, u+".c")
				if err != nil || got.User != u || got.ID != u+".c" {
					t.Errorf("Credential(%q) = %+v, %v", u, got, err)
				}
			}
		}},
		{"delete user", func(t *testing.T) {
			if _, err := d.DeleteUser(ctx, p, "implicit"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.User(ctx, p, "implicit"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("User = %v", err)
			}
			if crs, _ := d.Credentials(ctx, p, "implicit"); len(crs) != 0 {
				t.Errorf("Credentials = %v", crs)
			}
			if _, err := d.DeleteUser(ctx, p, "implicit"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("second DeleteUser = %v", err)
			}
		}},
		{"projects are isolated", func(t *testing.T) {
			if _, err := d.User(ctx, "other", "u1"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("User(other) = %v", err)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

func TestValidation(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	ctx := ctxT(t)
	big := map[string]any{"x": strings.Repeat("a", 17<<10)}
	cases := []struct {
		name  string
		write func() error
		field string
	}{
		{"user id too long", func() error {
			_, _, err := d.UpdateUser(ctx, "acme", strings.Repeat("u", 201), func(*directory.User) error { return nil })
			return err
		}, "user"},
		{"empty user id", func() error {
			_, _, err := d.UpdateUser(ctx, "acme", "", func(*directory.User) error { return nil })
			return err
		}, "user"},
		{"credential id not UTF-8", func() error {
			_, _, err := d.UpdateCredential(ctx, "acme", "u", "\xff", func(*directory.Credential, bool) error { return nil })
			return err
		}, "credential"},
		{"metadata too large", func() error {
			_, _, err := d.UpdateUser(ctx, "acme", "u", func(u *directory.User) error { u.Metadata = big; return nil })
			return err
		}, "metadata"},
		{"settings too large", func() error {
			_, _, err := d.UpdateCredential(ctx, "acme", "u", "c", func(cr *directory.Credential, _ bool) error {
				cr.Integration, cr.Settings = "crm", big
				return nil
			})
			return err
		}, "settings"},
		{"secret too large", func() error {
			_, _, err := d.UpdateCredential(ctx, "acme", "u", "c", func(cr *directory.Credential, _ bool) error {
				cr.Integration, cr.Secret = "crm", big
				return nil
			})
			return err
		}, "secret"},
		{"bad integration", func() error {
			_, _, err := d.UpdateCredential(ctx, "acme", "u", "c", func(cr *directory.Credential, _ bool) error {
				cr.Integration = "Hub Spot"
				return nil
			})
			return err
		}, "integration"},
		{"bad status", func() error {
			_, _, err := d.UpdateCredential(ctx, "acme", "u", "c", func(cr *directory.Credential, _ bool) error {
				cr.Integration, cr.Status = "crm", "ok"
				return nil
			})
			return err
		}, "status"},
		{"record too large", func() error {
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				_, _, err = d.UpdateCredential(ctx, "acme", "big", fmt.Sprint("c", i), func(cr *directory.Credential, _ bool) error {
					cr.Integration, cr.Settings = "crm", map[string]any{"x": strings.Repeat("a", 15<<10)}
					return nil
				})
			}
			return err
		}, "user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.write()
			var ve *directory.ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field || ve.Message == "" {
				t.Fatalf("err = %v, want a ValidationError on %s", err, c.field)
			}
		})
	}
}

func TestConcurrentUpdates(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := d.UpdateUser(ctxT(t), "acme", "u", func(u *directory.User) error {
				if u.Workflows == nil {
					u.Workflows = map[string]bool{}
				}
				u.Workflows[fmt.Sprintf("wf-%02d", i)] = i%2 == 0
				return nil
			})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, _, err := d.UpdateCredential(ctxT(t), "acme", "u", "c1", func(cr *directory.Credential, _ bool) error {
				cr.Integration = "crm"
				if cr.Workflows == nil {
					cr.Workflows = map[string]bool{}
				}
				cr.Workflows[fmt.Sprintf("wf-%02d", i)] = true
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	u, err := d.User(ctxT(t), "acme", "u")
	if err != nil || len(u.Workflows) != n {
		t.Fatalf("user = %+v, %v", u, err)
	}
	cr, err := d.Credential(ctxT(t), "acme", "u", "c1")
	if err != nil || len(cr.Workflows) != n {
		t.Fatalf("credential = %+v, %v", cr, err)
	}
	assertIndexExact(t, d, "acme")
}

func TestEnabled(t *testing.T) {
	f, tr := false, true
	wOff := &workflow.Workflow{ID: "w", EnabledByDefault: &f}
	wOn := &workflow.Workflow{ID: "w", EnabledByDefault: &tr}
	wNil := &workflow.Workflow{ID: "w"}
	cases := []struct {
		name      string
		overrides map[string]bool
		w         *workflow.Workflow
		want      bool
	}{
		{"default nil", nil, wNil, true},
		{"default true", nil, wOn, true},
		{"default false", nil, wOff, false},
		{"other workflow overridden", map[string]bool{"x": true}, wOff, false},
		{"override on", map[string]bool{"w": true}, wOff, true},
		{"override off", map[string]bool{"w": false}, wOn, false},
		{"override off nil default", map[string]bool{"w": false}, wNil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := (&directory.Credential{Workflows: c.overrides}).Enabled(c.w); got != c.want {
				t.Errorf("Credential.Enabled = %v, want %v", got, c.want)
			}
			if got := (&directory.User{Workflows: c.overrides}).Enabled(c.w); got != c.want {
				t.Errorf("User.Enabled = %v, want %v", got, c.want)
			}
			e := directory.Entry{Workflows: c.overrides, Status: directory.CredentialValid}
			if got := e.Runs(c.w); got != c.want {
				t.Errorf("Entry.Runs = %v, want %v", got, c.want)
			}
			e.Status = directory.CredentialInvalid
			if e.Runs(c.w) || e.Enabled(c.w) != c.want {
				t.Errorf("INVALID entry: Runs %v, Enabled %v", e.Runs(c.w), e.Enabled(c.w))
			}
		})
	}
}

// TestCacheBoundedAndInvalidated: a directory keeps at most CacheSize
// records, and a write through another instance reaches it through the
// watch — for a cached user and for a cached "no such user".
func TestCacheBoundedAndInvalidated(t *testing.T) {
	srv := brokertest.Start(t)
	reader := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, CacheSize: 3})
	writer := brokertest.Directory(t, srv.JS)
	ctx := ctxT(t)
	var rev uint64
	for i := range 10 {
		_, rev, _ = writer.UpdateUser(ctx, "acme", fmt.Sprint("u", i), func(u *directory.User) error {
			u.Metadata = map[string]any{"n": i}
			return nil
		})
	}
	wait(t, reader, rev)
	for range 2 {
		for i := range 10 {
			if _, err := reader.User(ctx, "acme", fmt.Sprint("u", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := reader.CacheStats(); st.Entries > 3 || st.Misses < 20 {
		t.Errorf("stats after cycling 10 users through a cache of 3: %+v", st)
	}
	// u9 is cached now; so is the absence of "late".
	before := reader.CacheStats().Hits
	if u, _ := reader.User(ctx, "acme", "u9"); u.Metadata["n"] != 9.0 {
		t.Fatalf("u9 = %+v", u)
	}
	if _, err := reader.User(ctx, "acme", "late"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := reader.User(ctx, "acme", "late"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatal(err)
	}
	if st := reader.CacheStats(); st.Hits < before+2 {
		t.Errorf("expected cache hits, stats %+v", st)
	}
	_, rev, _ = writer.UpdateUser(ctx, "acme", "u9", func(u *directory.User) error { u.Metadata["n"] = 99; return nil })
	wait(t, reader, rev)
	if u, _ := reader.User(ctx, "acme", "u9"); u.Metadata["n"] != 99.0 {
		t.Errorf("u9 after another instance's write = %+v", u)
	}
	_, rev, _ = writer.UpdateUser(ctx, "acme", "late", func(*directory.User) error { return nil })
	wait(t, reader, rev)
	if _, err := reader.User(ctx, "acme", "late"); err != nil {
		t.Errorf("late after creation = %v", err)
	}
	rev, _ = writer.DeleteUser(ctx, "acme", "u9")
	wait(t, reader, rev)
	if _, err := reader.User(ctx, "acme", "u9"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("u9 after deletion = %v", err)
	}
}

// listKeys returns the bucket's live keys with prefix.
func listKeys(t testing.TB, js jetstream.JetStream, bucket, prefix string) []string {
	t.Helper()
	kv, err := js.KeyValue(ctxT(t), bucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeysFiltered(ctxT(t), prefix+">")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = subjects.BucketDirectory

// assertIndexExact fails unless the stored index keys of project p are
// exactly those its records imply.
func assertIndexExact(t testing.TB, d *directory.Directory, p string) {
	t.Helper()
	missing, extra, err := directory.IndexDiff(ctxT(t), d, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("index of %s: missing %v, extra %v", p, missing, extra)
	}
}
