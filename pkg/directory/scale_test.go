package directory_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// heapAfterGC is the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// openCost opens and starts a new Directory and reports what that cost:
// wall time and live heap growth (the directory stays open while measured).
func openCost(t testing.TB, js jetstream.JetStream) (time.Duration, int64) {
	t.Helper()
	before := heapAfterGC()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	start := time.Now()
	d, err := directory.Open(ctx, directory.Options{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// One read, so the directory is in use and cannot be collected.
	if _, err := d.User(ctx, "acme", "user-0000001"); err != nil {
		t.Fatal(err)
	}
	grew := int64(heapAfterGC()) - int64(before)
	runtime.KeepAlive(d)
	return took, grew
}

func importUsers(t testing.TB, d *directory.Directory, n, creds int) time.Duration {
	t.Helper()
	start := time.Now()
	res, err := d.Import(context.Background(), "acme", ndjson(n, creds), directory.ImportOptions{Concurrency: importConcurrency()})
	if err != nil || res.Users != n || len(res.Errors) != 0 {
		t.Fatalf("import: %d users, %d errors (%v), %v", res.Users, res.ErrorCount, res.Errors[:min(3, len(res.Errors))], err)
	}
	return time.Since(start)
}

// TestStartDoesNotGrowWithUsers: opening a Directory costs the same heap
// with 1,000 users as with 100,000 — nothing is loaded at start.
func TestStartDoesNotGrowWithUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 100k users")
	}
	srv := brokertest.Start(t)
	loader := brokertest.Directory(t, srv.JS)
	const limit = 20 << 20 // generous: the measured growth is a few hundred KB
	total := 0
	for _, n := range []int{1_000, 100_000} {
		took := importUsers(t, loader, n-total, 1)
		total = n
		start, grew := openCost(t, srv.JS)
		t.Logf("%7d users: imported in %v; Open+Start %v, heap %+d KB", n, took.Round(time.Millisecond), start.Round(time.Microsecond), grew>>10)
		if grew > limit {
			t.Errorf("Open+Start at %d users grew the heap by %d bytes (limit %d)", n, grew, limit)
		}
	}
}

// TestLoadUsers is the large-scale measurement, off by default:
// SB_DIR_USERS=1000000 go test -run TestLoadUsers -timeout 2h ./directory/
// imports that many users with two credentials each, then reports the
// import rate, the start of a new Directory, heap and RSS at idle, and
// lookup latencies at that size. With SB_NATS_URL it uses that server
// instead of an embedded one, so the process's heap and RSS are the
// directory's alone (nats-server keeps a few hundred bytes per key in
// memory, ten keys per user here).
func TestLoadUsers(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SB_DIR_USERS"))
	if n <= 0 {
		t.Skip("set SB_DIR_USERS to run")
	}
	// As the binaries run (service.TuneRuntime), unless GOGC is set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	js := loadServer(t)
	loader := brokertest.Directory(t, js)
	// SB_DIR_SKIP_IMPORT=1 measures a server SB_NATS_URL already loaded.
	if os.Getenv("SB_DIR_SKIP_IMPORT") == "" {
		took := importUsers(t, loader, n, 2)
		t.Logf("imported %d users × 2 credentials in %v: %.0f users/s", n, took.Round(time.Second), float64(n)/took.Seconds())
	}
	loaderStats := loader.CacheStats()
	start, grew := openCost(t, js)
	t.Logf("new Directory: Open+Start %v, heap %+d KB", start.Round(time.Microsecond), grew>>10)
	where := "embedded nats-server included"
	if os.Getenv("SB_NATS_URL") != "" {
		where = "nats-server apart"
	}
	t.Logf("process at idle (%s; loader cache %d records): heap %d MB, RSS %s", where, loaderStats.Entries, heapAfterGC()>>20, rss())

	d := brokertest.Directory(t, js)
	ctx := ctxT(t)
	measure := func(name string, f func(i int) error) {
		const rounds = 200
		start := time.Now()
		for i := range rounds {
			if err := f(i); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		t.Logf("%-28s %v per call", name, (time.Since(start) / rounds).Round(time.Microsecond))
	}
	measure("CredentialsByAccount", func(i int) error {
		got, err := d.CredentialsByAccount(ctx, "acme", "crm", fmt.Sprintf("acct-%07d-0", (i*7919)%n))
		if err == nil && len(got) != 1 {
			err = fmt.Errorf("got %d credentials", len(got))
		}
		return err
	})
	measure("User (uncached)", func(i int) error {
		_, err := d.User(ctx, "acme", fmt.Sprintf("user-%07d", (i*104729)%n))
		return err
	})
	for _, size := range []int{100, 500} {
		measure(fmt.Sprintf("Enrollment page of ≤%d", size), func(i int) error {
			p, err := d.Enrollment(ctx, "acme", "crm", "Europe/Berlin", i%directory.Shards, "", size)
			if err == nil && len(p.Entries) == 0 {
				err = fmt.Errorf("empty page")
			}
			return err
		})
	}
}

// loadServer is SB_NATS_URL, provisioned, or an embedded server.
func loadServer(t *testing.T) jetstream.JetStream {
	url := os.Getenv("SB_NATS_URL")
	if url == "" {
		return brokertest.Start(t).JS
	}
	nc, err := broker.Connect(url, "directory-load")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := broker.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Provision(ctxT(t), js, broker.Limits{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "unknown"
}

// importConcurrency is SB_DIR_IMPORT_CONCURRENCY, default 0 (the
// Directory's WriteConcurrency).
func importConcurrency() int {
	n, _ := strconv.Atoi(os.Getenv("SB_DIR_IMPORT_CONCURRENCY"))
	return n
}
