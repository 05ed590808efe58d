package directory

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/directget"
)

// record is a user's primary record as stored under u.<p>.<U>: the user
// and every credential of the user. One record per user makes a user's
// whole directory state change atomically (one compare-and-set), and every
// index entry is a function of one record (see index.go).
type record struct {
	User  User                   `json:"user"`
	Creds map[string]*storedCred `json:"credentials,omitempty"`
}

// storedCred is a credential in the record: never a secret, only the
// version key of the one in sb_secrets.
type storedCred struct {
	Credential
	SecretVersion string `json:"secretVersion,omitempty"`
}

// doc is what readers get and the cache holds: one user's record decoded
// at revision rev (the subject's last sequence, delete markers included;
// 0 when nothing was ever stored). user is nil for an absent record.
type doc struct {
	rev   uint64
	user  *User
	creds []*Credential // sorted by id, secrets never present
	vers  []string      // secret version of creds[i]
}

func (d *doc) credential(id string) (*Credential, string) {
	i := sort.Search(len(d.creds), func(i int) bool { return d.creds[i].ID >= id })
	if i < len(d.creds) && d.creds[i].ID == id {
		return d.creds[i], d.vers[i]
	}
	return nil, ""
}

func newDoc(rec *record, rev uint64) *doc {
	d := &doc{rev: rev}
	if rec == nil {
		return d
	}
	u := rec.User
	d.user = &u
	ids := make([]string, 0, len(rec.Creds))
	for id := range rec.Creds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	d.creds = make([]*Credential, len(ids))
	d.vers = make([]string, len(ids))
	for i, id := range ids {
		sc := rec.Creds[id]
		c := sc.Credential
		c.Secret, c.HasSecret = nil, sc.SecretVersion != ""
		d.creds[i], d.vers[i] = &c, sc.SecretVersion
	}
	// Full slice expressions: a caller appending to a shared slice gets a
	// copy instead of writing into the cached array.
	d.creds, d.vers = d.creds[:len(ids):len(ids)], d.vers[:len(ids):len(ids)]
	return d
}

// Stream-level access. The directory reads and writes its buckets through
// the underlying streams where the KV API hides what it needs: the revision
// of a delete marker, compare-and-set against any revision (0 included),
// batched reads by subject filter, and deletes of one exact message.

const (
	kvOpHeader = "KV-Operation"
	kvOpDelete = "DEL"
	kvOpPurge  = "PURGE"
)

type bucket struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	stream jetstream.Stream
	name   string // bucket name
	pre    string // "$KV.<bucket>."
}

func openBucket(ctx context.Context, js jetstream.JetStream, name string) (*bucket, error) {
	if _, err := js.KeyValue(ctx, name); err != nil {
		return nil, fmt.Errorf("directory: bucket %s: %w", name, err)
	}
	st, err := js.Stream(ctx, "KV_"+name)
	if err != nil {
		return nil, fmt.Errorf("directory: stream of bucket %s: %w", name, err)
	}
	if !st.CachedInfo().Config.AllowDirect {
		return nil, fmt.Errorf("directory: bucket %s does not allow direct gets", name)
	}
	return &bucket{js: js, nc: js.Conn(), stream: st, name: name, pre: "$KV." + name + "."}, nil
}

// get reads key's last message: its value (nil when deleted or absent) and
// revision (a delete marker's too; 0 when the key never held anything).
func (b *bucket) get(ctx context.Context, key string) ([]byte, uint64, error) {
	m, err := b.stream.GetLastMsgForSubject(ctx, b.pre+key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("directory: get %s: %w", key, err)
	}
	if op := m.Header.Get(kvOpHeader); op == kvOpDelete || op == kvOpPurge {
		return nil, m.Sequence, nil
	}
	return m.Data, m.Sequence, nil
}

// errConflict is a compare-and-set that lost against another write.
var errConflict = errors.New("directory: concurrent update")

// cas stores value under key if the key's last revision is still rev (0:
// the key never held anything); nil value writes a delete marker.
func (b *bucket) cas(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	m := nats.NewMsg(b.pre + key)
	m.Data = value
	if value == nil {
		m.Header.Set(kvOpHeader, kvOpDelete)
	}
	ack, err := b.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, errConflict
		}
		return 0, fmt.Errorf("directory: write %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// publishAll stores every subject -> value (keys of any bucket, as
// "$KV.<bucket>.<key>") with asynchronous publishes and waits for all.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs map[string][]byte) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for subj, v := range msgs {
		f, err := js.PublishAsync(subj, v)
		if err != nil {
			return fmt.Errorf("directory: write %s: %w", subj, err)
		}
		futures = append(futures, f)
	}
	var errs []error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("directory: write %s: %w", f.Msg().Subject, err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// deleteSeq removes key's message at seq without leaving a marker, and
// nothing newer: a purge of the key's subject below seq+1. A key rewritten
// since it was read has a newer sequence and survives, which is what makes
// index cleanup conditional. (KV streams deny deleting single messages but
// allow purges.)
func (b *bucket) deleteSeq(ctx context.Context, key string, seq uint64) error {
	err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.pre+key), jetstream.WithPurgeSequence(seq+1))
	if err != nil {
		return fmt.Errorf("directory: remove %s at %d: %w", key, seq, err)
	}
	return nil
}

// lastSeq is the stream's last sequence.
func (b *bucket) lastSeq(ctx context.Context) (uint64, error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("directory: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// scanned is one message of a batched read.
type scanned struct {
	key   string
	value []byte
	seq   uint64
}

// maxMultiLast is the server's cap on subjects answered by one multi_last.
const maxMultiLast = 1000

// errTooMany is a multi_last read that matched more keys than the server
// answers at once (maxMultiLast).
var errTooMany = errors.New("directory: too many keys for one read")

// scan returns up to limit messages whose keys match filter (a key with
// wildcards), from stream sequence from on, and whether more follow. It
// walks the stream in sequence order: the fallback for reads multiLast
// cannot answer.
func (b *bucket) scan(ctx context.Context, filter string, from uint64, limit int) ([]scanned, bool, error) {
	out, pending, err := b.direct(ctx, directget.Request{Seq: from, NextFor: b.pre + filter, Batch: limit})
	return out, pending > 0, err
}

// multiLast returns the last message of every key matching any of filters
// (keys, possibly with wildcards) whose sequence is at least from, in
// sequence order, at most batch, and how many more there are. The server
// resolves the filters through its subject index, so the cost follows the
// number of matches, not the size of the bucket; over maxMultiLast matches
// it answers errTooMany.
func (b *bucket) multiLast(ctx context.Context, filters []string, from uint64, batch int) ([]scanned, uint64, error) {
	subjs := make([]string, len(filters))
	for i, k := range filters {
		subjs[i] = b.pre + k
	}
	return b.direct(ctx, directget.Request{MultiLast: subjs, Seq: from, Batch: batch})
}

// lastOf returns the last message of each of keys that has one (delete
// markers included, with a nil value); at most maxMultiLast keys.
func (b *bucket) lastOf(ctx context.Context, keys []string) ([]scanned, error) {
	out, _, err := b.multiLast(ctx, keys, 0, len(keys))
	return out, err
}

// direct sends one batched direct get and collects the answers up to the
// end-of-batch marker, whose pending count it returns. It reads straight
// from the stream with no consumer, so a lookup or a page costs one round
// trip.
func (b *bucket) direct(ctx context.Context, req directget.Request) ([]scanned, uint64, error) {
	var out []scanned
	pending, err := directget.Get(ctx, b.nc, "KV_"+b.name, req, func(m directget.Msg) error {
		if len(m.Subject) < len(b.pre) {
			return fmt.Errorf("directory: direct get: bad subject %q", m.Subject)
		}
		s := scanned{key: m.Subject[len(b.pre):], seq: m.Seq, value: m.Data}
		if op := m.Header.Get(kvOpHeader); op == kvOpDelete || op == kvOpPurge {
			s.value = nil
		}
		out = append(out, s)
		return nil
	})
	switch {
	case errors.Is(err, directget.ErrTooMany):
		return nil, 0, errTooMany
	case err != nil:
		return nil, 0, fmt.Errorf("directory: direct get: %w", err)
	}
	return out, pending, nil
}
