package router

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A delivery numbered at or below one already seen means the consumer's
// state went back: messages stored before that moment become suspect.
func TestNoteDeliveryDetectsStateGoingBack(t *testing.T) {
	s := &Service{log: slog.New(slog.DiscardHandler)}
	start := time.Now().Add(-time.Hour)
	s.since.Store(start.UnixNano())
	md := func(consumer string, seq uint64) jetstream.Msg {
		return delivery{md: jetstream.MsgMetadata{Consumer: consumer, Sequence: jetstream.SequencePair{Consumer: seq}}}
	}
	for _, seq := range []uint64{1, 2, 5, 9} {
		s.noteDelivery(md("executor-a", seq))
	}
	s.noteDelivery(md("executor-b", 1)) // another consumer counts on its own
	if got := time.Unix(0, s.since.Load()); !got.Equal(start) {
		t.Fatalf("deliveries in order moved the window to %v", got)
	}
	before := time.Now()
	s.noteDelivery(md("executor-a", 3))
	if got := time.Unix(0, s.since.Load()); got.Before(before) {
		t.Fatalf("a delivery numbered below one seen did not open a window (since %v)", got)
	}
	// From the restored point on, deliveries count up again.
	s.since.Store(start.UnixNano())
	s.noteDelivery(md("executor-a", 4))
	if got := time.Unix(0, s.since.Load()); !got.Equal(start) {
		t.Fatalf("deliveries after the restore moved the window again to %v", got)
	}
}

// delivery is a message that only has metadata, all noteDelivery reads
// (any other method would panic on the nil interface).
type delivery struct {
	jetstream.Msg
	md jetstream.MsgMetadata
}

func (d delivery) Metadata() (*jetstream.MsgMetadata, error) { return &d.md, nil }
