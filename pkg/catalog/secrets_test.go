package catalog_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// TestSealedSecrets: with a Secrets box the KV bucket never holds a
// credential's secret in the clear, the catalog's copy has it, a process
// with the same key reads it, and one without the key refuses the
// credential instead of routing with it.
func TestSealedSecrets(t *testing.T) {
	srv := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	c := brokertest.CatalogWith(t, catalog.Options{JS: srv.JS, Secrets: box})
	_, rev, err := c.UpdateCredential(ctx, "acme", "u1", "c1", func(cr *catalog.Credential, _ bool) error {
		cr.Integration = "crm"
		cr.Secret = map[string]any{"accessToken": "tok-very-secret"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, subjects.BucketCatalog)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(e.Value(), []byte("tok-very-secret")) {
			t.Fatalf("KV key %s holds the secret in the clear: %s", k, e.Value())
		}
	}
	if cr, ok := c.Credential("acme", "u1", "c1"); !ok || cr.Secret["accessToken"] != "tok-very-secret" {
		t.Fatalf("catalog copy: %+v %v", cr, ok)
	}
	// A later update keeps the secret it did not touch.
	if _, rev, err = c.UpdateCredential(ctx, "acme", "u1", "c1", func(cr *catalog.Credential, _ bool) error {
		cr.Status = catalog.CredentialInvalid
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	same := brokertest.CatalogWith(t, catalog.Options{JS: srv.JS, Secrets: box})
	if err := same.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if cr, ok := same.Credential("acme", "u1", "c1"); !ok || cr.Secret["accessToken"] != "tok-very-secret" || cr.Status != catalog.CredentialInvalid {
		t.Fatalf("same key, second process: %+v %v", cr, ok)
	}
	noKey := brokertest.Catalog(t, srv.JS)
	if err := noKey.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if cr, ok := noKey.Credential("acme", "u1", "c1"); ok {
		t.Fatalf("a process without the key loaded the sealed credential: %+v", cr)
	}
}
