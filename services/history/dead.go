package history

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Dead-letter page sizes.
const (
	DefaultDeadLimit = 50
	MaxDeadLimit     = 500
)

// DeadLetter is one message of the DEAD stream, as the dead-letter API
// shows it: where it came from, why it is there and, for a failed run, the
// run it stands for. The message body itself is not shown (a trigger's is
// protobuf; a run's is summarized here and served whole by GET …/runs/{run}).
type DeadLetter struct {
	// Seq is the message's DEAD stream sequence: its id in this API.
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	// Kind is "run" (a run that exhausted its retries) or "trigger" (a
	// trigger message the router could not route).
	Kind     string `json:"kind"`
	Workflow string `json:"workflow,omitempty"`
	Reason   string `json:"reason"`
	// RunID, User, EventID, Status and Error describe the failed run.
	RunID   string      `json:"runId,omitempty"`
	User    string      `json:"user,omitempty"`
	EventID string      `json:"eventId,omitempty"`
	Status  runs.Status `json:"status,omitempty"`
	Error   string      `json:"error,omitempty"`
	// Replayable says POST …/dead/{seq}/replay can start a new run from it.
	Replayable bool `json:"replayable"`
	// Origin is the message the copy was taken from, when a consumer
	// dead-lettered it (absent for a run the executor gave up on).
	Origin *DeadOrigin `json:"origin,omitempty"`
	// Truncated says the copy lost the original's data and headers (it was
	// too large for the stream).
	Truncated string `json:"truncated,omitempty"`
	Size      int    `json:"size"`
}

// DeadOrigin is where a dead-lettered message was consumed from.
type DeadOrigin struct {
	Stream     string `json:"stream,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Deliveries uint64 `json:"deliveries,omitempty"`
}

// DeadPage is one page of a project's dead letters, oldest or newest first.
type DeadPage struct {
	DeadLetters []DeadLetter `json:"deadLetters"`
	// NextCursor continues after this page; empty when it was the last.
	NextCursor string `json:"nextCursor,omitempty"`
}

// listDead answers GET /v1/projects/{p}/dead: the project's messages of the
// DEAD stream (sb.dead.<p>.>), oldest first or (order=newest) newest first,
// optionally one workflow's failed runs. Dead letters span every user, so
// it takes the API key.
func (s *Service) listDead(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	filter := subjects.DeadOfProject(pr.Project)
	if wf := c.QueryParam("workflow"); wf != "" {
		// The id becomes a subject token: a wildcard must not widen it.
		if !workflow.ValidID(wf) {
			return apierr.BadRequest("invalid_field", "workflow must match [a-z0-9][a-z0-9_-]*").WithField("workflow")
		}
		filter = subjects.DeadRun(pr.Project, wf)
	}
	var cursor uint64
	if v := c.QueryParam("cursor"); v != "" {
		if cursor, err = strconv.ParseUint(v, 10, 64); err != nil || cursor == 0 {
			return apierr.BadRequest("invalid_field", "cursor is not one this API returned").WithField("cursor")
		}
	}
	limit := DefaultDeadLimit
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxDeadLimit {
			return apierr.BadRequest("invalid_field", "limit must be 1..%d", MaxDeadLimit).WithField("limit")
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.PublishTimeout)
	defer cancel()
	r := deadReader{js: s.opts.JS, filter: filter, log: s.log}
	var page DeadPage
	switch order := c.QueryParam("order"); order {
	case "", "oldest":
		page, err = r.oldest(ctx, cursor, limit)
	case "newest":
		page, err = r.newest(ctx, cursor, limit)
	default:
		return apierr.BadRequest("invalid_field", "order must be oldest or newest").WithField("order")
	}
	if err != nil {
		return apierr.Unavailable(err)
	}
	return c.JSON(http.StatusOK, page)
}

// deadReader reads one filter's messages of the DEAD stream through
// ephemeral consumers: the server filters by subject, and a consumer's
// pending count says exactly how many messages follow its start, so a page
// never waits out a fetch timeout and a count needs no message read.
type deadReader struct {
	js     jetstream.JetStream
	filter string
	log    *slog.Logger
}

// open starts a consumer at sequence from (1: the first message) and
// returns it with its pending count and the func that removes it.
func (r deadReader) open(ctx context.Context, from uint64) (jetstream.Consumer, uint64, func(), error) {
	cfg := jetstream.ConsumerConfig{
		FilterSubject: r.filter, AckPolicy: jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(from, 1),
		// Removed by the returned func; the threshold only cleans up after
		// a crash.
		InactiveThreshold: time.Minute, MemoryStorage: true, Replicas: 1,
	}
	cons, err := r.js.CreateConsumer(ctx, subjects.StreamDead, cfg)
	if err != nil {
		return nil, 0, nil, err
	}
	info := cons.CachedInfo()
	closeFn := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.js.DeleteConsumer(dctx, subjects.StreamDead, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			r.log.Debug("dead letters: ephemeral consumer not deleted", "err", err)
		}
	}
	return cons, info.NumPending, closeFn, nil
}

// pending is how many messages on the filter are at or after from.
func (r deadReader) pending(ctx context.Context, from uint64) (int64, error) {
	_, n, closeFn, err := r.open(ctx, from)
	if err != nil {
		return 0, err
	}
	closeFn()
	return int64(n), nil
}

// read fetches up to n messages from cons, in stream order, stopping at the
// first one at or after below (0: no bound).
func read(ctx context.Context, cons jetstream.Consumer, n int, below uint64) ([]DeadLetter, error) {
	out := make([]DeadLetter, 0, n)
	for got := 0; got < n; {
		batch, err := cons.Fetch(n-got, jetstream.FetchContext(ctx))
		if err != nil {
			return out, err
		}
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			if below > 0 && md.Sequence.Stream >= below {
				return out, nil
			}
			out = append(out, deadLetterOf(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Headers(), m.Data()))
		}
		if err := batch.Error(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// oldest is the page of up to limit messages from sequence start on,
// oldest first; its cursor is the sequence the next page starts at.
func (r deadReader) oldest(ctx context.Context, start uint64, limit int) (DeadPage, error) {
	cons, pending, closeFn, err := r.open(ctx, start)
	if err != nil {
		return DeadPage{}, err
	}
	defer closeFn()
	// One more than the page tells whether another page follows.
	items, err := read(ctx, cons, int(min(pending, uint64(limit)+1)), 0)
	if err != nil {
		return DeadPage{}, err
	}
	page := DeadPage{DeadLetters: items}
	if len(items) > limit {
		page.DeadLetters = items[:limit]
		page.NextCursor = strconv.FormatUint(items[limit-1].Seq+1, 10)
	}
	return page, nil
}

// newest is the page of up to limit messages before sequence before (0:
// the newest), newest first; its cursor is the oldest sequence shown, which
// the next page ends before. A consumer only reads forward, so the page's
// first sequence is found by counting: the largest start with limit+1
// messages between it and before, by bisection over pending counts (a few
// dozen consumers at most, and no message read until the page itself).
func (r deadReader) newest(ctx context.Context, before uint64, limit int) (DeadPage, error) {
	if before == 0 {
		st, err := r.js.Stream(ctx, subjects.StreamDead)
		if err != nil {
			return DeadPage{}, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return DeadPage{}, err
		}
		before = info.State.LastSeq + 1
	}
	need := int64(limit) + 1
	after, err := r.pending(ctx, before)
	if err != nil {
		return DeadPage{}, err
	}
	count := func(from uint64) (int64, error) {
		n, err := r.pending(ctx, from)
		return n - after, err
	}
	lo := uint64(1)
	all, err := count(1)
	if err != nil {
		return DeadPage{}, err
	}
	if all >= need && before > 1 {
		// Invariant: count(lo) >= need; find the largest such lo < before.
		hi := before - 1
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			n, err := count(mid)
			if err != nil {
				return DeadPage{}, err
			}
			if n >= need {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
	}
	cons, pending, closeFn, err := r.open(ctx, lo)
	if err != nil {
		return DeadPage{}, err
	}
	defer closeFn()
	// Messages aged out meanwhile only shorten the page: read stops at before.
	items, err := read(ctx, cons, int(max(0, min(int64(pending)-after, need))), before)
	if err != nil {
		return DeadPage{}, err
	}
	slices.Reverse(items)
	page := DeadPage{DeadLetters: items}
	if len(items) > limit {
		page.DeadLetters = items[:limit]
		page.NextCursor = strconv.FormatUint(items[limit-1].Seq, 10)
	}
	return page, nil
}

// deadLetterOf describes one DEAD message from its subject and the headers
// the executor and pkg/consume put on it.
func deadLetterOf(seq uint64, at time.Time, subject string, h nats.Header, data []byte) DeadLetter {
	_, kind, wf, _ := subjects.DeadParts(subject)
	d := DeadLetter{
		Seq: seq, Time: at.UTC(), Subject: subject, Kind: kind, Workflow: wf,
		Reason: h.Get(wire.HeaderDeadReason), RunID: h.Get(wire.HeaderRunID), User: h.Get(wire.HeaderUser),
		Truncated: h.Get(consume.HeaderDeadTruncated), Size: len(data),
	}
	if st := h.Get(consume.HeaderDeadStream); st != "" {
		o := &DeadOrigin{Stream: st, Subject: h.Get(consume.HeaderDeadSubject)}
		o.Seq, _ = strconv.ParseUint(h.Get(consume.HeaderDeadSequence), 10, 64)
		o.Deliveries, _ = strconv.ParseUint(h.Get(consume.HeaderDeadDeliveries), 10, 64)
		d.Origin = o
	}
	// The executor's dead letter is the run's final snapshot.
	if h.Get(runs.HeaderRecord) == runs.RecordRun {
		var r runs.Run
		if json.Unmarshal(data, &r) == nil {
			d.RunID, d.User, d.EventID, d.Status, d.Error = r.ID, r.User, r.EventID, r.Status, r.Error
		}
	}
	d.Replayable = kind == "run" && runs.ValidID(d.RunID)
	return d
}

// replayDead answers POST /v1/projects/{p}/dead/{seq}/replay: the failed
// run a dead letter stands for is replayed as POST …/runs/{run}/replay
// would. The dead letter stays (DEAD ages out by itself); the new run names
// the old one in replayOf.
func (s *Service) replayDead(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(c.Param("seq"), 10, 64)
	if err != nil || seq == 0 {
		return apierr.BadRequest("invalid_field", "the dead letter id is its sequence number").WithField("seq")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.PublishTimeout)
	defer cancel()
	st, err := s.opts.JS.Stream(ctx, subjects.StreamDead)
	if err != nil {
		return apierr.Unavailable(err)
	}
	m, err := st.GetMsg(ctx, seq)
	notFound := apierr.NotFound("dead_letter_not_found", "dead letter %d does not exist", seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return notFound
	}
	if err != nil {
		return apierr.Unavailable(err)
	}
	// Another project's dead letter does not exist for this one.
	if p, _, _, ok := subjects.DeadParts(m.Subject); !ok || p != subjects.Token(pr.Project) {
		return notFound
	}
	d := deadLetterOf(m.Sequence, m.Time, m.Subject, m.Header, m.Data)
	if !d.Replayable {
		return apierr.New(http.StatusConflict, "not_replayable", "dead letter %d is a %s message without a run to replay", seq, d.Kind)
	}
	return s.answerReplay(c, pr.Project, d.RunID)
}
