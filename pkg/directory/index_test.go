package directory_test

import (
	"bytes"
	"errors"
	"reflect"
	"sort"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

func credIDs(crs []*directory.Credential) []string {
	out := []string{}
	for _, c := range crs {
		out = append(out, c.User+"/"+c.ID)
	}
	return out
}

func entryIDs(es []directory.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.User+"/"+e.Credential)
	}
	sort.Strings(out)
	return out
}

// enrolled lists every entry of (integration, zone) across all shards.
func enrolled(t *testing.T, d *directory.Directory, integration, zone string) []directory.Entry {
	t.Helper()
	var out []directory.Entry
	for shard := range directory.Shards {
		after := ""
		for {
			page, err := d.Enrollment(ctxT(t), "acme", integration, zone, shard, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page.Entries...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	return out
}

func TestIndexes(t *testing.T) {
	srv := brokertest.Start(t)
	d := brokertest.Directory(t, srv.JS)
	ctx := ctxT(t)
	setZone := func(u, zone string) {
		t.Helper()
		if _, _, err := d.UpdateUser(ctx, "acme", u, func(us *directory.User) error {
			us.Metadata = map[string]any{"timezone": zone}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	wfOff := &workflow.Workflow{ID: "sync", Integration: "crm", EnabledByDefault: &off}
	wfOn := &workflow.Workflow{ID: "other", Integration: "crm"}

	setZone("u1", "Europe/Berlin")
	setZone("u2", "not/a-zone")
	c1, _ := putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.ProviderAccountID = "acct-42" })
	putCred(t, d, "acme", "u2", "c1", func(c *directory.Credential) {
		c.ProviderAccountID = "acct-42"
		c.Workflows = map[string]bool{"sync": true}
	})
	putCred(t, d, "acme", "u2", "s1", func(c *directory.Credential) { c.Integration = "slack" })
	putCred(t, d, "acme", "u3", "c9", func(c *directory.Credential) { c.Status = directory.CredentialInvalid })
	assertIndexExact(t, d, "acme")

	t.Run("account id", func(t *testing.T) {
		got, err := d.CredentialsByAccount(ctx, "acme", "crm", "acct-42")
		if err != nil || !reflect.DeepEqual(credIDs(got), []string{"u1/c1", "u2/c1"}) {
			t.Fatalf("CredentialsByAccount = %v, %v", credIDs(got), err)
		}
		for _, q := range [][3]string{{"acme", "slack", "acct-42"}, {"other", "crm", "acct-42"}, {"acme", "crm", "acct-4"}, {"acme", "crm", ""}} {
			if got, err := d.CredentialsByAccount(ctx, q[0], q[1], q[2]); err != nil || len(got) != 0 {
				t.Errorf("CredentialsByAccount%v = %v, %v", q, credIDs(got), err)
			}
		}
	})
	t.Run("webhook token", func(t *testing.T) {
		got, err := d.CredentialByToken(ctx, c1.WebhookToken)
		if err != nil || got.User != "u1" || got.ID != "c1" || got.Project != "acme" {
			t.Fatalf("CredentialByToken = %+v, %v", got, err)
		}
		// A token one character off. The last character of a 16-byte token
		// carries 2 bits (A, Q, g or w), so pick one that differs.
		offByOne := c1.WebhookToken[:21] + "A"
		if offByOne == c1.WebhookToken {
			offByOne = c1.WebhookToken[:21] + "Q"
		}
		for _, bad := range []string{"", "x", offByOne, "../../etc/passwd", "a.b.c.d.e.f.g.h.i.j.k"} {
			if _, err := d.CredentialByToken(ctx, bad); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("CredentialByToken(%q) = %v", bad, err)
			}
		}
		rotated, _, err := d.RotateWebhookToken(ctx, "acme", "u1", "c1")
		if err != nil || rotated.WebhookToken == c1.WebhookToken || len(rotated.WebhookToken) != 22 {
			t.Fatalf("RotateWebhookToken = %+v, %v", rotated, err)
		}
		if _, err := d.CredentialByToken(ctx, c1.WebhookToken); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("old token still resolves: %v", err)
		}
		if got, err := d.CredentialByToken(ctx, rotated.WebhookToken); err != nil || got.ID != "c1" {
			t.Errorf("new token = %+v, %v", got, err)
		}
		assertIndexExact(t, d, "acme")
	})
	t.Run("enrollment", func(t *testing.T) {
		if got := entryIDs(enrolled(t, d, "crm", "Europe/Berlin")); !reflect.DeepEqual(got, []string{"u1/c1"}) {
			t.Errorf("crm Berlin = %v", got)
		}
		// An invalid zone counts as none: the workflow's fallback.
		crmNone := enrolled(t, d, "crm", "")
		if got := entryIDs(crmNone); !reflect.DeepEqual(got, []string{"u2/c1", "u3/c9"}) {
			t.Errorf("crm no zone = %v", got)
		}
		for _, e := range crmNone {
			switch e.User {
			case "u2":
				if !e.Runs(wfOff) || !e.Runs(wfOn) {
					t.Errorf("u2 entry %+v: the override turns sync on, other is on by default", e)
				}
			case "u3":
				if e.Runs(wfOn) || e.Status != directory.CredentialInvalid {
					t.Errorf("u3 entry %+v runs though INVALID", e)
				}
			}
		}
		if got := entryIDs(enrolled(t, d, "", "")); !reflect.DeepEqual(got, []string{"u2/", "u3/"}) {
			t.Errorf("users without zone = %v", got)
		}
		if got := entryIDs(enrolled(t, d, "slack", "")); !reflect.DeepEqual(got, []string{"u2/s1"}) {
			t.Errorf("slack = %v", got)
		}
		zs, err := d.Zones(ctx, "acme", "crm")
		if err != nil || !reflect.DeepEqual(zs, []string{"", "Europe/Berlin"}) {
			t.Errorf("Zones(crm) = %q, %v", zs, err)
		}
		if _, err := d.Enrollment(ctx, "acme", "crm", "", directory.Shards, "", 10); err == nil {
			t.Error("shard out of range accepted")
		}
		if _, err := d.Enrollment(ctx, "acme", "crm", "", 0, "nope", 10); err == nil {
			t.Error("bad cursor accepted")
		}
	})
	t.Run("zone change moves entries", func(t *testing.T) {
		setZone("u1", "America/New_York")
		if got := enrolled(t, d, "crm", "Europe/Berlin"); len(got) != 0 {
			t.Errorf("Berlin after the move = %v", entryIDs(got))
		}
		if got := entryIDs(enrolled(t, d, "crm", "America/New_York")); !reflect.DeepEqual(got, []string{"u1/c1"}) {
			t.Errorf("New York = %v", got)
		}
		zs, _ := d.Zones(ctx, "acme", "crm")
		if !reflect.DeepEqual(zs, []string{"", "America/New_York"}) {
			t.Errorf("Zones after the move = %q", zs)
		}
		assertIndexExact(t, d, "acme")
	})
	t.Run("account id change and removal", func(t *testing.T) {
		putCred(t, d, "acme", "u2", "c1", func(c *directory.Credential) { c.ProviderAccountID = "acct-7" })
		if got, _ := d.CredentialsByAccount(ctx, "acme", "crm", "acct-42"); !reflect.DeepEqual(credIDs(got), []string{"u1/c1"}) {
			t.Errorf("acct-42 = %v", credIDs(got))
		}
		if got, _ := d.CredentialsByAccount(ctx, "acme", "crm", "acct-7"); !reflect.DeepEqual(credIDs(got), []string{"u2/c1"}) {
			t.Errorf("acct-7 = %v", credIDs(got))
		}
		if _, err := d.DeleteCredential(ctx, "acme", "u1", "c1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.CredentialsByAccount(ctx, "acme", "crm", "acct-42"); len(got) != 0 {
			t.Errorf("acct-42 after removal = %v", credIDs(got))
		}
		if got := enrolled(t, d, "crm", "America/New_York"); len(got) != 0 {
			t.Errorf("enrollment after removal = %v", entryIDs(got))
		}
		if _, err := d.DeleteUser(ctx, "acme", "u2"); err != nil {
			t.Fatal(err)
		}
		if got := entryIDs(enrolled(t, d, "", "")); !reflect.DeepEqual(got, []string{"u3/"}) {
			t.Errorf("users after deleting u2 = %v", got)
		}
		assertIndexExact(t, d, "acme")
	})
}

// TestStaleEntriesAreNotTrusted writes index entries no record implies, as
// a crashed writer would leave them: lookups skip them and remove them.
func TestStaleEntriesAreNotTrusted(t *testing.T) {
	srv := brokertest.Start(t)
	d := brokertest.Directory(t, srv.JS)
	ctx := ctxT(t)
	putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.ProviderAccountID = "acct" })
	kv, err := srv.JS.KeyValue(ctx, subjects.BucketDirectory)
	if err != nil {
		t.Fatal(err)
	}
	stale := map[string]string{
		directory.AccountKey("acme", "crm", "acct", "u1", "gone"):          `{"u":"u1","c":"gone"}`,
		directory.EnrollmentKey("acme", "crm", "", "u1", "gone"):           `{"u":"u1","c":"gone","s":"VALID"}`,
		directory.EnrollmentKey("acme", "crm", "Europe/Paris", "u1", "c1"): `{"u":"u1","c":"c1","s":"VALID"}`,
		directory.TokenKey("AAAAAAAAAAAAAAAAAAAAAA"):                       `{"p":"acme","u":"u1","c":"c1"}`,
	}
	for k, v := range stale {
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := d.CredentialsByAccount(ctx, "acme", "crm", "acct"); !reflect.DeepEqual(credIDs(got), []string{"u1/c1"}) {
		t.Errorf("CredentialsByAccount = %v", credIDs(got))
	}
	if _, err := d.CredentialByToken(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("stale token resolved: %v", err)
	}
	if got := entryIDs(enrolled(t, d, "crm", "")); !reflect.DeepEqual(got, []string{"u1/c1"}) {
		t.Errorf("enrollment = %v", got)
	}
	if got := enrolled(t, d, "crm", "Europe/Paris"); len(got) != 0 {
		t.Errorf("enrollment in a zone the user is not in = %v", entryIDs(got))
	}
	// Every stale entry was found by a lookup and removed.
	assertIndexExact(t, d, "acme")
}

// TestSealedSecrets: with a Box neither bucket holds a secret in the clear,
// Secret opens it, a process with the same key reads it, one without
// refuses it, and replacing or removing a secret leaves one version (or none).
func TestSealedSecrets(t *testing.T) {
	srv := brokertest.Start(t)
	ctx := ctxT(t)
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	d := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, Secrets: box})
	putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.Secret = map[string]any{"accessToken": "tok-very-secret"} })
	for _, bucket := range []string{subjects.BucketDirectory, subjects.BucketSecrets} {
		kv, _ := srv.JS.KeyValue(ctx, bucket)
		for _, k := range listKeys(t, srv.JS, bucket, "") {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(e.Value(), []byte("tok-very-secret")) {
				t.Fatalf("%s key %s holds the secret in the clear", bucket, k)
			}
		}
	}
	if s, err := d.Secret(ctx, "acme", "u1", "c1"); err != nil || s["accessToken"] != "tok-very-secret" {
		t.Fatalf("Secret = %v, %v", s, err)
	}
	// An update that does not touch the secret keeps it.
	_, rev := putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.Status = directory.CredentialInvalid })
	same := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, Secrets: box})
	wait(t, same, rev)
	if s, err := same.Secret(ctx, "acme", "u1", "c1"); err != nil || s["accessToken"] != "tok-very-secret" {
		t.Fatalf("same key, second process: %v, %v", s, err)
	}
	noKey := brokertest.Directory(t, srv.JS)
	if _, err := noKey.Secret(ctx, "acme", "u1", "c1"); !errors.Is(err, directory.ErrSecretUnavailable) {
		t.Fatalf("no key: %v", err)
	}
	// The credential itself is still readable without the key.
	if cr, err := noKey.Credential(ctx, "acme", "u1", "c1"); err != nil || !cr.HasSecret {
		t.Fatalf("no key, credential: %+v, %v", cr, err)
	}
	// Replace: one version remains, the new one.
	rev, err = d.SetSecret(ctx, "acme", "u1", "c1", map[string]any{"accessToken": "tok-2"})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, same, rev)
	if s, err := same.Secret(ctx, "acme", "u1", "c1"); err != nil || s["accessToken"] != "tok-2" {
		t.Fatalf("after SetSecret: %v, %v", s, err)
	}
	if got := listKeys(t, srv.JS, subjects.BucketSecrets, ""); len(got) != 1 {
		t.Errorf("secret versions after replace = %v", got)
	}
	// Remove through UpdateCredential.
	putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.HasSecret = false })
	if s, err := d.Secret(ctx, "acme", "u1", "c1"); err != nil || s != nil {
		t.Errorf("after removal: %v, %v", s, err)
	}
	putCred(t, d, "acme", "u1", "c2", func(c *directory.Credential) { c.Secret = map[string]any{"apiKey": "k"} })
	if _, err := d.DeleteCredential(ctx, "acme", "u1", "c2"); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, srv.JS, subjects.BucketSecrets, ""); len(got) != 0 {
		t.Errorf("secret versions after removing every secret = %v", got)
	}
}

func TestPlainSecrets(t *testing.T) {
	srv := brokertest.Start(t)
	d := brokertest.Directory(t, srv.JS)
	putCred(t, d, "acme", "u1", "c1", func(c *directory.Credential) { c.Secret = map[string]any{"accessToken": "plain"} })
	if s, err := d.Secret(ctxT(t), "acme", "u1", "c1"); err != nil || s["accessToken"] != "plain" {
		t.Fatalf("Secret = %v, %v", s, err)
	}
	if s, err := d.Secret(ctxT(t), "acme", "u1", "nope"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("Secret(nope) = %v, %v", s, err)
	}
	if cr, _ := d.Credential(ctxT(t), "acme", "u1", "c1"); cr.Secret != nil {
		t.Fatal("a credential read from the directory carries its secret")
	}
}
