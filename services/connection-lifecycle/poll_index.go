package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// The poll index: which credentials can be polled, kept in sb_lifecycle
// by a durable consumer of the directory's user records (like the
// lifecycle events, so a replica that dies between a write and the index
// update leaves the change unacked and another one indexes it).
//
//	pt.<shard>.<p>.<U>.<C>  one VALID credential whose integration has a
//	                        polling section: pollTarget
//	pu.<p>.<U>              the target keys of that user written last time
//	                        (so a removed credential's target is deleted,
//	                        also when the whole user is)
//
// The shard (pollShards of them) is a hash of the credential: pollers
// lease shards, never single credentials, so a replica's work is a lease
// count, not a scan.

const (
	pollTargetPrefix = "pt."
	pollUserPrefix   = "pu."
	// pollShards is the number of shards credentials are spread over; the
	// unit of work a replica leases. Every replica must agree on it.
	pollShards = 64
	// pollIndexName is the durable consumer every replica shares.
	pollIndexName = "lifecycle-poll-index"
)

// pollTarget is one indexed credential.
type pollTarget struct {
	Project           string          `json:"p"`
	User              string          `json:"u"`
	Credential        string          `json:"c"`
	Integration       string          `json:"i"`
	ProviderAccountID string          `json:"a,omitempty"`
	Settings          map[string]any  `json:"s,omitempty"`
	Workflows         map[string]bool `json:"w,omitempty"`
}

func pollShard(p, u, c string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(p + "\x00" + u + "\x00" + c))
	return int(h.Sum32() % pollShards)
}

func pollTargetKey(p, u, c string) string {
	return pollTargetPrefix + strconv.Itoa(pollShard(p, u, c)) + "." + credKey(p, u, c)
}

type pollIndexer struct {
	kv   jetstream.KeyValue
	cat  *catalog.Catalog
	cons *consume.Consumer
	log  *slog.Logger
}

func startPollIndexer(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, cat *catalog.Catalog, ackWait time.Duration, log *slog.Logger) (*pollIndexer, error) {
	if ackWait <= 0 {
		ackWait = DefaultDeriveAckWait
	}
	x := &pollIndexer{kv: kv, cat: cat, log: log}
	var err error
	// Deliver-all on first creation: the KV stream holds one message per
	// live record, so a fresh durable indexes every existing user once.
	// Each change is a few sequential KV round trips; 16 at a time keeps a
	// first indexing of 100k users from queueing behind the polls.
	x.cons, err = consume.Start(ctx, js, consume.Options{
		Name: pollIndexName, Stream: directory.StreamName, FilterSubjects: []string{directory.UserRecordSubjects},
		AckWait: ackWait, Concurrency: 16, MaxAckPending: 1024, Handler: x.handle, Logger: log,
		DeadLetter: consume.DeadLetterTo(js, func(m jetstream.Msg) string {
			return subjects.DeadTrigger(recordProject(m.Subject()))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("lifecycle: start the poll index consumer: %w", err)
	}
	return x, nil
}

func (x *pollIndexer) stop(ctx context.Context) error { return x.cons.Stop(ctx) }

// polls reports whether integration i of project p has a polling section.
func (x *pollIndexer) polls(p, i string) bool {
	in, ok := x.cat.Integration(p, i)
	return ok && len(in.Effective().Polling) > 0
}

func (x *pollIndexer) handle(ctx context.Context, m jetstream.Msg) error {
	ch, ok, err := directory.DecodeChange(m)
	if !ok {
		return nil
	}
	if err != nil {
		return consume.Permanent(fmt.Errorf("lifecycle: poll index: %w", err))
	}
	key, next := ch.Key, ch.Next
	// The record key is "u.<p>.<U>" with the tokens as stored; the index
	// keys use the same tokens.
	userKey := pollUserPrefix + key[len("u."):]
	var prev []string
	if e, err := x.kv.Get(ctx, userKey); err == nil {
		_ = json.Unmarshal(e.Value(), &prev)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("lifecycle: poll index %s: %w", userKey, err)
	}
	var now []string
	if next != nil {
		for id, sc := range next.Credentials {
			c := sc.Credential
			if c.Status != directory.CredentialValid || !x.polls(c.Project, c.Integration) {
				continue
			}
			t := pollTarget{Project: c.Project, User: c.User, Credential: c.ID, Integration: c.Integration,
				ProviderAccountID: c.ProviderAccountID, Settings: c.Settings, Workflows: c.Workflows}
			b, err := json.Marshal(t)
			if err != nil {
				return consume.Permanent(fmt.Errorf("lifecycle: poll target %s: %w", id, err))
			}
			tk := pollTargetKey(c.Project, c.User, c.ID)
			if e, err := x.kv.Get(ctx, tk); err != nil || string(e.Value()) != string(b) {
				if _, err := x.kv.Put(ctx, tk, b); err != nil {
					return fmt.Errorf("lifecycle: poll target %s: %w", tk, err)
				}
			}
			now = append(now, tk)
		}
	}
	slices.Sort(now)
	for _, tk := range prev {
		if slices.Contains(now, tk) {
			continue
		}
		if err := x.kv.Delete(ctx, tk); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("lifecycle: poll target %s: %w", tk, err)
		}
	}
	switch {
	case len(now) == 0 && len(prev) > 0:
		if err := x.kv.Delete(ctx, userKey); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("lifecycle: poll index %s: %w", userKey, err)
		}
	case len(now) > 0 && !slices.Equal(now, prev):
		b, _ := json.Marshal(now)
		if _, err := x.kv.Put(ctx, userKey, b); err != nil {
			return fmt.Errorf("lifecycle: poll index %s: %w", userKey, err)
		}
	}
	return nil
}
