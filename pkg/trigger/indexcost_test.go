package trigger_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// TestSubjectIndexCost measures what Dedupe.InSubject costs the server's
// memory: every webhook event has a subject of its own, and JetStream keeps
// an index entry per subject for as long as the event is kept (TRIGGERS'
// max age). It publishes SB_TRIGGER_INDEX_COST_EVENTS (default 500,000)
// events to TRIGGERS on an embedded server, once on one subject and once
// on a subject each, and prints the Go heap the server holds afterwards
// (the server runs in this process). docs/operations.md sizes TRIGGERS
// with it.
//
// It runs only with SB_TRIGGER_INDEX_COST=1.
func TestSubjectIndexCost(t *testing.T) {
	if os.Getenv("SB_TRIGGER_INDEX_COST") == "" {
		t.Skip("set SB_TRIGGER_INDEX_COST=1 to measure the subject index's memory")
	}
	n, _ := strconv.Atoi(os.Getenv("SB_TRIGGER_INDEX_COST_EVENTS"))
	if n <= 0 {
		n = 500_000
	}
	for _, perEvent := range []bool{false, true} {
		name := map[bool]string{false: "one subject", true: "a subject per event"}[perEvent]
		t.Run(name, func(t *testing.T) {
			srv := brokertest.Start(t)
			ctx := context.Background()
			before := liveHeap()
			base := subjects.Trigger("p", "integration", "stripe")
			for i := range n {
				subj := base
				if perEvent {
					// What Dedupe.InSubject appends: 128 bits of a hash, hex.
					subj = fmt.Sprintf("%s.%016x%016x", base, uint64(i)*0x9e3779b97f4a7c15, uint64(i))
				}
				if _, err := srv.JS.PublishAsync(subj, []byte(`{"id":"evt"}`)); err != nil {
					t.Fatal(err)
				}
				if i%4096 == 4095 {
					<-srv.JS.PublishAsyncComplete()
				}
			}
			<-srv.JS.PublishAsyncComplete()
			st, err := srv.JS.Stream(ctx, subjects.StreamTriggers)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != uint64(n) {
				t.Fatalf("TRIGGERS holds %d messages, want %d", info.State.Msgs, n)
			}
			grown := liveHeap() - before
			t.Logf("%s: %d events, %d subjects: server heap +%.1f MB, %.0f bytes per event",
				name, n, info.State.NumSubjects, float64(grown)/1e6, float64(grown)/float64(n))
		})
	}
}

// liveHeap is the heap still reachable after two collections.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
