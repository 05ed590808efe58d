// Package directory holds Switchboard's connected users, their credentials
// and per-workflow enablement — the data that grows with the customer's user
// base — apart from config (pkg/catalog), which every process copies whole.
//
// Nothing is loaded at start: reads go to the sb_directory KV bucket on
// demand through a bounded LRU cache of user records, invalidated by a KV
// watch that starts at the present (no replay), so Start costs the same
// with ten users or ten million. The watch position is exposed
// (WaitRevision) so a writer reads its own writes in the same process.
//
// Each user is one primary record (the user and all of its credentials);
// the writer keeps index keys beside it — credentials by provider account
// id, a credential by webhook token, enrollment by integration, time zone
// and shard — and every index hit is verified against the primary record
// before it is returned. Secrets live in sb_secrets only, sealed with
// pkg/secrets, and are read with Secret alone. docs/directory.md describes
// the key layout and the consistency guarantees.
//
// Values handed out by a Directory are shared and must not be modified.
package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/watermark"
)

// Reader reads connected users and their credentials; routing and the
// executor depend on it alone.
//
// Contract: reads reflect every write this process made once WaitRevision
// for that write's revision returned (a Directory's own writes do so at
// once), and other processes' writes within the watch delay. A missing
// user or credential is ErrNotFound; any other error is a storage failure
// the caller should retry, never a reason to decide "not found". Returned
// values are shared: do not modify them. Credentials never carry secrets.
type Reader interface {
	// User returns connected user u of project p, or ErrNotFound.
	User(ctx context.Context, p, u string) (*User, error)
	// Credentials lists user u's credentials sorted by id; an unknown
	// user has none (an empty list and nil error).
	Credentials(ctx context.Context, p, u string) ([]*Credential, error)
	// Credential returns credential c of user u, or ErrNotFound.
	Credential(ctx context.Context, p, u, c string) (*Credential, error)
}

// Options configure a Directory.
type Options struct {
	JS     jetstream.JetStream
	Logger *slog.Logger
	// Secrets seals credential secrets (AES-256-GCM) in sb_secrets. Nil
	// stores them as plain JSON; every process sharing the bucket needs
	// the same key, and one without it refuses sealed secrets.
	Secrets *secrets.Box
	// CacheSize bounds the cached user records (default 10,000; negative
	// disables the cache).
	CacheSize int
	// CacheTTL rereads a cached record older than this (default 10m): a
	// backstop for changes the watch cannot show, e.g. a read answered by
	// a cluster replica that lagged behind the write.
	CacheTTL time.Duration
	// WriteConcurrency bounds Import's parallel users (default 128).
	WriteConcurrency int
}

// DefaultCacheSize is the default number of cached user records.
const DefaultCacheSize = 10_000

// Directory is the KV-backed directory. It is safe for concurrent use.
type Directory struct {
	dir     *bucket
	sec     *bucket
	secKV   jetstream.KeyValue
	kv      jetstream.KeyValue
	logger  *slog.Logger
	box     *secrets.Box
	cache   *cache
	rev     watermark.Mark // the last revision of a user record the cache reflects
	zones   zones
	markers sync.Map    // zone marker keys known to exist
	hooks   hookSecrets // app-level webhook secrets, as stored (webhooksecrets.go)
	conc    int
}

// Open binds the sb_directory and sb_secrets buckets (provisioned by
// broker.Provision); call Start to follow changes.
func Open(ctx context.Context, opts Options) (*Directory, error) {
	if opts.JS == nil {
		return nil, errors.New("directory: Options.JS is required")
	}
	dir, err := openBucket(ctx, opts.JS, subjects.BucketDirectory)
	if err != nil {
		return nil, err
	}
	sec, err := openBucket(ctx, opts.JS, subjects.BucketSecrets)
	if err != nil {
		return nil, err
	}
	kv, err := opts.JS.KeyValue(ctx, subjects.BucketDirectory)
	if err != nil {
		return nil, fmt.Errorf("directory: bucket %s: %w", subjects.BucketDirectory, err)
	}
	secKV, err := opts.JS.KeyValue(ctx, subjects.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("directory: bucket %s: %w", subjects.BucketSecrets, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	ttl := opts.CacheTTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	conc := opts.WriteConcurrency
	if conc <= 0 {
		conc = 128
	}
	return &Directory{dir: dir, sec: sec, kv: kv, secKV: secKV, logger: logger, box: opts.Secrets,
		cache: newCache(size, ttl), conc: conc}, nil
}

// Start begins following user record changes (from now on: nothing is
// replayed) and turns the cache on; it returns once the watch is in place.
// The watch stops when ctx ends, and the cache with it.
func (d *Directory) Start(ctx context.Context) error {
	w, err := d.kv.Watch(ctx, prefixUser+".>", jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("directory: watch: %w", err)
	}
	// Everything up to the stream's current end is visible to reads from
	// now on (the cache is empty), so that is the starting position.
	last, err := d.dir.lastSeq(ctx)
	if err != nil {
		_ = w.Stop()
		return err
	}
	if err := d.watchWebhookSecrets(ctx); err != nil {
		_ = w.Stop()
		return err
	}
	d.rev.Advance(last)
	d.cache.setEnabled(true)
	go d.follow(ctx, w, "directory: watch ended; reading without cache",
		func() { d.cache.setEnabled(false) },
		func(e jetstream.KeyValueEntry) {
			// The cache drops the key before the position moves, so
			// whoever WaitRevision wakes reads the new record.
			d.cache.changed(e.Key(), e.Revision())
			d.rev.Advance(e.Revision())
		})
	return nil
}

// follow hands each update of w to each until ctx ends or the watch does
// (then it logs ended); either way it calls off and stops w.
func (d *Directory) follow(ctx context.Context, w jetstream.KeyWatcher, ended string, off func(), each func(jetstream.KeyValueEntry)) {
	defer func() {
		off()
		_ = w.Stop()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				d.logger.Warn(ended)
				return
			}
			if e == nil {
				continue
			}
			each(e)
		}
	}
}

// Revision is the newest user record revision the cache reflects.
func (d *Directory) Revision() uint64 { return d.rev.Load() }

// WaitRevision blocks until reads reflect revision rev (a revision returned
// by a write), so a writer — or a consumer told the writer's revision —
// reads that write.
func (d *Directory) WaitRevision(ctx context.Context, rev uint64) error {
	if err := d.rev.Wait(ctx, rev, nil); err != nil {
		return fmt.Errorf("directory: waiting for revision %d (at %d): %w", rev, d.rev.Load(), err)
	}
	return nil
}

// CacheStats returns the record cache's counters.
func (d *Directory) CacheStats() CacheStats { return d.cache.stats() }

// load returns user u's record, from the cache or the bucket; touch says
// whether the read counts for the LRU and may be cached.
func (d *Directory) load(ctx context.Context, p, u string, touch bool) (*doc, error) {
	if err := checkID("user", u); err != nil {
		return nil, err
	}
	key := userKey(p, u)
	if dc, ok := d.cache.get(key, touch); ok {
		return dc, nil
	}
	since := d.rev.Load()
	raw, rev, err := d.dir.get(ctx, key)
	if err != nil {
		return nil, err
	}
	dc, err := decodeDoc(raw, rev)
	if err != nil {
		return nil, fmt.Errorf("directory: user %q: %w", u, err)
	}
	if touch {
		d.cache.insert(key, dc, since)
	}
	return dc, nil
}

// User returns connected user u of project p.
func (d *Directory) User(ctx context.Context, p, u string) (*User, error) {
	dc, err := d.load(ctx, p, u, true)
	if err != nil {
		return nil, notFoundIfInvalid(err)
	}
	if dc.user == nil {
		return nil, ErrNotFound
	}
	return dc.user, nil
}

// Credentials lists user u's credentials by id.
func (d *Directory) Credentials(ctx context.Context, p, u string) ([]*Credential, error) {
	dc, err := d.load(ctx, p, u, true)
	if err != nil {
		if errors.Is(notFoundIfInvalid(err), ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return dc.creds, nil
}

// Credential returns credential c of user u.
func (d *Directory) Credential(ctx context.Context, p, u, c string) (*Credential, error) {
	dc, err := d.load(ctx, p, u, true)
	if err != nil {
		return nil, notFoundIfInvalid(err)
	}
	cr, _ := dc.credential(c)
	if cr == nil {
		return nil, ErrNotFound
	}
	return cr, nil
}

// notFoundIfInvalid: an id that cannot be stored names nothing stored.
func notFoundIfInvalid(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ErrNotFound
	}
	return err
}

var _ Reader = (*Directory)(nil)
