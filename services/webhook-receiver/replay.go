package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// HeaderReplayOf marks a replayed event with the id of the event it
// replays; a replay skips such events, so a range that reaches into its own
// output does not replay it again. It is trigger.HeaderReplayOf, which a
// single-event replay (the history role) sets too.
const HeaderReplayOf = trigger.HeaderReplayOf

// MaxReplayPage bounds how many stored events one replay call publishes
// again; a caller walks a longer range page by page (Next).
const MaxReplayPage = 1000

// ReplayRequest is the body of POST …/integrations/{i}/replay.
type ReplayRequest struct {
	// Since and Until bound the events' storage times (Until: now).
	Since time.Time `json:"since"`
	Until time.Time `json:"until,omitzero"`
	// ReplayID names one replay across its pages, so a page sent again
	// publishes the same event ids (JetStream absorbs the copies). The CLI
	// makes one per run.
	ReplayID string `json:"replayId"`
	// Limit is the page size (default and at most MaxReplayPage).
	Limit int `json:"limit,omitempty"`
}

// ReplayPage is the answer: what this page did and where the next starts.
type ReplayPage struct {
	Replayed int `json:"replayed"`
	// Events maps each replayed event id to the new one.
	Events map[string]string `json:"events"`
	// Remaining is how many stored events of the integration are after
	// this page (up to now, not only up to Until): a progress bar's total.
	Remaining uint64 `json:"remaining"`
	// Next is the Since of the next page; empty when the range is done.
	Next string `json:"next,omitempty"`
}

// replay is POST /v1/projects/{p}/integrations/{integration}/replay (API key
// only): every verified delivery's events are kept in TRIGGERS, and this
// publishes the integration's events stored in [since, until] again, as new
// events (new ids, so their runs are new runs) that the router decides anew
// — against the credentials and workflows of now.
func (s *Service) replay(c *echo.Context) error {
	p, id := c.Param("p"), c.Param("integration")
	if err := s.serverSide(c, p); err != nil {
		return err
	}
	if s.opts.JS == nil {
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "replay is not available in this process")
	}
	in, ok := s.opts.Catalog.Integration(p, id)
	if !workflow.ValidID(id) || !ok {
		return apierr.NotFound("unknown_integration", "no integration %q", id)
	}
	body, err := httpx.ReadBody(c, 64<<10)
	if err != nil {
		return err
	}
	var req ReplayRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apierr.BadRequest("invalid_json", "the body is not a valid replay request: %v", err)
	}
	switch {
	case req.Since.IsZero():
		return apierr.BadRequest("invalid_field", "since is required (RFC 3339)").WithField("since")
	case req.ReplayID == "" || len(req.ReplayID) > 128:
		return apierr.BadRequest("invalid_field", "replayId is required (at most 128 characters)").WithField("replayId")
	case !req.Until.IsZero() && req.Until.Before(req.Since):
		return apierr.BadRequest("invalid_field", "until is before since").WithField("until")
	}
	if req.Limit <= 0 || req.Limit > MaxReplayPage {
		req.Limit = MaxReplayPage
	}
	if req.Until.IsZero() {
		req.Until = s.opts.Now()
	}
	page, err := s.replayPage(c.Request().Context(), p, id, eventKind(in), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// seqAt is the sequence of TRIGGERS' first message stored at or after t.
// The replay's consumer starts there rather than by time: with more than
// one filter subject, nats-server 2.15.2 moves a by-time start ahead to the
// first message of a filter whose first message comes after t, skipping the
// other filter's messages in between (consumer.go, selectStartingSeqNo). An
// unfiltered consumer's start is the time's own.
func (s *Service) seqAt(ctx context.Context, t time.Time) (uint64, error) {
	c, err := s.opts.JS.CreateConsumer(ctx, subjects.StreamTriggers, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo()
	_ = s.opts.JS.DeleteConsumer(context.WithoutCancel(ctx), subjects.StreamTriggers, info.Name)
	return info.Delivered.Stream + 1, nil
}

func (s *Service) replayPage(ctx context.Context, p, integration string, kind sbv1.Kind, req ReplayRequest) (ReplayPage, error) {
	token, _ := trigger.KindToken(kind)
	start, err := s.seqAt(ctx, req.Since)
	if err != nil {
		return ReplayPage{}, apierr.Unavailable(fmt.Errorf("replay: %w", err))
	}
	subject := subjects.Trigger(p, token, integration)
	cons, err := s.opts.JS.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{
		// The integration's subject and, below it, the subjects of the
		// events stored with their dedupe key in the subject (hooks.go).
		FilterSubjects: []string{subject, subject + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return ReplayPage{}, apierr.Unavailable(fmt.Errorf("replay: %w", err))
	}
	page := ReplayPage{Events: map[string]string{}}
	for page.Replayed < req.Limit {
		info, err := cons.Info(ctx)
		if err != nil {
			return ReplayPage{}, apierr.Unavailable(fmt.Errorf("replay: %w", err))
		}
		if info.NumPending == 0 {
			page.Next = ""
			return page, nil // the range is done: nothing stored after this
		}
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			page.Next = ""
			return page, nil
		}
		if err != nil {
			return ReplayPage{}, apierr.Unavailable(fmt.Errorf("replay: %w", err))
		}
		md, err := m.Metadata()
		if err != nil {
			return ReplayPage{}, apierr.Unavailable(fmt.Errorf("replay: %w", err))
		}
		if md.Timestamp.After(req.Until) {
			page.Next = ""
			return page, nil
		}
		page.Remaining = md.NumPending
		page.Next = md.Timestamp.Add(time.Nanosecond).UTC().Format(time.RFC3339Nano)
		if m.Headers().Get(HeaderReplayOf) != "" {
			continue // a replay's own output
		}
		ev, err := envelope.Decode(m.Data(), m.Headers().Get("Content-Type"))
		if err != nil || ev.Kind != kind {
			continue // not an event of ours: nothing to replay
		}
		orig := ev.Id
		// Derived from the replay and the original (and timed like the
		// original): a page sent again publishes the same ids.
		ev.Id = trigger.DerivedID(md.Timestamp, "replay", req.ReplayID, orig)
		ev.ReceivedAt = nil
		res, err := s.opts.Triggers.Publish(ctx, ev, trigger.WithCatalogRevision(s.opts.Catalog.Revision()),
			trigger.WithHeader(HeaderReplayOf, orig))
		if err != nil {
			return ReplayPage{}, apierr.New(http.StatusServiceUnavailable, "unavailable",
				"replay stopped after %d events; send the same request again (replayId makes it safe)", page.Replayed).Wrap(err)
		}
		page.Events[orig] = res.EventID
		page.Replayed++
	}
	if page.Remaining == 0 {
		page.Next = ""
	}
	return page, nil
}
