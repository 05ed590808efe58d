package switchboardv1_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Every per-kind detail survives the wire, and only one is set at a time.
func TestDetailRoundTrip(t *testing.T) {
	for name, d := range map[string]*sbv1.TriggerEvent{
		"request": {Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{Method: "POST", Body: []byte("{}"), RespondAsync: true}}},
		"schedule": {Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{Workflow: "w", Zone: "Europe/Berlin",
			NominalTime: timestamppb.Now(), Shard: 1, Shards: 64}}},
		"provider":  {Detail: &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{EventType: "contact.creation", EventId: "e"}}},
		"lifecycle": {Detail: &sbv1.TriggerEvent_Lifecycle{Lifecycle: &sbv1.LifecycleTransition{Event: "credential.invalid"}}},
	} {
		t.Run(name, func(t *testing.T) {
			d.Id, d.Project, d.Hops = "01ARZ3NDEKTSV4RRFFQ69G5FAV", "p", 3
			b, err := proto.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back sbv1.TriggerEvent
			if err := proto.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&back, d) {
				t.Fatalf("round trip: %v, want %v", &back, d)
			}
			set := 0
			for _, ok := range []bool{back.GetRequest() != nil, back.GetSchedule() != nil, back.GetProvider() != nil, back.GetLifecycle() != nil} {
				if ok {
					set++
				}
			}
			if set != 1 {
				t.Fatalf("%d details set, want 1", set)
			}
		})
	}
}
