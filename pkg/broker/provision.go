package broker

import (
	"context"
	"errors"
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
	// DuplicateWindow is how long Nats-Msg-Id dedupe remembers an id. It
	// only has to cover a publisher's retry after a failed or lost ack (a
	// router redelivered after AckWait republishes its runs): every id in
	// the window is held in the server's memory, and what must hold for
	// longer (a finished run never runs again, a provider's retry days
	// later) is checked against state, not against this window.
	DuplicateWindow time.Duration
	// IdempotencyTTL is how long ingress remembers an Idempotency-Key (a
	// long-lived dedupe claim in sb_dedupe with this TTL).
	IdempotencyTTL time.Duration
	// RunStateTTL is how long a finished run's final state stays in
	// RUN_STATE, where it supersedes the run's last checkpoint; the
	// run-history read model answers for finished runs after that (see
	// pkg/history's run-state responder).
	RunStateTTL time.Duration
}

// DefaultLimits suit a single node.
func DefaultLimits() Limits {
	return Limits{
		Replicas:        1,
		TriggersMaxAge:  7 * 24 * time.Hour,
		RunsMaxAge:      24 * time.Hour,
		RunEventsMaxAge: 30 * 24 * time.Hour,
		DeadMaxAge:      30 * 24 * time.Hour,
		DuplicateWindow: 2 * time.Minute,
		IdempotencyTTL:  24 * time.Hour,
		RunStateTTL:     time.Minute,
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
	if l.RunStateTTL <= 0 {
		l.RunStateTTL = d.RunStateTTL
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
			// Delayed runs (a schedule's spread) are schedule messages on
			// sb.runat.*, fired by the server onto sb.run.* (AllowMsgSchedules).
			Name: subjects.StreamRuns, Subjects: []string{subjects.RunsAll, subjects.RunsAtAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.RunsMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas, AllowMsgSchedules: true,
		},
		{
			// The history log the read model is built from: run snapshots
			// and decision records on one subject each per project, so the
			// server's per-subject index does not grow with every run.
			Name: subjects.StreamRunEvents, Subjects: []string{subjects.RunEventsAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.RunEventsMaxAge, Duplicates: l.DuplicateWindow,
			Storage: jetstream.FileStorage, Replicas: l.Replicas, AllowDirect: true,
		},
		{
			// The executor's view: the last checkpoint of each run in flight
			// (one message per run subject). A finished run's final state
			// supersedes its checkpoint with a TTL and leaves after
			// RunStateTTL, so the server's per-subject index holds runs in
			// flight, not every run ever; MaxAge only bounds checkpoints of
			// runs abandoned forever.
			Name: subjects.StreamRunState, Subjects: []string{subjects.RunStateAll},
			Retention: jetstream.LimitsPolicy, MaxAge: l.TriggersMaxAge, MaxMsgsPerSubject: 1,
			Duplicates: l.DuplicateWindow, AllowMsgTTL: true,
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
	// Asked first so that a server without JetStream, or one that does not
	// answer, is named as such and by its URL, instead of surfacing as the
	// first stream's "context deadline exceeded".
	if _, err := js.AccountInfo(ctx); err != nil {
		url := js.Conn().ConnectedUrlRedacted()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("broker: NATS at %s has no JetStream: run nats-server with -js (or jetstream {} in its config): %w", url, err)
		}
		return fmt.Errorf("broker: JetStream at NATS %s did not answer: %w", url, err)
	}
	for _, cfg := range StreamConfigs(l) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("broker: stream %s: %w", cfg.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: subjects.BucketCatalog, History: 5, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			Description: "projects, workflows, app events, users, credentials"},
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
		{Bucket: subjects.BucketSchedules, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			Description: "last fired tick per (project, workflow, zone) (services/scheduler)"},
		// Per-key TTLs (OAuth connect states expire) need LimitMarkerTTL.
		{Bucket: subjects.BucketLifecycle, History: 1, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			LimitMarkerTTL: time.Minute, Description: "derived lifecycle state, OAuth states, refresh locks and due times (services/connection-lifecycle)"},
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
