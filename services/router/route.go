package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/routing"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Headers on run messages. The data is the trigger envelope (protobuf); the
// headers say which run of it this is.
const (
	HeaderRunID      = "Sb-Run-Id"
	HeaderWorkflow   = "Sb-Workflow"
	HeaderUser       = "Sb-User"
	HeaderCredential = "Sb-Credential"
	HeaderDeadReason = "Sb-Dead-Reason"
	HeaderDeadFrom   = "Sb-Dead-Subject"
)

// errPoison marks a trigger message that can never be routed.
var errPoison = errors.New("poison message")

// route handles one trigger message.
func (s *Service) route(m jetstream.Msg) {
	ctx, cancel := context.WithTimeout(s.runCtx, s.opts.AckWait)
	defer cancel()
	err := s.routeMsg(ctx, m)
	switch {
	case err == nil:
		s.opts.Metrics.TriggersRouted.WithLabelValues("routed").Inc()
		if err := m.Ack(); err != nil {
			s.log.Warn("ack trigger", "err", err)
		}
	case errors.Is(err, errPoison):
		s.opts.Metrics.TriggersRouted.WithLabelValues("dead").Inc()
		if derr := s.deadLetter(ctx, m, err); derr != nil {
			s.log.Error("dead-letter trigger failed; will retry", "subject", m.Subject(), "err", derr)
			_ = m.NakWithDelay(time.Second)
			return
		}
		s.log.Warn("trigger dead-lettered", "subject", m.Subject(), "reason", err.Error())
		_ = m.Term()
	default:
		s.log.Error("routing failed; will retry", "subject", m.Subject(), "err", err)
		_ = m.NakWithDelay(time.Second)
	}
}

// deadLetter copies a trigger message to DEAD with the reason, before the
// caller terminates it.
func (s *Service) deadLetter(ctx context.Context, m jetstream.Msg, reason error) error {
	project, _ := subjects.TriggerProject(m.Subject())
	dm := nats.NewMsg(subjects.DeadTrigger(project))
	for k, v := range m.Headers() {
		dm.Header[k] = v
	}
	dm.Header.Set(HeaderDeadReason, reason.Error())
	dm.Header.Set(HeaderDeadFrom, m.Subject())
	dm.Data = m.Data()
	opts := []jetstream.PublishOpt{}
	if md, err := m.Metadata(); err == nil {
		opts = append(opts, jetstream.WithMsgID("trigger:"+strconv.FormatUint(md.Sequence.Stream, 10)))
	}
	_, err := s.opts.JS.PublishMsg(ctx, dm, opts...)
	return err
}

// decodeTrigger decodes and normalizes an envelope; every problem with the
// message itself is errPoison. normalized reports whether fields were
// filled in, so the stored bytes no longer match the event.
func decodeTrigger(m jetstream.Msg) (ev *sbv1.TriggerEvent, normalized bool, err error) {
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
	switch ev.Kind {
	case sbv1.Kind_APP_EVENT:
		if ev.Name == "" {
			return nil, false, fmt.Errorf("%w: app event without name", errPoison)
		}
		if ev.User == "" {
			return nil, false, fmt.Errorf("%w: app event without user", errPoison)
		}
	case sbv1.Kind_REQUEST:
		if ev.Workflow == "" || ev.User == "" {
			return nil, false, fmt.Errorf("%w: request trigger without workflow or user", errPoison)
		}
	case sbv1.Kind_KIND_UNSPECIFIED:
		return nil, false, fmt.Errorf("%w: kind is required", errPoison)
	default:
		return nil, false, fmt.Errorf("%w: not implemented: routing of %s triggers", errPoison, ev.Kind)
	}
	return ev, normalized, nil
}

func (s *Service) routeMsg(ctx context.Context, m jetstream.Msg) error {
	ev, normalized, err := decodeTrigger(m)
	if err != nil {
		return err
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
	trigger, err := envelope.MarshalJSON(ev)
	if err != nil {
		return fmt.Errorf("%w: %v", errPoison, err)
	}
	dec := &runs.Decision{
		EventID: ev.Id, Project: ev.Project, Kind: ev.Kind.String(), Name: ev.Name, User: ev.User,
		Trigger: trigger, ReceivedAt: ev.ReceivedAt.AsTime(), DecidedAt: time.Now().UTC(),
	}
	dec.Candidates = routing.Decide(s.opts.Catalog, ev)
	if dec.Candidates == nil {
		dec.Candidates = []runs.Candidate{}
	}

	// Run messages carry the envelope as protobuf; the trigger's own bytes
	// do when they already are that (the common case: ingress published it).
	data := m.Data()
	if m.Headers().Get(envelope.HeaderContentType) != envelope.ContentTypeProto || normalized {
		if data, err = envelope.Marshal(ev); err != nil {
			return fmt.Errorf("%w: %v", errPoison, err)
		}
	}
	pubs := publishes{js: s.opts.JS}
	for _, c := range dec.Candidates {
		if c.Outcome != runs.OutcomeRan {
			continue
		}
		rm := nats.NewMsg(subjects.Run(ev.Project, c.Workflow))
		rm.Header.Set(envelope.HeaderContentType, envelope.ContentTypeProto)
		rm.Header.Set(HeaderRunID, c.RunID)
		rm.Header.Set(HeaderWorkflow, c.Workflow)
		rm.Header.Set(HeaderUser, c.User)
		if c.Credential != "" {
			rm.Header.Set(HeaderCredential, c.Credential)
		}
		rm.Data = data
		if err := pubs.add(rm, jetstream.WithMsgID(c.RunID)); err != nil {
			return err
		}
		s.opts.Metrics.RunsDispatched.WithLabelValues(ev.Project).Inc()
	}
	dm := nats.NewMsg(subjects.Decision(ev.Project, ev.Id))
	dm.Header.Set(runs.HeaderRecord, runs.RecordDecision)
	if dm.Data, err = json.Marshal(dec); err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	if err := pubs.add(dm, jetstream.WithMsgID("decision:"+ev.Id)); err != nil {
		return err
	}
	if err := pubs.wait(ctx); err != nil {
		return err
	}
	s.log.Debug("routed", "event", ev.Id, "project", ev.Project, "candidates", len(dec.Candidates))
	return nil
}
