package blob

import (
	"encoding/json"
	"testing"
)

// FuzzRef drives the reference parser with arbitrary JSON, as a run
// snapshot read back from RUN_EVENTS (or forged by a step's output) gives it.
func FuzzRef(f *testing.F) {
	f.Add([]byte(`{"$blob":"sb_blobs/p/r/s/output","size":3,"sha256":"` + "0000000000000000000000000000000000000000000000000000000000000000" + `"}`))
	f.Add([]byte(`{"\u0024blob":"sb_blobs/x","size":1,"sha256":"` + "abababababababababababababababababababababababababababababababab" + `","truncated":true,"preview":"x"}`))
	f.Add([]byte(`{"$blob":"a/b","size":1e3,"sha256":"x"}`))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		// What Spill sees for a raw JSON value.
		enc, err := json.Marshal(json.RawMessage(b))
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(enc, &v); err != nil {
			t.Fatalf("valid JSON does not decode: %v", err)
		}
		ref, ok := IsRef(v)
		// No inline value may read back as a reference: Spill must spill it.
		if ok != looksLikeRef(enc) {
			t.Fatalf("IsRef = %v but looksLikeRef = %v for %s", ok, !ok, enc)
		}
		if !ok {
			return
		}
		out, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		var again any
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatal(err)
		}
		back, ok := IsRef(again)
		if !ok || back != ref {
			t.Fatalf("a reference does not survive a round trip: %+v -> %s -> %+v", ref, out, back)
		}
	})
}
