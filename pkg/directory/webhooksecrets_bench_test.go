package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
)

// BenchmarkWebhookSecrets is the read every delivery makes: an
// integration's sealed app-level secrets, kept current by the watch.
func BenchmarkWebhookSecrets(b *testing.B) {
	srv := brokertest.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ks, _ := secrets.NewKey()
	key, _ := secrets.ParseKey(ks)
	box, err := secrets.New(key)
	if err != nil {
		b.Fatal(err)
	}
	d := brokertest.DirectoryWith(b, directory.Options{JS: srv.JS, Secrets: box})
	in := []directory.WebhookSecret{{Value: "whsec_new"}, {Value: "whsec_old", ExpiresAt: time.Now().Add(time.Hour)}}
	if _, err := d.SetWebhookSecrets(ctx, "acme", "stripe", in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if got, err := d.WebhookSecrets(ctx, "acme", "stripe"); err != nil || len(got) != 2 {
			b.Fatal(got, err)
		}
	}
}
