package directory_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// A project's OAuth client is sealed in sb_secrets, read back, refused by a
// process without the key, and removed by nil.
func TestOAuthClient(t *testing.T) {
	srv := brokertest.Start(t)
	ctx := ctxT(t)
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	d := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS, Secrets: box})
	if _, err := d.OAuthClient(ctx, "acme", "crm"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("absent client: %v", err)
	}
	if _, err := d.SetOAuthClient(ctx, "acme", "crm", &directory.OAuthClient{ClientID: "id-1", ClientSecret: "s3cret-value"}); err != nil {
		t.Fatal(err)
	}
	got, err := d.OAuthClient(ctx, "acme", "crm")
	if err != nil || got.ClientID != "id-1" || got.ClientSecret != "s3cret-value" {
		t.Fatalf("OAuthClient = %+v, %v", got, err)
	}
	kv, _ := srv.JS.KeyValue(ctx, subjects.BucketSecrets)
	e, err := kv.Get(ctx, "o.acme.crm")
	if err != nil || bytes.Contains(e.Value(), []byte("s3cret")) {
		t.Fatalf("stored in the clear: %s (%v)", e.Value(), err)
	}
	nokey := brokertest.DirectoryWith(t, directory.Options{JS: srv.JS})
	if _, err := nokey.OAuthClient(ctx, "acme", "crm"); !errors.Is(err, directory.ErrSecretUnavailable) {
		t.Fatalf("without the key: %v", err)
	}
	if _, err := d.SetOAuthClient(ctx, "acme", "crm", &directory.OAuthClient{}); err == nil {
		t.Fatal("a client without id was stored")
	}
	if _, err := d.SetOAuthClient(ctx, "acme", "crm", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OAuthClient(ctx, "acme", "crm"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("removed client: %v", err)
	}
}
