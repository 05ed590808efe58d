package router

import (
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/trigger"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// A schedule tick's routing is bounded by FanoutTimeout, not AckWait: a
// fan-out to a large zone takes longer than AckWait (KeepAlive holds its
// message), and cutting it at AckWait would fail it at the same point on
// every delivery. Every other kind keeps AckWait.
func TestRouteTimeoutOfScheduleTicks(t *testing.T) {
	s := &Service{opts: Options{AckWait: 30 * time.Second, FanoutTimeout: 10 * time.Minute}}
	subject := func(k sbv1.Kind, key string) string {
		ev := &sbv1.TriggerEvent{Id: "e", Project: "acme", Kind: k, Workflow: key, User: key, Integration: key,
			Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{Workflow: key}}}
		subj, err := trigger.Subject(ev)
		if err != nil {
			t.Fatal(err)
		}
		return subj
	}
	if got := s.routeTimeout(subject(sbv1.Kind_SCHEDULE, "nightly")); got != 10*time.Minute {
		t.Errorf("schedule tick: %v, want FanoutTimeout", got)
	}
	for _, k := range []sbv1.Kind{sbv1.Kind_APP_EVENT, sbv1.Kind_REQUEST, sbv1.Kind_INTEGRATION} {
		if got := s.routeTimeout(subject(k, "schedule")); got != 30*time.Second {
			t.Errorf("%v: %v, want AckWait", k, got)
		}
	}
	// A FanoutTimeout below AckWait does not shorten a tick's bound.
	s.opts.FanoutTimeout = time.Second
	if got := s.routeTimeout(subject(sbv1.Kind_SCHEDULE, "nightly")); got != 30*time.Second {
		t.Errorf("schedule tick with a short FanoutTimeout: %v, want AckWait", got)
	}
}
