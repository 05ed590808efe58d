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

// An app-level resource's credential is sealed in sb_secrets, read back,
// refused by a process without the key, and removed by nil.
func TestAppCredential(t *testing.T) {
	srv := brokertest.Start(t)
	ctx := ctxT(t)
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	d := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, Secrets: box})
	if _, err := d.AppCredential(ctx, "acme", "tasklab"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("absent credential: %v", err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	if _, err := d.SetAppCredential(ctx, "acme", "tasklab", &directory.AppCredential{Secret: map[string]any{"accessToken": "s3cret-token"}, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	got, err := d.AppCredential(ctx, "acme", "tasklab")
	if err != nil || got.Secret["accessToken"] != "s3cret-token" || !got.UpdatedAt.Equal(at) {
		t.Fatalf("AppCredential = %+v, %v", got, err)
	}
	kv, _ := srv.JS.KeyValue(ctx, subjects.BucketSecrets)
	e, err := kv.Get(ctx, "r.acme.tasklab")
	if err != nil || bytes.Contains(e.Value(), []byte("s3cret")) {
		t.Fatalf("stored in the clear: %s (%v)", e.Value(), err)
	}
	nokey := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS})
	if _, err := nokey.AppCredential(ctx, "acme", "tasklab"); !errors.Is(err, directory.ErrSecretUnavailable) {
		t.Fatalf("without the key: %v", err)
	}
	for name, c := range map[string]*directory.AppCredential{
		"empty":     {},
		"too large": {Secret: map[string]any{"apiKey": string(make([]byte, directory.MaxAppCredentialBytes))}},
	} {
		var ve *directory.ValidationError
		if _, err := d.SetAppCredential(ctx, "acme", "tasklab", c); !errors.As(err, &ve) {
			t.Fatalf("%s credential: %v", name, err)
		}
	}
	if _, err := d.SetAppCredential(ctx, "acme", "tasklab", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AppCredential(ctx, "acme", "tasklab"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("removed credential: %v", err)
	}
}
