package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// Limits are the stream and bucket settings that depend on the deployment,
// not on the code: replicas (1 on one node, 3 on a cluster) and retention.
type Limits struct {
	Replicas        int
	TriggersMaxAge  time.Duration
	RunsMaxAge      time.Duration
	RunEventsMaxAge time.Duration
	DeadMaxAge      time.Duration
	// DuplicateWindow is how long Nats-Msg-Id dedupe remembers an id.
	DuplicateWindow time.Duration
	IdempotencyTTL  time.Duration
}

// DefaultLimits suit a single node.
func DefaultLimits() Limits {
	return Limits{
		Replicas:        1,
		TriggersMaxAge:  7 * 24 * time.Hour,
		RunsMaxAge:      24 * time.Hour,
		RunEventsMaxAge: 30 * 24 * time.Hour,
		DeadMaxAge:      30 * 24 * time.Hour,
		DuplicateWindow: 10 * time.Minute,
		IdempotencyTTL:  24 * time.Hour,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Replicas <= 0 {
		l.Replicas = d.Replicas
	}
	if l.TriggersMaxAge <= 0 {
		l.TriggersMaxAge = d.TriggersMaxAge
	}
	if l.RunsMaxAge <= 0 {
		l.RunsMaxAge = d.RunsMaxAge
	}
	if l.RunEventsMaxAge <= 0 {
		l.RunEventsMaxAge = d.RunEventsMaxAge
	}
	if l.DeadMaxAge <= 0 {
		l.DeadMaxAge = d.DeadMaxAge
	}
	if l.DuplicateWindow <= 0 {
		l.DuplicateWindow = d.DuplicateWindow
	}
	if l.IdempotencyTTL <= 0 {
		l.IdempotencyTTL = d.IdempotencyTTL
	}
	return l
}

// StreamConfigs returns the configuration of every Switchboard stream.
func StreamConfigs(l Limits) []jetstream.StreamConfig {
	l = l.withDefaults()
	return []jetstream.StreamConfig{
		{
			// Limits retention: trigger events are kept for replay, not removed on ack.
			Name: subjects.StreamTriggers, Subjects: []string{subjects.TriggersAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.TriggersMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas, AllowDirect: true,
		},
		{
			// One durable consumer ("executor", shared by every router
			// replica) hands each run out once, as a work queue would. The
			// retention is limits, not work-queue: a work-queue file stream
			// that empties after every ack deletes and recreates its message
			// block each time, which measured 8-14 % of the process CPU.
			Name: subjects.StreamRuns, Subjects: []string{subjects.RunsAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.RunsMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas,
		},
		{
			// The last message per run subject is the run's current state;
			// AllowDirect makes that lookup cheap when a run is redelivered.
			Name: subjects.StreamRunEvents, Subjects: []string{subjects.RunEventsAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.RunEventsMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas, AllowDirect: true,
		},
		{
			Name: subjects.StreamDead, Subjects: []string{subjects.DeadAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.DeadMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas, AllowDirect: true,
		},
	}
}

// Provision creates or updates every stream and KV bucket. It is idempotent
// and safe to call from every service at start.
func Provision(ctx context.Context, js jetstream.JetStream, l Limits) error {
	l = l.withDefaults()
	for _, cfg := range StreamConfigs(l) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("broker: stream %s: %w", cfg.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: subjects.BucketCatalog, History: 5, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			Description: "projects, workflows, app events, users, credentials"},
		{Bucket: subjects.BucketIdempotency, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			TTL: l.IdempotencyTTL, Description: "Idempotency-Key records"},
		// History 1: the stream keeps one message per key, so the
		// directory's batched index scans read only live entries.
		{Bucket: subjects.BucketDirectory, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			Description: "connected users, credentials, enablement and their index keys (pkg/directory)"},
		{Bucket: subjects.BucketSecrets, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			Description: "sealed credential secrets (pkg/directory)"},
		// No bucket TTL: every claim carries its own (per source, days for
		// providers that retry for days), which needs LimitMarkerTTL
		// (nats-server 2.11+). The marker left when a claim expires only
		// has to outlive a concurrent Create, not serve watchers.
		{Bucket: subjects.BucketDedupe, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			LimitMarkerTTL: time.Minute, Description: "producer dedupe claims (pkg/trigger)"},
	}
	for _, cfg := range buckets {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("broker: kv %s: %w", cfg.Bucket, err)
		}
	}
	// Blobs age out with the RUN_EVENTS records that reference them.
	obs := jetstream.ObjectStoreConfig{Bucket: subjects.BucketBlobs, TTL: l.RunEventsMaxAge,
		Storage: jetstream.FileStorage, Replicas: l.Replicas, Description: "values too large to keep inline (pkg/blob)"}
	if _, err := js.CreateOrUpdateObjectStore(ctx, obs); err != nil {
		return fmt.Errorf("broker: object store %s: %w", obs.Bucket, err)
	}
	return nil
}
