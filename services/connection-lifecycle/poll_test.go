package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// pollEnv is eventEnv plus the fake list APIs on 127.0.0.1 and an
// integration "sfpoll" polling the fake's Salesforce SOQL endpoint every
// interval, with a workflow on its contact.changed event.
type pollEnv struct {
	*eventEnv
	lists    *fakeprovider.Lists
	listsURL string
	interval time.Duration
}

func newPollEnv(t *testing.T, interval time.Duration) *pollEnv {
	t.Helper()
	e := newEventEnv(t)
	lists := fakeprovider.NewLists(fakeprovider.ListsOptions{})
	fs := httptest.NewServer(fakeprovider.WithLists(http.NotFoundHandler(), lists))
	t.Cleanup(fs.Close)
	doc := fmt.Sprintf(`
kind: Integration
id: sfpoll
auth: {type: bearer}
settings: [{key: instanceUrl, type: string}]
triggers: [{event: contact.changed, type: Contact}]
polling:
  - event: contact.changed
    interval: %s
    request:
      url: '{{ credential.settings.instanceUrl }}/services/data/v60.0/query'
      query: {q: 'SELECT Id, Name, LastModifiedDate FROM Contact WHERE LastModifiedDate >= {{ cursor }} ORDER BY LastModifiedDate ASC LIMIT 200'}
    initialCursor: 'date(poll.now).Add(duration("-1h")).UTC().Format("2006-01-02T15:04:05Z")'
    items: body.records
    recordId: 'item.Id + "@" + item.LastModifiedDate'
    cursor: 'len(body.records ?? []) > 0 ? date(last(body.records).LastModifiedDate, "2006-01-02T15:04:05.000-0700").UTC().Format("2006-01-02T15:04:05Z") : cursor'
---
kind: Workflow
id: on-contact
trigger: {type: integration, integration: sfpoll, event: contact.changed}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
`, interval)
	objs, err := workflow.Parse([]byte(doc), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.cat.Apply(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	return &pollEnv{eventEnv: e, lists: lists, listsURL: fs.URL, interval: interval}
}

// connectPolled stores a VALID sfpoll credential whose access token is
// "tok-<user>" (the fake counts requests by token).
func (e *pollEnv) connectPolled(t *testing.T, user string, edit func(*directory.Credential)) {
	t.Helper()
	_, _, err := e.dir.UpdateCredential(t.Context(), "proj", user, "c1", func(c *directory.Credential, _ bool) error {
		c.Integration, c.Status = "sfpoll", directory.CredentialValid
		c.ProviderAccountID = "org-" + user
		c.Settings = map[string]any{"instanceUrl": e.listsURL}
		c.Secret = map[string]any{"accessToken": "tok-" + user}
		if edit != nil {
			edit(c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pollReplica is a lifecycle role on its own NATS connection with the
// poller on (lease TTL 2 s), recording every poll attempt.
type pollReplica struct {
	svc *lifecycle.Service
	nc  *nats.Conn
	mu  sync.Mutex
	obs []lifecycle.PollObservation
}

func (r *pollReplica) polled() []lifecycle.PollObservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []lifecycle.PollObservation
	for _, o := range r.obs {
		if o.Outcome != "skipped" && o.Outcome != "unavailable" {
			out = append(out, o)
		}
	}
	return out
}

func (e *pollEnv) replica(t *testing.T, name string, edit ...func(*lifecycle.PollOptions)) *pollReplica {
	t.Helper()
	nc, err := e.srv.Embedded.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dedupe, err := js.KeyValue(t.Context(), subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trigger.New(t.Context(), trigger.Options{JS: js, Budgets: wire.FromConn(nc), Dedupe: dedupe})
	if err != nil {
		t.Fatal(err)
	}
	r := &pollReplica{nc: nc}
	opts := lifecycle.Options{Catalog: e.cat, Directory: e.dir, Access: access.New(access.Options{Catalog: e.cat}),
		Logger: slog.New(slog.DiscardHandler), JS: js, Triggers: pub, DeriveAckWait: time.Second,
		Poll: lifecycle.PollOptions{LeaseTTL: 2 * time.Second, ReplicaID: name, Observe: func(o lifecycle.PollObservation) {
			r.mu.Lock()
			r.obs = append(r.obs, o)
			r.mu.Unlock()
		}}}
	for _, f := range edit {
		f(&opts.Poll)
	}
	svc, err := lifecycle.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	return r
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pollStates reads the poll states of user's credential c1.
func (e *pollEnv) pollStates(t *testing.T, svc *lifecycle.Service, user string) []lifecycle.PollStatus {
	t.Helper()
	ev := e.serve(t, svc)
	r := ev.do(t, http.MethodGet, "/v1/projects/proj/users/"+user+"/credentials/c1/polls", e.key, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET polls: %d %s", r.status, r.body)
	}
	return decode[struct {
		Polls []lifecycle.PollStatus `json:"polls"`
	}](t, r.body).Polls
}

// integrationEvents returns the INTEGRATION trigger events stored for proj.
func (e *pollEnv) integrationEvents(t *testing.T) []*sbv1.TriggerEvent {
	t.Helper()
	return storedTriggers(t, e.srv, "sb.trigger.proj."+subjects.KindIntegration+".>")
}

// spacedByInterval fails when two polls of one credential began less than
// an interval apart (the claim's guarantee, whichever replica polled).
func spacedByInterval(t *testing.T, interval time.Duration, reps ...*pollReplica) {
	t.Helper()
	by := map[string][]time.Time{}
	for _, r := range reps {
		for _, o := range r.polled() {
			by[o.User] = append(by[o.User], o.Started)
		}
	}
	for u, ts := range by {
		for i := range ts {
			for j := range ts {
				if i == j {
					continue
				}
				// Started is taken just before the claim; the claim's
				// own clock read comes after it, so a gap may show up to
				// a few ms short of the interval.
				if d := ts[j].Sub(ts[i]); d >= 0 && d < interval-50*time.Millisecond {
					t.Fatalf("%s polled twice within %s: %s apart", u, interval, d)
				}
			}
		}
	}
}

// TestPollReplicasShareTheWork: two replicas poll 16 credentials; each
// credential is polled (never twice within an interval) and the work is
// split, never all on one replica.
func TestPollReplicasShareTheWork(t *testing.T) {
	const interval = time.Second
	e := newPollEnv(t, interval)
	users := make([]string, 16)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
		e.connectPolled(t, users[i], nil)
	}
	// A credential whose workflow is turned off is never polled.
	e.connectPolled(t, "off", func(c *directory.Credential) { c.Workflows = map[string]bool{"on-contact": false} })
	r1 := e.replica(t, "r1")
	r2 := e.replica(t, "r2")
	waitFor(t, 30*time.Second, "every credential polled 3 times, by both replicas", func() bool {
		for _, u := range users {
			if e.lists.Polls("tok-"+u) < 3 {
				return false
			}
		}
		return len(r1.polled()) > 0 && len(r2.polled()) > 0
	})
	spacedByInterval(t, interval, r1, r2)
	if n := e.lists.Polls("tok-off"); n != 0 {
		t.Fatalf("a credential without an enabled polling workflow was polled %d times", n)
	}
	// After the start-up balance, each replica polls only its half.
	waitFor(t, 20*time.Second, "disjoint shares", func() bool {
		n1, n2 := len(r1.polled()), len(r2.polled())
		time.Sleep(3 * interval)
		who := map[string]map[string]bool{}
		for name, r := range map[string]*pollReplica{"r1": r1, "r2": r2} {
			for _, o := range r.polled()[map[string]int{"r1": n1, "r2": n2}[name]:] {
				if who[o.User] == nil {
					who[o.User] = map[string]bool{}
				}
				who[o.User][name] = true
			}
		}
		mine := map[string]int{}
		for _, w := range who {
			if len(w) > 1 {
				return false
			}
			for n := range w {
				mine[n]++
			}
		}
		return mine["r1"] > 0 && mine["r2"] > 0 && mine["r1"] < len(users) && mine["r2"] < len(users)
	})
	spacedByInterval(t, interval, r1, r2)
}

// TestPollHandover: a replica stopped frees its shards at once; one whose
// connection dies (kill -9) stops renewing and its shards move after the
// lease TTL. Either way every credential keeps being polled.
func TestPollHandover(t *testing.T) {
	tests := []struct {
		name string
		down func(t *testing.T, r *pollReplica)
	}{
		{"stop", func(t *testing.T, r *pollReplica) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.svc.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"killed", func(t *testing.T, r *pollReplica) { r.nc.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const interval = time.Second
			e := newPollEnv(t, interval)
			users := make([]string, 12)
			for i := range users {
				users[i] = fmt.Sprintf("u%02d", i)
				e.connectPolled(t, users[i], nil)
			}
			r1 := e.replica(t, "r1")
			r2 := e.replica(t, "r2")
			waitFor(t, 30*time.Second, "both replicas polling", func() bool { return len(r1.polled()) > 0 && len(r2.polled()) > 0 })
			tt.down(t, r1)
			before := map[string]int{}
			for _, u := range users {
				before[u] = e.lists.Polls("tok-" + u)
			}
			waitFor(t, 30*time.Second, "every credential polled twice more by r2", func() bool {
				for _, u := range users {
					if e.lists.Polls("tok-"+u) < before[u]+2 {
						return false
					}
				}
				return true
			})
			spacedByInterval(t, interval, r1, r2)
		})
	}
}

// TestPollDedupeAcrossRestart: a record is published once; a replica that
// crashed after publishing but before storing its cursor (the cursor put
// back) re-polls the record, and no second event is stored.
func TestPollDedupeAcrossRestart(t *testing.T) {
	const interval = time.Second
	e := newPollEnv(t, interval)
	e.connectPolled(t, "u1", nil)
	r1 := e.replica(t, "r1")
	waitFor(t, 20*time.Second, "the first poll", func() bool { return len(r1.polled()) > 0 })
	if _, err := e.lists.Add(fakeprovider.ListSalesforce, "Contact", map[string]any{"Name": "Ada"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the record's event", func() bool { return len(e.integrationEvents(t)) == 1 })
	ev := e.integrationEvents(t)[0]
	if ev.User != "u1" || ev.Credential != "c1" || ev.Integration != "sfpoll" || ev.Name != "Contact" || ev.Kind != sbv1.Kind_INTEGRATION ||
		ev.GetProvider().GetSource() != "poll" || !strings.Contains(string(ev.Payload), `"Name":"Ada"`) {
		t.Fatalf("event %+v", ev)
	}
	states := e.pollStates(t, r1.svc, "u1")
	if len(states) != 1 || states[0].Records != 1 || states[0].Status != "ok" {
		t.Fatalf("states %+v", states)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r1.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The crash: the cursor as it was before the record.
	kv, err := e.srv.JS.KeyValue(t.Context(), subjects.BucketLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	key := "ps.proj.u1.c1." + subjects.Token("contact.changed")
	ent, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	_ = json.Unmarshal(ent.Value(), &st)
	st["cursor"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	st["nextPollAt"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(st)
	if _, err := kv.Put(t.Context(), key, b); err != nil {
		t.Fatal(err)
	}
	polls := e.lists.Polls("tok-u1")
	r2 := e.replica(t, "r2")
	waitFor(t, 20*time.Second, "re-polls by the new replica", func() bool { return e.lists.Polls("tok-u1") >= polls+2 && len(r2.polled()) >= 2 })
	if evs := e.integrationEvents(t); len(evs) != 1 {
		t.Fatalf("%d events after the re-poll, want 1", len(evs))
	}
}

// TestPollBadAnswers: a 429 with Retry-After backs the credential off for
// that long (recorded); a malformed or huge answer is refused as a whole,
// recorded, and the cursor stays.
func TestPollBadAnswers(t *testing.T) {
	const interval = time.Second
	e := newPollEnv(t, interval)
	e.connectPolled(t, "u1", nil)
	r1 := e.replica(t, "r1")
	var first lifecycle.PollStatus
	waitFor(t, 20*time.Second, "a first good poll", func() bool {
		st := e.pollStates(t, r1.svc, "u1")
		if len(st) == 1 && st[0].Status == "ok" {
			first = st[0]
			return true
		}
		return false
	})
	t.Run("429 backs off", func(t *testing.T) {
		e.lists.Fail(fakeprovider.ListFault{Status: http.StatusTooManyRequests, RetryAfter: "3", Token: "tok-u1"})
		var st lifecycle.PollStatus
		waitFor(t, 20*time.Second, "the back-off recorded", func() bool {
			s := e.pollStates(t, r1.svc, "u1")
			if len(s) == 1 && s[0].Status == "backoff" {
				st = s[0]
				return true
			}
			return false
		})
		if st.RetryAfter != "3" || st.RateLimited != 1 || !strings.Contains(st.Error, "429") || st.Cursor != first.Cursor {
			t.Fatalf("state %+v", st)
		}
		if d := st.BackoffUntil.Sub(st.LastPollAt); d != 3*time.Second {
			t.Fatalf("backed off %s, want the 3 s the provider asked", d)
		}
		var after lifecycle.PollStatus
		waitFor(t, 20*time.Second, "the poll after the back-off", func() bool {
			s := e.pollStates(t, r1.svc, "u1")
			if len(s) == 1 && s[0].Status == "ok" {
				after = s[0]
				return true
			}
			return false
		})
		if after.LastPollAt.Before(st.BackoffUntil) {
			t.Fatalf("polled at %s, inside the back-off until %s", after.LastPollAt, st.BackoffUntil)
		}
	})
	for _, body := range []string{"malformed", "huge"} {
		t.Run(body, func(t *testing.T) {
			before := e.pollStates(t, r1.svc, "u1")[0]
			e.lists.Fail(fakeprovider.ListFault{Body: body, Token: "tok-u1"})
			var st lifecycle.PollStatus
			waitFor(t, 60*time.Second, "the error recorded", func() bool {
				s := e.pollStates(t, r1.svc, "u1")
				if len(s) == 1 && s[0].Status == "error" && s[0].Polls > before.Polls {
					st = s[0]
					return true
				}
				return false
			})
			want := map[string]string{"malformed": "not JSON", "huge": "larger than"}[body]
			if !strings.Contains(st.Error, want) || st.Cursor != before.Cursor || st.Records != before.Records {
				t.Fatalf("state %+v, want error %q and cursor %q kept", st, want, before.Cursor)
			}
		})
	}
	if n := len(e.integrationEvents(t)); n != 0 {
		t.Fatalf("%d events from bad answers", n)
	}
}

// TestPollIndexFollowsCredentials: an INVALID or removed credential leaves
// the index (no more polls); reconnecting brings it back.
func TestPollIndexFollowsCredentials(t *testing.T) {
	const interval = time.Second
	e := newPollEnv(t, interval)
	e.connectPolled(t, "u1", nil)
	e.replica(t, "r1")
	waitFor(t, 20*time.Second, "polls", func() bool { return e.lists.Polls("tok-u1") >= 1 })
	if _, _, err := e.dir.UpdateCredential(t.Context(), "proj", "u1", "c1", func(c *directory.Credential, _ bool) error {
		c.Status = directory.CredentialInvalid
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kv, err := e.srv.JS.KeyValue(t.Context(), subjects.BucketLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	indexed := func() bool {
		keys, err := kv.ListKeysFiltered(t.Context(), "pt.>")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n > 0
	}
	waitFor(t, 20*time.Second, "the INVALID credential out of the index", func() bool { return !indexed() })
	e.connectPolled(t, "u1", nil)
	waitFor(t, 20*time.Second, "the reconnected credential indexed", indexed)
	if _, err := e.dir.DeleteUser(t.Context(), "proj", "u1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the deleted user's credential out of the index", func() bool { return !indexed() })
}
