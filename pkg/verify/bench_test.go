package verify

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkVerifyStripe is the per-delivery cost the receiver's throughput
// benchmark (issue 8, item 10) pays on top of echo + JetStream publish.
func BenchmarkVerifyStripe(b *testing.B) {
	now := time.Unix(t0, 0)
	body := `{"id":"evt_1","account":"acct_123","type":"invoice.paid","data":{"object":{"amount":4200,"lines":"` + strings.Repeat("x", 1500) + `"}}}`
	s, _ := NewSigner(Spec{Preset: "stripe"}, Options{})
	r := req("POST", "https://h.example/s", body)
	if err := s.Sign(&r, Secret{Value: "whsec_bench"}, now); err != nil {
		b.Fatal(err)
	}
	v := mustNew(b, Spec{Preset: "stripe"}, Options{Now: func() time.Time { return now }})
	secrets := []Secret{{ID: "old", Value: "whsec_old", ExpiresAt: now.Add(time.Hour)}, {ID: "cur", Value: "whsec_bench"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Verify(r, secrets); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewPreset(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := New(Spec{Preset: "stripe"}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
