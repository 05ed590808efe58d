package directory_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// BenchmarkDirectory measures the reads routing and fan-out make, against
// SB_DIR_BENCH_USERS users (default 20,000) with two credentials each:
//
//	go test -run XXX -bench Directory -benchtime 2000x ./directory/
func BenchmarkDirectory(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("SB_DIR_BENCH_USERS"))
	if n <= 0 {
		n = 20_000
	}
	srv := brokertest.Start(b)
	loader := brokertest.Directory(b, srv.JS)
	importUsers(b, loader, n, 2)
	ctx := context.Background()
	cached := brokertest.Directory(b, srv.JS)
	uncached := brokertest.DirectoryWith(b, directory.Options{JS: srv.JS, CacheSize: -1})
	user := func(i int) string { return fmt.Sprintf("user-%07d", (i*7919)%n) }

	b.Run("CredentialsByAccount", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			got, err := cached.CredentialsByAccount(ctx, "acme", "crm", fmt.Sprintf("acct-%07d-0", (i*7919)%n))
			if err != nil || len(got) != 1 {
				b.Fatal(len(got), err)
			}
		}
	})
	b.Run("CredentialByToken", func(b *testing.B) {
		cr, err := cached.Credential(ctx, "acme", user(1), "cred-0")
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := cached.CredentialByToken(ctx, cr.WebhookToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int{100, 500} {
		b.Run(fmt.Sprintf("EnrollmentPage/%d", size), func(b *testing.B) {
			entries := 0
			for i := 0; b.Loop(); i++ {
				p, err := cached.Enrollment(ctx, "acme", "crm", "Europe/Berlin", i%directory.Shards, "", size)
				if err != nil {
					b.Fatal(err)
				}
				entries += len(p.Entries)
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/page")
		})
	}
	b.Run("UserCached", func(b *testing.B) {
		if _, err := cached.User(ctx, "acme", user(3)); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := cached.User(ctx, "acme", user(3)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UserUncached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := uncached.User(ctx, "acme", user(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Secret", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := cached.Secret(ctx, "acme", user(i%100), "cred-0"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
