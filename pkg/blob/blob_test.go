package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

type fixture struct {
	srv     *brokertest.Server
	store   *blob.Store
	budgets wire.Budgets
}

// start runs a stock 1 MB server: a blob bigger than max_payload must
// round-trip through chunks that each fit.
func start(t *testing.T) *fixture {
	t.Helper()
	srv := brokertest.Start(t)
	if srv.NC.MaxPayload() != 1<<20 {
		t.Fatalf("max_payload %d, want the stock 1 MB", srv.NC.MaxPayload())
	}
	b := wire.FromConn(srv.NC)
	st, err := blob.Open(context.Background(), blob.Options{JS: srv.JS, Budgets: b})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, store: st, budgets: b}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPutGet(t *testing.T) {
	f := start(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1200<<10/16) // 1.2 MB, over max_payload
	cases := []struct {
		name        string
		data        []byte
		contentType string
		preview     string
		truncated   bool
	}{
		{"1.2 MB", big, "application/octet-stream", string(big[:512]), true},
		{"empty", []byte{}, "", "", false},
		{"small text", []byte("héllo"), "text/plain", "héllo", false},
		{"not UTF-8", []byte{'a', 0xff, 'b'}, "application/octet-stream", "a\uFFFDb", true},
		{"rune across the preview's end", append(bytes.Repeat([]byte("x"), 511), []byte("é…")...), "text/plain", strings.Repeat("x", 511), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "acme/run_1/" + strings.ReplaceAll(c.name, " ", "_") + "/output"
			ref, err := f.store.Put(ctxT(t), name, c.data, c.contentType)
			if err != nil {
				t.Fatal(err)
			}
			want := blob.Ref{Bucket: subjects.BucketBlobs, Name: name, Size: int64(len(c.data)), SHA256: hexSum(c.data),
				ContentType: c.contentType, Preview: c.preview, Truncated: c.truncated}
			if ref != want {
				t.Fatalf("ref %+v, want %+v", ref, want)
			}
			if !utf8.ValidString(ref.Preview) || len(ref.Preview) > f.budgets.Preview {
				t.Errorf("preview of %d bytes, valid %v", len(ref.Preview), utf8.ValidString(ref.Preview))
			}
			got, err := f.store.Get(ctxT(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("got %d bytes back, want %d", len(got), len(c.data))
			}
			// A reference read back from JSON gets the same blob.
			b, err := json.Marshal(ref)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			back, ok := blob.IsRef(v)
			if !ok || back != ref {
				t.Fatalf("IsRef(%s) = %+v, %v", b, back, ok)
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	f := start(t)
	ctx := ctxT(t)
	name := "acme/run_1/step/output"
	first, err := f.store.Put(ctx, name, bytes.Repeat([]byte("a"), 300<<10), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.store.Put(ctx, name, []byte(`"retried"`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.store.Get(ctx, second)
	if err != nil || string(got) != `"retried"` {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if _, err := f.store.Get(ctx, first); !errors.Is(err, blob.ErrChanged) {
		t.Errorf("Get of the overwritten ref: %v, want ErrChanged", err)
	}
	// One object, and the first one's chunks are gone.
	obs, err := f.srv.JS.ObjectStore(ctx, subjects.BucketBlobs)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if err != nil || len(infos) != 1 {
		t.Fatalf("%d objects (%v), want 1", len(infos), err)
	}
	st, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 64<<10 {
		t.Errorf("the bucket holds %d bytes after the overwrite; the first blob's chunks were kept", st.Size())
	}
}

func TestMissing(t *testing.T) {
	f := start(t)
	cases := []struct {
		name string
		ref  blob.Ref
	}{
		{"never stored", blob.Ref{Bucket: subjects.BucketBlobs, Name: "acme/none/output"}},
		{"another bucket", blob.Ref{Bucket: "sb_other", Name: "acme/x"}},
		{"no name", blob.Ref{Bucket: subjects.BucketBlobs}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.store.Get(ctxT(t), c.ref)
			if !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("error %v, want ErrNotFound", err)
			}
			if c.ref.Name != "" && !strings.Contains(err.Error(), c.ref.Name) {
				t.Errorf("message %q does not name the blob", err)
			}
		})
	}
	if _, err := f.store.Put(ctxT(t), "", []byte("x"), ""); !wire.Permanent(err) {
		t.Errorf("Put with no name: %v, want a permanent error", err)
	}
	if _, err := f.store.Put(ctxT(t), strings.Repeat("n", blob.MaxNameLen+1), []byte("x"), ""); !wire.Permanent(err) {
		t.Errorf("Put with a long name: %v, want a permanent error", err)
	}
}

func TestSpill(t *testing.T) {
	f := start(t)
	inline := f.budgets.Inline
	bigString := strings.Repeat("z", inline) // its JSON has two quotes more than Inline
	bigObject := map[string]any{"rows": []any{strings.Repeat("r", 1200<<10)}}
	fakeRef := map[string]any{"$blob": "sb_blobs/other-project/run/step/output", "size": 10.0,
		"sha256": strings.Repeat("a", 64)}
	cases := []struct {
		name    string
		v       any
		spilled bool
	}{
		{"small object", map[string]any{"ok": true}, false},
		{"string at exactly Inline", strings.Repeat("z", inline-2), false},
		{"string one over Inline", bigString, true},
		{"1.2 MB object", bigObject, true},
		{"nil", nil, false},
		{"small value posing as a ref", fakeRef, true},
		{"escaped ref key", json.RawMessage(`{"\u0024blob":"sb_blobs/x","size":1,"sha256":"` + strings.Repeat("b", 64) + `"}`), true},
		{"object with a $blob key among others", map[string]any{"$blob": "sb_blobs/x", "size": 1.0, "sha256": strings.Repeat("a", 64), "extra": 1.0}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "acme/run_1/s" + string(rune('a'+i)) + "/output"
			out, err := f.store.Spill(ctxT(t), name, c.v)
			if err != nil {
				t.Fatal(err)
			}
			ref, isRef := blob.IsRef(out)
			if isRef != c.spilled {
				t.Fatalf("spilled %v, want %v (out %T)", isRef, c.spilled, out)
			}
			if !c.spilled {
				a, _ := json.Marshal(out)
				b, _ := json.Marshal(c.v)
				if !bytes.Equal(a, b) {
					t.Fatalf("the inline value changed: %s, want %s", a, b)
				}
				return
			}
			want, _ := json.Marshal(c.v)
			enc, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) > inline {
				t.Errorf("the ref is %d bytes, over Inline %d", len(enc), inline)
			}
			var m map[string]any
			if err := json.Unmarshal(enc, &m); err != nil {
				t.Fatal(err)
			}
			if m["$blob"] != subjects.BucketBlobs+"/"+name || m["size"] != float64(len(want)) || m["sha256"] != hexSum(want) ||
				m["contentType"] != wire.ContentTypeJSON || (m["truncated"] == true) != (len(want) > f.budgets.Preview) {
				t.Errorf("ref JSON %s", enc)
			}
			if p, _ := m["preview"].(string); !strings.HasPrefix(string(want), p) || len(p) > f.budgets.Preview {
				t.Errorf("preview %q is not a prefix of the value", p)
			}
			back, ok := blob.IsRef(m)
			if !ok || back != ref {
				t.Fatalf("IsRef after a JSON round trip: %+v, %v; want %+v", back, ok, ref)
			}
			got, err := f.store.Get(ctxT(t), back)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Get: %d bytes, %v", len(got), err)
			}
		})
	}
	t.Run("unencodable", func(t *testing.T) {
		_, err := f.store.Spill(ctxT(t), "acme/run_1/nan/output", math.NaN())
		if !errors.Is(err, wire.ErrUnencodable) || !wire.Permanent(err) {
			t.Fatalf("error %v, want a permanent ErrUnencodable", err)
		}
	})
}

func TestSpillBytes(t *testing.T) {
	f := start(t)
	small := []byte("<html>small</html>")
	if _, spilled, err := f.store.SpillBytes(ctxT(t), "acme/run_1/http/response", small, "text/html"); err != nil || spilled {
		t.Fatalf("a small body: spilled %v, %v", spilled, err)
	}
	big := bytes.Repeat([]byte("<p>row</p>"), 200<<10)
	ref, spilled, err := f.store.SpillBytes(ctxT(t), "acme/run_1/http/response", big, "text/html")
	if err != nil || !spilled {
		t.Fatalf("a big body: spilled %v, %v", spilled, err)
	}
	if ref.ContentType != "text/html" || ref.Size != int64(len(big)) || !ref.Truncated || ref.Preview != string(big[:f.budgets.Preview]) {
		t.Errorf("ref %+v", ref)
	}
	got, err := f.store.Get(ctxT(t), ref)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
}

func TestIsRef(t *testing.T) {
	sum := strings.Repeat("0", 64)
	ok := func() map[string]any {
		return map[string]any{"$blob": "sb_blobs/p/r/s/output", "size": 3.0, "sha256": sum}
	}
	with := func(k string, v any) map[string]any {
		m := ok()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name string
		v    any
		want bool
	}{
		{"minimal", ok(), true},
		{"every key", with("contentType", "application/json"), true},
		{"Ref value", blob.Ref{Bucket: "b", Name: "n"}, true},
		{"nil *Ref", (*blob.Ref)(nil), false},
		{"json.Number size", with("size", json.Number("3")), true},
		{"no $blob", with("$blob", nil), false},
		{"$blob without a name", with("$blob", "sb_blobs/"), false},
		{"$blob without a bucket", with("$blob", "/x"), false},
		{"$blob not a string", with("$blob", 1.0), false},
		{"no size", with("size", nil), false},
		{"negative size", with("size", -1.0), false},
		{"fractional size", with("size", 1.5), false},
		{"size as a string", with("size", "3"), false},
		{"short sha256", with("sha256", "abc"), false},
		{"upper-case sha256", with("sha256", strings.Repeat("A", 64)), false},
		{"preview not a string", with("preview", 1.0), false},
		{"truncated not a bool", with("truncated", "yes"), false},
		{"an extra key", with("body", "x"), false},
		{"a string", "sb_blobs/x", false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, got := blob.IsRef(c.v); got != c.want {
				t.Errorf("IsRef(%v) = %v, want %v", c.v, got, c.want)
			}
		})
	}
}

// TestProvisionedBucket checks what broker.Provision made: blobs age out
// with RUN_EVENTS.
func TestProvisionedBucket(t *testing.T) {
	f := start(t)
	obs, err := f.srv.JS.ObjectStore(ctxT(t), subjects.BucketBlobs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := obs.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := broker.DefaultLimits().RunEventsMaxAge; st.TTL() != want {
		t.Errorf("blob TTL %v, want RUN_EVENTS' %v", st.TTL(), want)
	}
	if st.Storage() != jetstream.FileStorage {
		t.Errorf("storage %v", st.Storage())
	}
}
