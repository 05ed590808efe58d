package directory_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// App-level webhook secrets are sealed in sb_secrets, replaced as a whole,
// read back with their expiry, removed by an empty list, refused by a
// process without the key, and validated.
func TestWebhookSecrets(t *testing.T) {
	srv := brokertest.Start(t)
	ctx := ctxT(t)
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	d := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, Secrets: box})
	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	in := []directory.WebhookSecret{{Value: "whsec_new"}, {Value: "whsec_old", ExpiresAt: exp}}
	if _, err := d.SetWebhookSecrets(ctx, "acme", "stripe", in); err != nil {
		t.Fatal(err)
	}
	got, err := d.WebhookSecrets(ctx, "acme", "stripe")
	if err != nil || len(got) != 2 || got[0].Value != "whsec_new" || !got[1].ExpiresAt.Equal(exp) {
		t.Fatalf("WebhookSecrets = %+v, %v", got, err)
	}
	kv, _ := srv.JS.KeyValue(ctx, subjects.BucketSecrets)
	for _, k := range listKeys(t, srv.JS, subjects.BucketSecrets, "") {
		e, _ := kv.Get(ctx, k)
		if bytes.Contains(e.Value(), []byte("whsec_")) {
			t.Fatalf("key %s holds a webhook secret in the clear", k)
		}
	}
	// What a caller does to its copy is not what the next delivery sees.
	got[0].Value = "changed"
	if again, err := d.WebhookSecrets(ctx, "acme", "stripe"); err != nil || again[0].Value != "whsec_new" {
		t.Fatalf("after changing a returned copy: %+v, %v", again, err)
	}
	if other, _ := d.WebhookSecrets(ctx, "other", "stripe"); len(other) != 0 {
		t.Fatalf("another project sees %+v", other)
	}
	plain := brokertest.Directory(t, srv.JS)
	if _, err := plain.WebhookSecrets(ctx, "acme", "stripe"); !errors.Is(err, directory.ErrSecretUnavailable) {
		t.Fatalf("without the key: %v", err)
	}
	if _, err := d.SetWebhookSecrets(ctx, "acme", "stripe", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := d.WebhookSecrets(ctx, "acme", "stripe"); err != nil || len(got) != 0 {
		t.Fatalf("after removal: %+v, %v", got, err)
	}
	bad := []struct {
		name string
		in   []directory.WebhookSecret
	}{
		{"empty value", []directory.WebhookSecret{{Value: ""}}},
		{"too many", make([]directory.WebhookSecret, directory.MaxWebhookSecrets+1)},
		{"too long", []directory.WebhookSecret{{Value: string(make([]byte, directory.MaxWebhookSecretBytes+1))}}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			var ve *directory.ValidationError
			if _, err := d.SetWebhookSecrets(ctx, "acme", "stripe", b.in); !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
		})
	}
}

// TestWebhookSecretsFollowChanges: secrets read on every delivery are kept
// in memory, yet a write is seen at once by the writing process and, by
// its watch, soon by another; a removal too.
func TestWebhookSecretsFollowChanges(t *testing.T) {
	srv := brokertest.Start(t)
	ctx := ctxT(t)
	a := brokertest.Directory(t, srv.JS)
	b := brokertest.Directory(t, srv.JS)
	value := func(d *directory.Directory) string {
		got, err := d.WebhookSecrets(ctx, "acme", "stripe")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return ""
		}
		return got[0].Value
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if v := value(b); v != "" { // b caches "none"
		t.Fatalf("before any write: %q", v)
	}
	for _, next := range []string{"v1", "v2", "v3"} {
		if _, err := a.SetWebhookSecrets(ctx, "acme", "stripe", []directory.WebhookSecret{{Value: next}}); err != nil {
			t.Fatal(err)
		}
		if v := value(a); v != next {
			t.Fatalf("the writer reads %q right after writing %q", v, next)
		}
		eventually("the other process to see "+next, func() bool { return value(b) == next })
	}
	if _, err := a.SetWebhookSecrets(ctx, "acme", "stripe", nil); err != nil {
		t.Fatal(err)
	}
	if v := value(a); v != "" {
		t.Fatalf("the writer reads %q after removing", v)
	}
	eventually("the other process to see the removal", func() bool { return value(b) == "" })
}
