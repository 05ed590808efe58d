package receiver

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The hand-written answer is byte for byte what c.JSON (encoding/json's
// Encoder) sent.
func TestAnswerJSON(t *testing.T) {
	cases := []struct {
		name string
		a    Answer
	}{
		{"accepted", Answer{Status: StatusAccepted, Events: []string{"01JD4X7Q9ZK3M5N7P9R1S3T5V7"}}},
		{"deduplicated", Answer{Status: StatusDeduplicated, Events: []string{"a", "b"}, Duplicates: 2}},
		{"none", Answer{Status: StatusAccepted, Events: []string{}}},
		{"nil events", Answer{Status: StatusAccepted}},
		{"escaped", Answer{Status: "<&>\"\\\x01\u2028é\x7f", Events: []string{"\xff", "a\nb"}, Duplicates: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(tc.a); err != nil {
				t.Fatal(err)
			}
			if got := tc.a.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("got  %q\nwant %q", got, want.Bytes())
			}
		})
	}
}

func FuzzAnswerJSON(f *testing.F) {
	f.Add("accepted", "01JD4X7Q9ZK3M5N7P9R1S3T5V7", 0)
	f.Add("<x>", "\u2028\xff", 3)
	f.Fuzz(func(t *testing.T, status, id string, dups int) {
		a := Answer{Status: status, Events: []string{id, id}, Duplicates: dups}
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(a)
		if got := a.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("got  %q\nwant %q", got, want.Bytes())
		}
	})
}
