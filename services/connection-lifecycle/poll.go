package lifecycle

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Polling triggers (docs/polling.md). Work is split in pollShards shards
// of credentials (poll_index.go); each replica leases a fair share of them
// in sb_lifecycle and polls only the credentials of its shards:
//
//	ph.<replica>   a replica's heartbeat (per-key TTL): the live replicas
//	               are counted from these, fair share = ceil(shards/live)
//	pl.<shard>     a shard's lease (value: the replica), created with a
//	               per-key TTL and renewed by a publish that sets the TTL
//	               again and expects the last revision (KV Update would
//	               drop the TTL); a replica killed with -9 stops renewing
//	               and its shards are free after PollLeaseTTL
//	ps.<p>.<U>.<C>.<event>  the poll's state: cursor, next due time,
//	               status, backoff (pollState), written by compare-and-set
//
// A poll first claims its interval: it writes NextAt = now + interval with
// the revision it read, so a replica that took the shard over (or a stale
// owner whose lease expired) sees the claim and waits for NextAt instead
// of polling again. Then it calls the provider, publishes the new records
// (deduplicated by record id, pkg/trigger WithDedupe) and only then stores
// the new cursor: a crash in between re-polls from the old cursor and the
// records it publishes again are duplicates.

// Poll defaults.
const (
	DefaultPollLeaseTTL    = 15 * time.Second
	DefaultPollConcurrency = 64
	// pollTimeout bounds one poll (every page, the publishes, the state).
	pollTimeout = 30 * time.Second
	// maxPollBackoff bounds a 429's back-off.
	maxPollBackoff = time.Hour
)

const (
	pollHeartbeatPrefix = "ph."
	pollLeasePrefix     = "pl."
	pollStatePrefix     = "ps."
)

// PollOptions tune the poller (the zero value is the defaults).
type PollOptions struct {
	// Disabled turns the poller off on this replica.
	Disabled bool
	// LeaseTTL is how long a shard stays leased without renewal: how soon
	// a dead replica's credentials are polled by another one.
	LeaseTTL time.Duration
	// Concurrency bounds one replica's polls in flight.
	Concurrency int
	// ReplicaID names this replica in leases (default random).
	ReplicaID string
	// Observe, when set, is called after every poll attempt (tests and
	// the benchmark: lag and outcome).
	Observe func(PollObservation)
}

// PollObservation is one poll attempt.
type PollObservation struct {
	Project, User, Credential, Event string
	// Due is when the poll was due; Started when it began.
	Due, Started time.Time
	// Outcome is the state's Status after the poll (ok, error, backoff),
	// "skipped" (not due, no enabled workflow) or "unavailable" (the
	// state store failed): only the first three asked the provider.
	Outcome string
	Records int
}

// pollState is ps.<…>: what one (credential, event) poll knows.
type pollState struct {
	Event       string    `json:"event"`
	Cursor      string    `json:"cursor,omitempty"`
	Initialized bool      `json:"initialized,omitempty"`
	Status      string    `json:"status"`
	NextAt      time.Time `json:"nextPollAt"`
	LastPollAt  time.Time `json:"lastPollAt,omitzero"`
	LastOKAt    time.Time `json:"lastSuccessAt,omitzero"`
	By          string    `json:"replica,omitempty"`
	Error       string    `json:"error,omitempty"`
	ErrorAt     time.Time `json:"errorAt,omitzero"`
	// BackoffUntil is set while the provider asked to slow down (429,
	// Retry-After); RetryAfter is the delay it asked for.
	BackoffUntil  time.Time `json:"backoffUntil,omitzero"`
	RetryAfter    string    `json:"retryAfter,omitempty"`
	RateLimited   int       `json:"rateLimited,omitempty"`
	Errors        int       `json:"consecutiveErrors,omitempty"`
	Polls         int64     `json:"polls"`
	Records       int64     `json:"records"`
	LastRecordsAt time.Time `json:"lastRecordAt,omitzero"`
}

// Poll statuses.
const (
	pollPolling = "polling" // claimed, under way
	pollOK      = "ok"
	pollError   = "error"
	pollBackoff = "backoff"
	pollSkipped = "skipped"
	// pollUnavailable: the state could not be read or claimed; the
	// provider was not asked.
	pollUnavailable = "unavailable"
)

func pollStateKey(p, u, c, event string) string {
	// Event names hold dots: the token encoding keeps the event one token.
	return pollStatePrefix + credKey(p, u, c) + "." + subjects.Token(event)
}

// poller is one replica's share of the polling.
type poller struct {
	s      *Service
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	id     string
	ttl    time.Duration
	obs    func(PollObservation)
	client *http.Client
	log    *slog.Logger
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu      sync.Mutex
	targets map[string]*pollTarget // target key → target
	byShard [pollShards]map[string]bool
	owned   [pollShards]uint64 // lease revision, 0: not ours
	gen     [pollShards]uint64 // bumped on every acquisition
	queue   pollQueue
	// seq is the current schedule of each (target, event): a heap item
	// of an older one (the credential left and came back, the shard moved
	// and returned) is dropped when it comes due.
	seq   map[string]uint64
	wake  chan struct{}
	ready chan struct{} // closed once the index's initial values are in
	work  chan *pollItem
	polls atomic.Int64
	wants wantCache
}

type pollItem struct {
	due    time.Time
	target string // target key
	event  string
	shard  int
	gen    uint64
	seq    uint64
	index  int
	// state and rev are the poll's state as this replica last wrote it:
	// the next claim is a compare-and-set on rev without reading it again
	// (a conflict means someone else wrote it, and it is read then).
	state *pollState
	rev   uint64
}

func (it *pollItem) id() string { return it.target + "\x00" + it.event }

type pollQueue []*pollItem

func (q pollQueue) Len() int           { return len(q) }
func (q pollQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q pollQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *pollQueue) Push(x any)        { it := x.(*pollItem); it.index = len(*q); *q = append(*q, it) }
func (q *pollQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (s *Service) startPoller(ctx context.Context) error {
	o := s.opts.Poll
	if o.Disabled {
		return nil
	}
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultPollLeaseTTL
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultPollConcurrency
	}
	if o.ReplicaID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		o.ReplicaID = hex.EncodeToString(b)
	}
	x, err := startPollIndexer(ctx, s.opts.JS, kv, s.cat, s.opts.DeriveAckWait, s.logger.With("component", "lifecycle-poll-index"))
	if err != nil {
		return err
	}
	s.pollIndex = x
	client := s.opts.HTTPClient
	if client == nil {
		// Many credentials poll the same provider host: keep as many
		// connections to it as polls run at once (the default transport
		// keeps 2, and the rest would be new connections every poll).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = o.Concurrency
		client = &http.Client{Timeout: pollTimeout, Transport: tr}
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &poller{s: s, kv: kv, js: s.opts.JS, id: o.ReplicaID, ttl: o.LeaseTTL, obs: o.Observe, cancel: cancel, client: client,
		log: s.logger.With("component", "lifecycle-poll", "replica", o.ReplicaID), targets: map[string]*pollTarget{}, seq: map[string]uint64{},
		wake: make(chan struct{}, 1), work: make(chan *pollItem), ready: make(chan struct{})}
	for i := range p.byShard {
		p.byShard[i] = map[string]bool{}
	}
	w, err := kv.WatchFiltered(pctx, []string{pollTargetPrefix + ">"})
	if err != nil {
		cancel()
		return fmt.Errorf("lifecycle: watch the poll index: %w", err)
	}
	p.done.Add(3 + o.Concurrency)
	go p.follow(pctx, w)
	go p.leases(pctx)
	go p.dispatch(pctx)
	for range o.Concurrency {
		go p.worker(pctx)
	}
	s.poller = p
	return nil
}

func (p *poller) stop(ctx context.Context) {
	p.cancel()
	p.done.Wait()
	// Free our shards at once: the other replicas need not wait for the
	// leases to expire.
	for sh := range pollShards {
		if rev := p.owned[sh]; rev != 0 {
			_ = p.kv.Delete(ctx, pollLeasePrefix+strconv.Itoa(sh), jetstream.LastRevision(rev))
		}
	}
	_ = p.kv.Delete(ctx, pollHeartbeatPrefix+p.id)
}

// follow keeps the in-memory copy of the poll index.
func (p *poller) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer p.done.Done()
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				// The initial values are in: leases may be taken now,
				// and a shard's credentials are all known when it is.
				select {
				case <-p.ready:
				default:
					close(p.ready)
				}
				continue
			}
			p.apply(e)
		}
	}
}

func (p *poller) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	rest := strings.TrimPrefix(key, pollTargetPrefix)
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return
	}
	sh, err := strconv.Atoi(rest[:i])
	if err != nil || sh < 0 || sh >= pollShards {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(p.targets, key)
		delete(p.byShard[sh], key)
		return
	}
	var t pollTarget
	if json.Unmarshal(e.Value(), &t) != nil {
		return
	}
	_, known := p.targets[key]
	p.targets[key] = &t
	p.byShard[sh][key] = true
	if !known && p.owned[sh] != 0 {
		p.scheduleTarget(sh, key, &t, time.Now(), false)
	}
}

// scheduleTarget queues every poll of t (p.mu held): at a time spread
// over the interval by a hash of the poll, so a shard taken over does not
// poll all its credentials in the same second; now for a new credential.
func (p *poller) scheduleTarget(sh int, key string, t *pollTarget, now time.Time, spread bool) {
	in, ok := p.s.cat.Integration(t.Project, t.Integration)
	if !ok {
		return
	}
	for _, q := range in.Effective().Polling {
		due := now
		if spread {
			h := fnv.New64a()
			_, _ = h.Write([]byte(key + "\x00" + q.Event))
			due = now.Add(time.Duration(h.Sum64() % uint64(q.EveryInterval())))
		}
		it := &pollItem{due: due, target: key, event: q.Event, shard: sh, gen: p.gen[sh]}
		p.seq[it.id()]++
		it.seq = p.seq[it.id()]
		heap.Push(&p.queue, it)
	}
	p.poke()
}

func (p *poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// leases keeps the heartbeat and this replica's fair share of shards.
func (p *poller) leases(ctx context.Context) {
	defer p.done.Done()
	select {
	case <-p.ready:
	case <-ctx.Done():
		return
	}
	beat := p.ttl / 3
	t := time.NewTicker(beat)
	defer t.Stop()
	for {
		if err := p.balance(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("poll leases", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publishTTL writes key with a per-key TTL, expecting revision rev (0:
// that the key does not exist... or was deleted: the caller uses Create).
func (p *poller) publishTTL(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	m := nats.NewMsg("$KV." + p.kv.Bucket() + "." + key)
	m.Data = val
	ack, err := p.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(p.ttl))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func (p *poller) balance(ctx context.Context) error {
	// Heartbeat: a plain publish with the TTL (the key is ours alone).
	m := nats.NewMsg("$KV." + p.kv.Bucket() + "." + pollHeartbeatPrefix + p.id)
	m.Data = []byte(strconv.FormatInt(time.Now().Unix(), 10))
	if _, err := p.js.PublishMsg(ctx, m, jetstream.WithMsgTTL(p.ttl)); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	live := 0
	keys, err := p.kv.ListKeysFiltered(ctx, pollHeartbeatPrefix+">")
	if err != nil {
		return fmt.Errorf("list replicas: %w", err)
	}
	for range keys.Keys() {
		live++
	}
	live = max(live, 1)
	fair := (pollShards + live - 1) / live

	// Renew what we hold; a failed renewal means the lease expired and
	// someone else may hold it now.
	held := 0
	for sh := range pollShards {
		p.mu.Lock()
		rev := p.owned[sh]
		p.mu.Unlock()
		if rev == 0 {
			continue
		}
		nrev, err := p.publishTTL(ctx, pollLeasePrefix+strconv.Itoa(sh), []byte(p.id), rev)
		p.mu.Lock()
		if err != nil {
			p.owned[sh] = 0
			p.log.Info("poll shard lost", "shard", sh, "err", err)
		} else {
			p.owned[sh] = nrev
			held++
		}
		p.mu.Unlock()
	}
	// Over the fair share (a replica joined): release the extra.
	for sh := pollShards - 1; sh >= 0 && held > fair; sh-- {
		p.mu.Lock()
		rev := p.owned[sh]
		if rev != 0 {
			p.owned[sh] = 0
		}
		p.mu.Unlock()
		if rev != 0 {
			_ = p.kv.Delete(ctx, pollLeasePrefix+strconv.Itoa(sh), jetstream.LastRevision(rev))
			held--
		}
	}
	if held >= fair {
		return nil
	}
	// Under it: take free shards, in random order so replicas starting
	// together do not race for the same ones.
	taken := map[int]bool{}
	lk, err := p.kv.ListKeysFiltered(ctx, pollLeasePrefix+">")
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	for k := range lk.Keys() {
		if sh, err := strconv.Atoi(strings.TrimPrefix(k, pollLeasePrefix)); err == nil {
			taken[sh] = true
		}
	}
	for _, sh := range mrand.Perm(pollShards) {
		if held >= fair || ctx.Err() != nil {
			break
		}
		if taken[sh] {
			continue
		}
		rev, err := p.kv.Create(ctx, pollLeasePrefix+strconv.Itoa(sh), []byte(p.id), jetstream.KeyTTL(p.ttl))
		if err != nil {
			continue // someone was faster
		}
		held++
		p.mu.Lock()
		p.owned[sh] = rev
		p.gen[sh]++
		now := time.Now()
		for key := range p.byShard[sh] {
			p.scheduleTarget(sh, key, p.targets[key], now, true)
		}
		count := len(p.byShard[sh])
		p.mu.Unlock()
		p.log.Info("poll shard acquired", "shard", sh, "credentials", count)
	}
	return nil
}

// wantCache is, per catalog revision, the workflows of each (project,
// integration, event) polling serves: the check before every poll is a
// map read, not a walk over the project's workflows.
type wantCache struct {
	mu  sync.Mutex
	rev uint64
	m   map[string][]*workflow.Workflow
}

func (p *poller) workflowsOn(project, integration, event string) []*workflow.Workflow {
	c := &p.wants
	rev := p.s.cat.Revision()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.rev != rev {
		c.m, c.rev = map[string][]*workflow.Workflow{}, rev
	}
	k := project + "\x00" + integration + "\x00" + event
	ws, ok := c.m[k]
	if !ok {
		for _, w := range p.s.cat.Workflows(project) {
			if tr := &w.Trigger; tr.Type == workflow.TriggerIntegration && tr.Integration == integration && tr.Event == event {
				ws = append(ws, w)
			}
		}
		c.m[k] = ws
	}
	return ws
}

// current reports whether it is still to be polled by this replica (p.mu
// held): its shard is ours since it was queued, its credential is indexed
// and no newer schedule of it was made.
func (p *poller) current(it *pollItem) bool {
	return p.owned[it.shard] != 0 && p.gen[it.shard] == it.gen && p.targets[it.target] != nil && p.seq[it.id()] == it.seq
}

// dispatch hands due polls to the workers.
func (p *poller) dispatch(ctx context.Context) {
	defer p.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var next *pollItem
		wait := time.Hour
		for p.queue.Len() > 0 {
			it := p.queue[0]
			if !p.current(it) {
				heap.Pop(&p.queue) // the shard moved or the credential left
				continue
			}
			if d := time.Until(it.due); d > 0 {
				wait = d
				break
			}
			next = heap.Pop(&p.queue).(*pollItem)
			break
		}
		p.mu.Unlock()
		if next != nil {
			select {
			case p.work <- next:
			case <-ctx.Done():
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

func (p *poller) worker(ctx context.Context) {
	defer p.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-p.work:
			next := p.run(ctx, it)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			if p.current(it) {
				it.due = next
				heap.Push(&p.queue, it)
				p.poke()
			}
			p.mu.Unlock()
		}
	}
}

// run polls it once (or finds it not due) and returns when it is due next.
func (p *poller) run(ctx context.Context, it *pollItem) time.Time {
	p.mu.Lock()
	t := p.targets[it.target]
	p.mu.Unlock()
	started := time.Now()
	res := p.s.pollOnce(ctx, p, t, it)
	p.polls.Add(1)
	if p.obs != nil {
		p.obs(PollObservation{Project: t.Project, User: t.User, Credential: t.Credential, Event: it.event,
			Due: it.due, Started: started, Outcome: res.outcome, Records: res.records})
	}
	return res.next
}

type pollResult struct {
	next    time.Time
	outcome string
	records int
}

// errPollConflict: the state changed under this poll (another replica).
var errPollConflict = errors.New("poll state changed concurrently")

func (p *poller) loadState(ctx context.Context, key string) (*pollState, uint64, error) {
	e, err := p.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var st pollState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, e.Revision(), nil // unreadable: start over
	}
	return &st, e.Revision(), nil
}

func (p *poller) saveState(ctx context.Context, key string, st *pollState, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = p.kv.Create(ctx, key, b)
	} else {
		nrev, err = p.kv.Update(ctx, key, b, rev)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || casConflict(err) {
			return 0, errPollConflict
		}
		return 0, err
	}
	return nrev, nil
}

// casConflict reports a compare-and-set that lost (10071; 10164 on
// replicated streams).
func casConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164)
}
