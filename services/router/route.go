package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

// Headers on run messages. The data is the trigger envelope (protobuf); the
// headers say which run of it this is.
const (
	HeaderRunID      = "Sb-Run-Id"
	HeaderWorkflow   = "Sb-Workflow"
	HeaderUser       = "Sb-User"
	HeaderCredential = "Sb-Credential"
	// HeaderAfterRun names the run a buffered schedule run waits for
	// (overlap buffer_one).
	HeaderAfterRun   = "Sb-After-Run"
	HeaderDeadReason = consume.HeaderDeadReason
)

// errPoison marks a trigger message that can never be routed.
var errPoison = errors.New("poison message")

// route handles one trigger message (a consume.Handler): nil acks it, an
// unroutable message is dead-lettered at once, anything else is retried.
//
// A request trigger that starts one run is executed here, in place, with the
// trigger message as the run's durable record until it is acked: one
// publish and one delivery less than going through RUNS, on the path a
// caller waits on. A redelivered trigger is decided again (to the same run
// id) and the run resumes from its checkpoint, as a run message would.
func (s *Service) route(ctx context.Context, m jetstream.Msg) error {
	rctx, cancel := context.WithTimeout(ctx, s.routeTimeout(m.Subject()))
	ev, inline, decided, err := s.routeMsg(rctx, m)
	cancel()
	switch {
	case err == nil:
		s.opts.Metrics.TriggersRouted.WithLabelValues("routed").Inc()
		if inline == nil {
			return nil
		}
		runErr := s.run(ctx, m, *inline, ev)
		// The trigger is settled only once its decision is stored too: a
		// redelivery (a step's retry included) must find the run decided.
		wctx, cancel := context.WithTimeout(ctx, s.opts.AckWait)
		defer cancel()
		if err := decided.wait(wctx); err != nil && runErr == nil {
			return err
		}
		return runErr
	case errors.Is(err, errPoison) || wire.Permanent(err):
		// A message that can never be routed, or a record that can never
		// be published (too large, malformed): dead-letter it with the
		// reason instead of retrying what cannot succeed.
		s.opts.Metrics.TriggersRouted.WithLabelValues("dead").Inc()
		s.log.Warn("trigger dead-lettered", "subject", m.Subject(), "reason", err.Error())
		return consume.Permanent(err)
	default:
		s.log.Error("routing failed; will retry", "subject", m.Subject(), "err", err)
		return err
	}
}

// routeTimeout bounds the routing of a trigger message on subject: AckWait, except
// for a schedule tick, whose fan-out reads and publishes one run per user
// of its shard of the zone (125,000 runs a shard for a million users in 8
// shards) and may need minutes: FanoutTimeout. KeepAlive keeps the message
// meanwhile. Bounding a tick by AckWait would make a large enough fan-out
// fail at the same point on every delivery, until it is dead-lettered.
func (s *Service) routeTimeout(subject string) time.Duration {
	if parts := strings.SplitN(subject, ".", 5); len(parts) == 5 && parts[3] == scheduleToken {
		return max(s.opts.AckWait, s.opts.FanoutTimeout)
	}
	return s.opts.AckWait
}

// scheduleToken is the kind token of schedule tick subjects.
var scheduleToken, _ = trigger.KindToken(sbv1.Kind_SCHEDULE)

// decodeTrigger decodes and normalizes an envelope; every problem with the
// message itself is errPoison. normalized reports whether fields were
// filled in, so the stored bytes no longer match the event.
func (s *Service) decodeTrigger(m jetstream.Msg) (ev *sbv1.TriggerEvent, normalized bool, err error) {
	ev, err = envelope.Decode(m.Data(), m.Headers().Get(envelope.HeaderContentType))
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", errPoison, err)
	}
	subjProject, ok := subjects.TriggerProject(m.Subject())
	if !ok {
		return nil, false, fmt.Errorf("%w: subject %q is not sb.trigger.<project>.<kind>.<key>", errPoison, m.Subject())
	}
	switch {
	case ev.Project == "":
		ev.Project, normalized = subjProject, true
	case ev.Project != subjProject:
		// Subject permissions are per project; an envelope must not escape them.
		return nil, false, fmt.Errorf("%w: envelope project %q does not match subject project %q", errPoison, ev.Project, subjProject)
	}
	md, err := m.Metadata()
	if err != nil {
		return nil, false, fmt.Errorf("trigger metadata: %w", err)
	}
	if ev.Id == "" {
		// Envelopes published by hand may omit the id; derive it from the
		// stream position so a redelivery gets the same one.
		ev.Id = envelope.DerivedID(md.Timestamp, subjects.StreamTriggers, strconv.FormatUint(md.Sequence.Stream, 10))
		normalized = true
	}
	if ev.ReceivedAt == nil {
		ev.ReceivedAt = timestamppb.New(md.Timestamp)
		normalized = true
	}
	if err := s.deciders.Check(ev); err != nil {
		return nil, false, fmt.Errorf("%w: %v", errPoison, err)
	}
	return ev, normalized, nil
}

// routeMsg decides a trigger, stores the decision and publishes its runs;
// the run it leaves to the caller to execute in place, if any, is inline.
// For a synchronous caller's inline run it does not wait for the decision
// record to be stored — the caller waits for the run, not the record — and
// returns its publish as decided, for the caller to wait on before the
// trigger is acked.
func (s *Service) routeMsg(ctx context.Context, m jetstream.Msg) (ev *sbv1.TriggerEvent, inline *runRef, decided *publishes, err error) {
	ev, normalized, err := s.decodeTrigger(m)
	if err != nil {
		return nil, nil, nil, err
	}
	if resumed, err := s.startedRequest(ctx, m, ev); err != nil || resumed != nil {
		return ev, resumed, &publishes{}, err
	}
	if v := m.Headers().Get(envelope.HeaderCatalogRevision); v != "" {
		if rev, err := strconv.ParseUint(v, 10, 64); err == nil {
			wctx, cancel := context.WithTimeout(ctx, s.opts.CatalogWait)
			if err := s.opts.Catalog.WaitRevision(wctx, rev); err != nil {
				s.log.Warn("routing with an older catalog", "event", ev.Id, "err", err)
			}
			cancel()
		}
	}
	if ev.Kind == sbv1.Kind_SCHEDULE {
		pubs, err := s.routeTick(ctx, m, ev, normalized)
		return ev, nil, pubs, err
	}
	cands, err := s.deciders.Decide(ctx, ev)
	if err != nil {
		return nil, nil, nil, err
	}
	md, err := m.Metadata()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("trigger metadata: %w", err)
	}
	var ran []string
	for _, c := range cands {
		if c.Outcome == runs.OutcomeRan {
			ran = append(ran, c.RunID)
		}
	}
	if ev.Kind == sbv1.Kind_REQUEST && len(ran) == 1 {
		for _, c := range cands {
			if c.Outcome == runs.OutcomeRan {
				inline = &runRef{id: c.RunID, workflow: c.Workflow, user: c.User, credential: c.Credential}
				s.opts.Metrics.RunsDispatched.WithLabelValues(ev.Project).Inc()
			}
		}
	}

	// Run messages carry the envelope as protobuf; the trigger's own bytes
	// do when they already are that (the common case: ingress published it).
	data := m.Data()
	if inline == nil && (m.Headers().Get(envelope.HeaderContentType) != envelope.ContentTypeProto || normalized) {
		if data, err = envelope.Marshal(ev); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %v", errPoison, err)
		}
	}
	pubs := publishes{js: s.opts.JS}
	for _, c := range cands {
		if c.Outcome != runs.OutcomeRan || inline != nil {
			continue
		}
		if err := s.publishRun(ctx, &pubs, ev, c, data); err != nil {
			return nil, nil, nil, err
		}
	}
	dec := &runs.Decision{
		EventID: ev.Id, Project: ev.Project, Kind: ev.Kind.String(), Name: ev.Name, User: ev.User,
		TriggerSeq: md.Sequence.Stream, ReceivedAt: ev.ReceivedAt.AsTime(), DecidedAt: time.Now().UTC(),
	}
	if ev.Kind == sbv1.Kind_REQUEST {
		dec.Name = ev.Workflow
	}
	for i := range cands {
		// The page size assumes candidates within their bounds; a message
		// naming many credentials could grow past its share.
		cands[i].Message = wire.Prefix(cands[i].Message, wire.MaxCandidateMessage)
	}
	for _, page := range dec.Paged(cands, s.opts.DecisionPage) {
		if err := publishDecision(&pubs, page); err != nil {
			return nil, nil, nil, err
		}
	}
	if inline != nil && !ev.GetRequest().GetRespondAsync() {
		// The caller knows the run id already and waits for its response.
		return ev, inline, &pubs, nil
	}
	if err := pubs.wait(ctx); err != nil {
		return nil, nil, nil, err
	}
	if ev.Reply != "" {
		s.answerDecided(ev, cands, ran)
	}
	s.log.Debug("routed", "event", ev.Id, "project", ev.Project, "candidates", len(cands))
	return ev, inline, &pubs, nil
}

// publishRun publishes candidate c's run message (data is the envelope);
// its run id is its Nats-Msg-Id, so publishing a decision again stores
// each run once.
func (s *Service) publishRun(ctx context.Context, pubs *publishes, ev *sbv1.TriggerEvent, c runs.Candidate, data []byte) error {
	rm := nats.NewMsg(subjects.Run(ev.Project, c.Workflow))
	rm.Header.Set(envelope.HeaderContentType, envelope.ContentTypeProto)
	rm.Header.Set(HeaderRunID, c.RunID)
	rm.Header.Set(HeaderWorkflow, c.Workflow)
	rm.Header.Set(HeaderUser, c.User)
	if c.Credential != "" {
		rm.Header.Set(HeaderCredential, c.Credential)
	}
	rm.Data = data
	if c.After != "" {
		rm.Header.Set(HeaderAfterRun, c.After)
	}
	if delayed(c.At) {
		// A schedule's spread: the server keeps the run as a one-shot
		// schedule message and publishes it onto the run subject at
		// c.At, persisted across restarts; no handler waits for it.
		rm.Subject = subjects.RunAt(ev.Project, c.RunID)
		rm.Header.Set(jetstream.ScheduleHeader, "@at "+c.At.UTC().Format(scheduleAtLayout))
		rm.Header.Set(jetstream.ScheduleTargetHeader, subjects.Run(ev.Project, c.Workflow))
	}
	s.tracePublishRun(ctx, rm, c)
	if err := pubs.add(rm, jetstream.WithMsgID(c.RunID)); err != nil {
		return err
	}
	s.opts.Metrics.RunsDispatched.WithLabelValues(ev.Project).Inc()
	return nil
}

// publishDecision publishes one decision record.
func publishDecision(pubs *publishes, d *runs.Decision) error {
	dm := nats.NewMsg(subjects.Decisions(d.Project))
	dm.Header.Set(runs.HeaderRecord, runs.RecordDecision)
	var err error
	if dm.Data, err = json.Marshal(d); err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	return pubs.add(dm)
}

// routeTick decides a schedule tick and publishes its runs page by page as
// the decider finds them (decide.Streamer): a large zone's walk and the
// publishing of its runs overlap, and the router holds one page of
// candidates and a bounded number of unacknowledged publishes instead of
// the whole fan-out. The decision record is written as it goes too (see
// decisionStream); a decision of a few pages keeps the one-shot layout.
func (s *Service) routeTick(ctx context.Context, m jetstream.Msg, ev *sbv1.TriggerEvent, normalized bool) (*publishes, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("trigger metadata: %w", err)
	}
	data := m.Data()
	if m.Headers().Get(envelope.HeaderContentType) != envelope.ContentTypeProto || normalized {
		if data, err = envelope.Marshal(ev); err != nil {
			return nil, fmt.Errorf("%w: %v", errPoison, err)
		}
	}
	pubs := &publishes{js: s.opts.JS}
	ds := &decisionStream{pubs: pubs, pageSize: s.opts.DecisionPage, dec: runs.Decision{
		EventID: ev.Id, Project: ev.Project, Kind: ev.Kind.String(), Name: ev.Name, User: ev.User,
		TriggerSeq: md.Sequence.Stream, ReceivedAt: ev.ReceivedAt.AsTime(),
	}}
	err = s.deciders.DecideStream(ctx, ev, func(ctx context.Context, page []runs.Candidate) error {
		for _, c := range page {
			if c.Outcome != runs.OutcomeRan {
				continue
			}
			if err := s.publishRun(ctx, pubs, ev, c, data); err != nil {
				return err
			}
		}
		if err := ds.add(page); err != nil {
			return err
		}
		return pubs.settle(ctx, maxUnsettled)
	})
	if err != nil {
		return nil, err
	}
	if err := ds.finish(); err != nil {
		return nil, err
	}
	if err := pubs.wait(ctx); err != nil {
		return nil, err
	}
	s.log.Debug("routed", "event", ev.Id, "project", ev.Project, "candidates", ds.sum.Candidates, "pages", ds.pages)
	return pubs, nil
}

// maxUnsettled bounds the publishes a tick's fan-out keeps unacknowledged
// (each future holds its message): the connection's async budget plus a
// page or two.
const maxUnsettled = 8192

// streamAfter is how many decision pages' worth of candidates a decision
// collects before it starts writing them as it goes.
const streamAfter = 8

// decisionStream writes the decision record of a streamed decision. Up to
// streamAfter pages of candidates it collects them and writes the usual
// pages at the end, each with the whole summary (runs.Decision.Paged).
// Past that it writes each full page as it fills, so a fan-out of a
// million candidates is never held: page i carries the summary of pages
// 0..i with Summary.Pages = i+2 (at least one more follows), and the last
// record, written when the decision is complete, carries no candidates and
// the whole summary with Summary.Pages = its index + 1. A reader merging
// pages keeps the summary with the most pages: the final one once written,
// the count so far until then.
type decisionStream struct {
	pubs      *publishes
	pageSize  int
	dec       runs.Decision
	buf       []runs.Candidate
	sum       runs.Summary // every candidate added
	written   runs.Summary // the candidates of the pages written
	pages     int          // streamed pages written
	streaming bool
}

func (d *decisionStream) add(cands []runs.Candidate) error {
	if d.pageSize <= 0 {
		d.pageSize = runs.DefaultDecisionPage
	}
	for i := range cands {
		// The page size assumes candidates within their bounds; a message
		// naming many credentials could grow past its share.
		cands[i].Message = wire.Prefix(cands[i].Message, wire.MaxCandidateMessage)
		count(&d.sum, cands[i])
	}
	d.buf = append(d.buf, cands...)
	if !d.streaming && len(d.buf) > streamAfter*d.pageSize {
		d.streaming = true
	}
	for d.streaming && len(d.buf) >= d.pageSize {
		if err := d.write(d.buf[:d.pageSize]); err != nil {
			return err
		}
		d.buf = d.buf[d.pageSize:]
	}
	if len(d.buf) == 0 {
		d.buf = nil // let the written pages' array go
	}
	return nil
}

// write writes one streamed page.
func (d *decisionStream) write(page []runs.Candidate) error {
	for _, c := range page {
		count(&d.written, c)
	}
	p := d.dec
	p.DecidedAt = time.Now().UTC()
	p.Page, p.Candidates = d.pages, page
	p.Summary = d.written
	p.Summary.Skipped = maps.Clone(d.written.Skipped)
	p.Summary.Pages = d.pages + 2
	d.pages++
	return publishDecision(d.pubs, &p)
}

// finish writes what is left: the one-shot pages of a small decision, or
// a streamed decision's last candidates and its final summary.
func (d *decisionStream) finish() error {
	if !d.streaming {
		d.dec.DecidedAt = time.Now().UTC()
		for _, page := range d.dec.Paged(d.buf, d.pageSize) {
			if err := publishDecision(d.pubs, page); err != nil {
				return err
			}
		}
		return nil
	}
	if len(d.buf) > 0 {
		if err := d.write(d.buf); err != nil {
			return err
		}
		d.buf = nil
	}
	p := d.dec
	p.DecidedAt = time.Now().UTC()
	p.Page, p.Candidates = d.pages, []runs.Candidate{}
	p.Summary = d.sum
	p.Summary.Pages = d.pages + 1
	return publishDecision(d.pubs, &p)
}

// count adds candidate c to summary s.
func count(s *runs.Summary, c runs.Candidate) {
	s.Candidates++
	if c.Outcome == runs.OutcomeRan {
		s.Ran++
		return
	}
	if s.Skipped == nil {
		s.Skipped = map[string]int{}
	}
	s.Skipped[c.Reason]++
}

// scheduleAtLayout is RFC 3339 with milliseconds: a spread offset is in
// whole milliseconds, and the server's @at parser reads the fraction.
const scheduleAtLayout = "2006-01-02T15:04:05.000Z07:00"

// delayed reports whether a run starting at at is published as a schedule
// message: a start already (nearly) due is published at once, since the
// server's schedule timer has a granularity of about 250 ms anyway.
func delayed(at time.Time) bool { return !at.IsZero() && time.Until(at) > 250*time.Millisecond }

// startedRequest returns the run of a redelivered request trigger that an
// earlier delivery already decided and started (for a step's retry, or
// after a crash), so it carries on as it was decided then — with the
// credential chosen then — rather than being decided again on what the
// config and directory say now, which could orphan the run halfway.
func (s *Service) startedRequest(ctx context.Context, m jetstream.Msg, ev *sbv1.TriggerEvent) (*runRef, error) {
	if ev.Kind != sbv1.Kind_REQUEST {
		return nil, nil
	}
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("trigger metadata: %w", err)
	}
	if !s.suspect(md, ev) {
		return nil, nil
	}
	runID := runs.RequestRunID(ev.Id, ev.Workflow, ev.User)
	prev, err := s.lastSnapshot(ctx, ev.Project, runID)
	if err != nil || prev == nil {
		return nil, err
	}
	return &runRef{id: runID, workflow: prev.Workflow, user: prev.User, credential: prev.Credential}, nil
}

// answerDecided tells a caller waiting on the trigger's inbox what was
// decided, once the decision is stored: a request's run id (or, when
// nothing runs, the status and reason it gets), an app event's run ids.
func (s *Service) answerDecided(ev *sbv1.TriggerEvent, cands []runs.Candidate, ran []string) {
	rep := runs.Reply{Decided: true, RunIDs: ran}
	a, rejected := decide.RequestAnswer(ev.Workflow, ev.User, cands)
	switch {
	case ev.Kind == sbv1.Kind_REQUEST && rejected:
		rep.Status, rep.Error, rep.Message = a.Status, a.Code, a.Message
	case ev.Kind == sbv1.Kind_REQUEST && len(ran) > 0:
		rep.RunID = ran[0]
	case len(ran) == 0:
		// Nothing runs (a replay that cannot start now): say why.
		rep.Message = a.Message
	}
	// Core NATS, fire and forget: the caller may have gone; the decision
	// record is the durable answer.
	s.reply(ev.Reply, &rep)
}

// reply sends rep to a waiting caller's inbox. An answer too big for the
// bus is replaced by an error the caller can read, instead of a publish
// that fails and leaves the caller waiting for its timeout.
func (s *Service) reply(inbox string, rep *runs.Reply) {
	m, err := rep.Msg(inbox)
	if err == nil && len(m.Data)+len(m.Header.Get(runs.HeaderReply)) > s.budgets.Record {
		size := len(m.Data)
		rep = &runs.Reply{RunID: rep.RunID, Decided: rep.Decided, Status: http.StatusInternalServerError, Error: "response_too_large",
			Message: fmt.Sprintf("the response (%d bytes) is larger than the %d bytes a message may carry; see the run's response step", size, s.budgets.Record)}
		m, err = rep.Msg(inbox)
	}
	if err != nil {
		s.log.Error("encode reply", "err", err)
		return
	}
	if err := s.opts.NC.PublishMsg(m); err != nil {
		s.log.Warn("reply not sent", "inbox", inbox, "err", err)
	}
}
