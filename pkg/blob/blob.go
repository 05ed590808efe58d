// Package blob keeps values too large to stay inline in a record — step
// outputs, request bodies, response bodies over Budgets.Inline — in the
// sb_blobs JetStream object store, and puts a small reference with a preview
// in the record instead, so the run history still shows what the value began
// with and where the rest is.
//
// Blobs are named by the caller, deterministically ("<project>/<run>/<step>/
// output"), so a retried step overwrites its blob instead of leaving an
// orphan; and the bucket's MaxAge is RUN_EVENTS' retention, so blobs age out
// with the records that reference them.
//
// A reference in a record is JSON:
//
//	{"$blob": "sb_blobs/<name>", "size": n, "sha256": "<hex>",
//	 "contentType": "…", "preview": "<first Preview bytes, valid UTF-8>", "truncated": true}
//
// Only a top-level value that Spill returned is a reference: Spill also
// spills a small value that merely looks like one, so a step output cannot
// forge a reference to another run's (or project's) blob.
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// ErrNotFound is matched by Get's error for a blob that does not exist (never
// stored, or aged out with its run).
var ErrNotFound = errors.New("blob not found")

// ErrChanged is matched by Get's error when the stored blob is not the one
// the reference was made for: the name was overwritten since (a retried
// step wrote a different value).
var ErrChanged = errors.New("blob changed since the reference was made")

// MaxNameLen bounds a blob name. The object store puts the name, encoded,
// into a subject, and a subject must stay far from the server's
// control-line limit.
const MaxNameLen = 1024

// maxChunk is the object store chunk size ceiling: each chunk is one
// message, so it must be well under max_payload whatever the server's.
const maxChunk = 128 << 10

// RefKey is the JSON key that marks a reference.
const RefKey = "$blob"

// Options configure a Store.
type Options struct {
	// JS reaches the object store; required.
	JS jetstream.JetStream
	// Budgets decide what is spilled (over Inline) and how long a preview
	// is; the zero value means the stock 1 MB server's. Pass wire.FromConn.
	Budgets wire.Budgets
}

// Store puts and gets blobs. It is safe for concurrent use.
type Store struct {
	obs     jetstream.ObjectStore
	budgets wire.Budgets
	chunk   uint32
}

// Open binds the sb_blobs object store (created by broker.Provision).
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.JS == nil {
		return nil, errors.New("blob: Options.JS is required")
	}
	if opts.Budgets.Record <= 0 {
		opts.Budgets = wire.BudgetsFor(0)
	}
	obs, err := opts.JS.ObjectStore(ctx, subjects.BucketBlobs)
	if err != nil {
		return nil, fmt.Errorf("blob: object store %s: %w", subjects.BucketBlobs, err)
	}
	return &Store{obs: obs, budgets: opts.Budgets, chunk: uint32(min(maxChunk, opts.Budgets.Record/2))}, nil
}

// Ref is a reference to a stored blob. It marshals to the JSON shape in the
// package documentation; IsRef reads it back.
type Ref struct {
	// Bucket and Name locate the blob.
	Bucket string
	Name   string
	// Size is the blob's length in bytes; SHA256 its hex digest.
	Size   int64
	SHA256 string
	// ContentType of the blob: application/json for a spilled value, the
	// body's own type for SpillBytes.
	ContentType string
	// Preview is the blob's first bytes (at most Budgets.Preview, valid
	// UTF-8); Truncated says the preview is not the whole blob (it goes on,
	// or had bytes that are not UTF-8).
	Preview   string
	Truncated bool
}

type refJSON struct {
	Blob        string `json:"$blob"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"contentType,omitempty"`
	Preview     string `json:"preview,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`
}

// MarshalJSON writes the reference shape.
func (r Ref) MarshalJSON() ([]byte, error) {
	return json.Marshal(refJSON{Blob: r.Bucket + "/" + r.Name, Size: r.Size, SHA256: r.SHA256,
		ContentType: r.ContentType, Preview: r.Preview, Truncated: r.Truncated})
}

// UnmarshalJSON reads the reference shape, strictly (see IsRef).
func (r *Ref) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("blob: reference: %w", err)
	}
	ref, ok := IsRef(v)
	if !ok {
		return errors.New("blob: not a blob reference")
	}
	*r = ref
	return nil
}

// String is the reference's address, bucket/name.
func (r Ref) String() string { return r.Bucket + "/" + r.Name }

// IsRef recognizes a reference: a Ref, a *Ref, or — after a JSON round trip —
// a map[string]any with exactly the reference's keys, "$blob" naming a
// bucket and a name, "size" a non-negative integer, "sha256" 64 lower-case
// hex digits, and the optional keys of the right types. Anything else is
// not a reference, so ordinary data is never mistaken for one.
func IsRef(v any) (Ref, bool) {
	switch r := v.(type) {
	case Ref:
		return r, true
	case *Ref:
		if r == nil {
			return Ref{}, false
		}
		return *r, true
	case map[string]any:
		return refFromMap(r)
	}
	return Ref{}, false
}

func refFromMap(m map[string]any) (Ref, bool) {
	var r Ref
	addr, ok := m[RefKey].(string)
	if !ok {
		return Ref{}, false
	}
	bucket, name, ok := strings.Cut(addr, "/")
	if !ok || bucket == "" || name == "" || len(name) > MaxNameLen {
		return Ref{}, false
	}
	r.Bucket, r.Name = bucket, name
	seen := 1
	switch size := m["size"].(type) {
	case float64:
		if size < 0 || size != float64(int64(size)) || size > 1<<53 {
			return Ref{}, false
		}
		r.Size = int64(size)
	case json.Number:
		n, err := size.Int64()
		if err != nil || n < 0 {
			return Ref{}, false
		}
		r.Size = n
	default:
		return Ref{}, false
	}
	seen++
	if r.SHA256, ok = m["sha256"].(string); !ok || !isSHA256(r.SHA256) {
		return Ref{}, false
	}
	seen++
	for key, dst := range map[string]*string{"contentType": &r.ContentType, "preview": &r.Preview} {
		if v, present := m[key]; present {
			s, ok := v.(string)
			if !ok {
				return Ref{}, false
			}
			*dst = s
			seen++
		}
	}
	if v, present := m["truncated"]; present {
		b, ok := v.(bool)
		if !ok {
			return Ref{}, false
		}
		r.Truncated = b
		seen++
	}
	if seen != len(m) {
		return Ref{}, false // a key a reference does not have
	}
	return r, true
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Put stores data under name, replacing what was there, and returns its
// reference with a preview. name must be 1 to MaxNameLen bytes; make it
// deterministic ("<project>/<run>/<step>/output") so a retry overwrites.
func (s *Store) Put(ctx context.Context, name string, data []byte, contentType string) (Ref, error) {
	if name == "" || len(name) > MaxNameLen {
		return Ref{}, fmt.Errorf("blob: %w: name must be 1 to %d bytes", wire.ErrInvalid, MaxNameLen)
	}
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: s.chunk}}
	if contentType != "" {
		meta.Headers = nats.Header{wire.HeaderContentType: []string{contentType}}
	}
	if _, err := s.obs.Put(ctx, meta, bytes.NewReader(data)); err != nil {
		return Ref{}, fmt.Errorf("blob: put %s/%s: %w", subjects.BucketBlobs, name, err)
	}
	sum := sha256.Sum256(data)
	preview := wire.Prefix(string(data[:min(len(data), s.budgets.Preview+4)]), s.budgets.Preview)
	return Ref{Bucket: subjects.BucketBlobs, Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		ContentType: contentType, Preview: preview, Truncated: len(preview) < len(data) || preview != string(data)}, nil
}

// Get returns the blob ref points to. A blob that does not exist is an error
// matching ErrNotFound; one whose content no longer matches ref.SHA256 (the
// name was overwritten since) matches ErrChanged.
func (s *Store) Get(ctx context.Context, ref Ref) ([]byte, error) {
	if ref.Bucket != subjects.BucketBlobs {
		return nil, fmt.Errorf("blob: %s: %w: not in bucket %s", ref, ErrNotFound, subjects.BucketBlobs)
	}
	if ref.Name == "" || len(ref.Name) > MaxNameLen {
		return nil, fmt.Errorf("blob: %w: invalid name in reference %q", ErrNotFound, wire.Prefix(ref.Name, 64))
	}
	data, err := s.obs.GetBytes(ctx, ref.Name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("blob: %s: %w (never stored, or aged out with its run)", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get %s: %w", ref, err)
	}
	if ref.SHA256 != "" {
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != ref.SHA256 {
			return nil, fmt.Errorf("blob: %s: %w", ref, ErrChanged)
		}
	}
	return data, nil
}

// Spill keeps v inline when its JSON encoding fits Budgets.Inline, and
// returns it unchanged; otherwise it stores the encoding under name (content
// type application/json) and returns the Ref, which itself fits Inline. A
// value that is not JSON-encodable is an error matching wire.ErrUnencodable.
//
// A small value that would read back as a reference is spilled too, so that
// no inline value can pose as one.
func (s *Store) Spill(ctx context.Context, name string, v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("blob: spill %s: %w", name, wire.Unencodable(err))
	}
	if len(b) <= s.budgets.Inline && !looksLikeRef(b) {
		return v, nil
	}
	return s.Put(ctx, name, b, wire.ContentTypeJSON)
}

// SpillBytes is Spill for a raw body: it reports spilled=false (and stores
// nothing) when data fits Budgets.Inline, so the caller keeps data inline;
// otherwise it stores data under name with contentType and returns the Ref.
func (s *Store) SpillBytes(ctx context.Context, name string, data []byte, contentType string) (ref Ref, spilled bool, err error) {
	if len(data) <= s.budgets.Inline {
		return Ref{}, false, nil
	}
	ref, err = s.Put(ctx, name, data, contentType)
	if err != nil {
		return Ref{}, false, err
	}
	return ref, true, nil
}

// isRefKey reports whether a reference may have key.
func isRefKey(key string) bool {
	switch key {
	case RefKey, "size", "sha256", "contentType", "preview", "truncated":
		return true
	}
	return false
}

// looksLikeRef reports whether the JSON document b reads back as a
// reference. It reads top-level keys first (the decoder unescapes them, so
// "\u0024blob" cannot slip by) and stops at the first key a reference does
// not have, which for ordinary data is the first one.
func looksLikeRef(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok || !isRefKey(key) {
			return false
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	_, ok := IsRef(v)
	return ok
}
