package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// pollDedupeSource prefixes the pkg/trigger dedupe source of polled
// records ("poll.<integration>").
const pollDedupeSource = "poll."

// maxPollError bounds the error text kept on a poll's state.
const maxPollError = 500

// rateLimited is a provider's 429 (or 503 with Retry-After).
type rateLimited struct {
	status int
	after  time.Duration // 0: the provider named no delay
	raw    string
}

func (e *rateLimited) Error() string {
	if e.raw != "" {
		return fmt.Sprintf("the provider answered %d with Retry-After %s", e.status, e.raw)
	}
	return fmt.Sprintf("the provider answered %d (rate limited)", e.status)
}

// pollWanted reports whether t has an enabled workflow on event of its
// integration: only then is the provider asked.
func (p *poller) pollWanted(t *pollTarget, event string) bool {
	cred := directory.Credential{Workflows: t.Workflows}
	for _, w := range p.workflowsOn(t.Project, t.Integration, event) {
		if cred.Enabled(w) {
			return true
		}
	}
	return false
}

// pollOnce runs one due poll of (t, event): claim the interval, ask the
// provider, publish the new records, store the cursor. It never returns an
// error: every outcome is recorded on the poll's state.
func (s *Service) pollOnce(ctx context.Context, p *poller, t *pollTarget, it *pollItem) pollResult {
	event := it.event
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	now := time.Now()
	in, ok := s.cat.Integration(t.Project, t.Integration)
	if !ok {
		return pollResult{next: now.Add(manifest.DefaultPollInterval), outcome: pollSkipped}
	}
	m := in.Effective()
	q, ok := m.Poll(event)
	if !ok {
		return pollResult{next: now.Add(manifest.DefaultPollInterval), outcome: pollSkipped}
	}
	interval := q.EveryInterval()
	if !p.pollWanted(t, event) {
		return pollResult{next: now.Add(interval), outcome: pollSkipped}
	}
	key := pollStateKey(t.Project, t.User, t.Credential, event)
	st, rev := it.state, it.rev
	it.state, it.rev = nil, 0
	var err error
	if st == nil {
		st, rev, err = p.loadState(ctx, key)
	}
	if err != nil {
		p.log.Warn("poll state", "key", key, "err", err)
		return pollResult{next: now.Add(min(interval, 5*time.Second)), outcome: pollUnavailable}
	}
	if st != nil && st.NextAt.After(now) {
		// Polled already this interval (by the shard's previous owner,
		// or a claim that crashed): due again at its NextAt.
		it.state, it.rev = st, rev
		return pollResult{next: st.NextAt, outcome: pollSkipped}
	}
	if st == nil {
		st = &pollState{Event: event}
	}
	claim := *st
	claim.Status, claim.NextAt, claim.LastPollAt, claim.By = pollPolling, now.Add(interval), now, p.id
	rev, err = p.saveState(ctx, key, &claim, rev)
	if err != nil {
		if !errors.Is(err, errPollConflict) {
			p.log.Warn("poll claim", "key", key, "err", err)
		}
		// Someone else wrote it (or the store failed): read it again
		// shortly.
		return pollResult{next: now.Add(min(interval, time.Second)), outcome: pollUnavailable}
	}

	f := s.fetchPoll(ctx, p, t, m, q, &claim, now)
	final := claim
	final.Polls++
	if f.ok {
		final.Cursor, final.Initialized = f.cursor, true
	}
	final.Records += int64(f.records)
	if f.records > 0 {
		final.LastRecordsAt = now
	}
	var rl *rateLimited
	switch {
	case errors.As(f.err, &rl):
		final.RateLimited++
		delay := rl.after
		if delay <= 0 {
			delay = interval << min(final.RateLimited, 6)
		}
		delay = min(delay, maxPollBackoff)
		final.Status, final.Error, final.ErrorAt = pollBackoff, wire.Prefix(f.err.Error(), maxPollError), now
		final.BackoffUntil, final.RetryAfter = now.Add(delay), rl.raw
		final.NextAt = now.Add(max(delay, interval))
		final.Errors++
	case f.err != nil:
		final.Status, final.Error, final.ErrorAt = pollError, wire.Prefix(f.err.Error(), maxPollError), now
		final.Errors++
	default:
		final.Status, final.Error, final.Errors, final.LastOKAt = pollOK, "", 0, now
		final.RateLimited, final.BackoffUntil, final.RetryAfter = 0, time.Time{}, ""
	}
	if nrev, err := p.saveState(context.WithoutCancel(ctx), key, &final, rev); err == nil {
		it.state, it.rev = &final, nrev
	} else {
		// The claim stays: nobody polls before its NextAt, and the next
		// poll starts from the cursor stored before (its records are
		// duplicates then).
		p.log.Warn("poll state", "key", key, "err", err)
	}
	if f.err != nil {
		p.log.Info("poll failed", "project", t.Project, "user", t.User, "credential", t.Credential, "event", event, "status", final.Status, "err", f.err)
	}
	return pollResult{next: final.NextAt, outcome: final.Status, records: f.records}
}

// fetched is what one poll's requests gave.
type fetched struct {
	// ok: cursor is the cursor after the last page whose records were all
	// stored (a later page's failure keeps it there).
	ok      bool
	cursor  string
	records int
	err     error
}

func credentialVars(t *pollTarget) map[string]any {
	settings := t.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	return map[string]any{"id": t.Credential, "user": t.User, "integration": t.Integration,
		"providerAccountId": t.ProviderAccountID, "settings": settings}
}

func (s *Service) fetchPoll(ctx context.Context, p *poller, t *pollTarget, m *manifest.Manifest, q *manifest.Poll, st *pollState, now time.Time) fetched {
	env := manifest.PollEnv{Credential: credentialVars(t), Cursor: st.Cursor, Now: now}
	secret, err := s.dir.Secret(ctx, t.Project, t.User, t.Credential)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return fetched{err: fmt.Errorf("read the credential's secret: %w", err)}
	}
	if !st.Initialized {
		var startBody any
		if q.Start != nil {
			if startBody, _, err = s.pollRequest(ctx, p, m, q.Start, q, env, secret); err != nil {
				return fetched{err: fmt.Errorf("start: %w", err)}
			}
		}
		if env.Cursor, err = q.FirstCursor(env, startBody); err != nil {
			return fetched{err: err}
		}
	}
	out := fetched{cursor: env.Cursor}
	for range manifest.MaxPollPages {
		body, hdr, err := s.pollRequest(ctx, p, m, &q.Request, q, env, secret)
		if err != nil {
			out.err = err
			return out
		}
		page, err := q.Read(env, hdr, body)
		if err != nil {
			out.err = fmt.Errorf("the answer: %w", err)
			return out
		}
		for _, r := range page.Records {
			if err := s.publishRecord(ctx, t, m, q, r, now); err != nil {
				out.err = err
				return out
			}
			out.records++
		}
		env.Cursor = page.Cursor
		out.ok, out.cursor = true, page.Cursor
		if !page.More {
			break
		}
	}
	return out
}

// publishRecord stores one record as the credential's integration trigger
// event, in the webhook receiver's shape, deduplicated by record id.
func (s *Service) publishRecord(ctx context.Context, t *pollTarget, m *manifest.Manifest, q *manifest.Poll, r manifest.Record, now time.Time) error {
	typ := m.ProviderType(q.Event)
	ev := &sbv1.TriggerEvent{
		Id: trigger.NewID(), Project: t.Project, Kind: sbv1.Kind_INTEGRATION, Name: typ, Integration: t.Integration,
		User: t.User, Credential: t.Credential, Payload: r.Payload, ReceivedAt: timestamppb.New(now),
	}
	ev.Detail = &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{EventType: typ, EventId: r.ID,
		ProviderAccountId: t.ProviderAccountID, Source: "poll"}}
	key := "cred:" + t.User + "\x00" + t.Credential + "\x00" + q.Event + "\x00" + r.ID
	_, err := s.opts.Triggers.Publish(ctx, ev,
		// InSubject, as the webhook receiver's: every polled event of the
		// source has the integration's subject, so the event is its own
		// dedupe claim (one conditional publish).
		trigger.WithDedupe(trigger.Dedupe{Source: pollDedupeSource + t.Integration, Key: key, TTL: manifest.DefaultDedupeTTL, InSubject: true}),
		trigger.WithCatalogRevision(s.cat.Revision()))
	if err != nil && wire.Permanent(err) {
		// A record that can never be stored (over the size budget) must
		// not hold the cursor forever: it is skipped and logged.
		s.logger.Warn("polled record not publishable: skipped", "project", t.Project, "credential", t.Credential, "record", r.ID, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("store record %s: %w", r.ID, err)
	}
	return nil
}

// pollRequest sends one request of a poll and returns its parsed JSON
// body, read within manifest.MaxPollResponseBytes.
func (s *Service) pollRequest(ctx context.Context, p *poller, m *manifest.Manifest, r *manifest.PollRequest, q *manifest.Poll, env manifest.PollEnv, secret map[string]any) (any, http.Header, error) {
	br, err := r.Build(q, env)
	if err != nil {
		return nil, nil, fmt.Errorf("build the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, br.Method, br.URL, bytes.NewReader(br.Body))
	if err != nil {
		return nil, nil, fmt.Errorf("build the request: %w", err)
	}
	req.Header = br.Header
	if err := m.Auth.Apply(req.Header, secret); err != nil {
		return nil, nil, fmt.Errorf("the credential has %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", br.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, manifest.MaxPollResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	ra := resp.Header.Get("Retry-After")
	if resp.StatusCode == http.StatusTooManyRequests || (ra != "" && resp.StatusCode == http.StatusServiceUnavailable) {
		return nil, nil, &rateLimited{status: resp.StatusCode, after: parseRetryAfter(ra, time.Now()), raw: wire.Prefix(ra, 64)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, fmt.Errorf("the provider answered %d: %s", resp.StatusCode, wire.Prefix(string(raw), 200))
	}
	if len(raw) > manifest.MaxPollResponseBytes {
		return nil, nil, fmt.Errorf("the answer is larger than %d bytes: not read", manifest.MaxPollResponseBytes)
	}
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, nil, fmt.Errorf("the answer is not JSON: %w", err)
	}
	return body, resp.Header, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
