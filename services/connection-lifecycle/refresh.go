package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// OAuth token refresh. A credential connected with OAuth is refreshed a
// little before its access token expires, at a jittered time so tokens
// issued together are not all refreshed in the same second.
//
// Due times are an index, not a scan: the connect flow (and every refresh)
// writes "r.<unix minute>.<p>.<U>.<C>" in sb_lifecycle for the minute the
// credential is due. Each replica's refresher reads only the minutes from
// a shared cursor ("rc", advanced by compare-and-set once a past minute is
// empty) up to now, so its work follows the number of credentials due,
// never the number connected.
//
// One credential is refreshed by one replica at a time: a refresh holds
// "l.<p>.<U>.<C>" (KV Create with a TTL, so a crashed holder's lock
// expires) and re-reads the secret inside the lock. That matters because
// providers rotate refresh tokens: two replicas refreshing with the same
// refresh token would see the second refused (invalid_grant) and mark a
// good credential INVALID.
//
// A refresh the provider refuses with invalid_grant (revoked, expired,
// rotated away) marks the credential INVALID — the change consumer then
// publishes credential.invalid. Other failures (network, 5xx) are retried
// the next minute while the token lasts.

// Refresh defaults.
const (
	// DefaultRefreshLead is how long before expiry a token is refreshed.
	DefaultRefreshLead = 5 * time.Minute
	// DefaultRefreshJitter spreads refreshes over this much time before
	// the lead.
	DefaultRefreshJitter = 2 * time.Minute
	// DefaultRefreshInterval is how often a replica looks at due minutes.
	DefaultRefreshInterval = 10 * time.Second
	// refreshLockTTL bounds a refresh's lock; a refresh times out first.
	refreshLockTTL = 30 * time.Second
	refreshTimeout = 20 * time.Second
	// refreshConcurrency bounds one replica's refreshes in flight.
	refreshConcurrency = 16
	// maxCatchUpMinutes bounds the minutes one pass reads after a pause.
	maxCatchUpMinutes = 24 * 60
)

const (
	duePrefix    = "r."
	cursorKey    = "rc"
	lockPrefix   = "l."
	minuteFormat = 10
)

// dueEntry is the value of a due key.
type dueEntry struct {
	Project    string `json:"p"`
	User       string `json:"u"`
	Credential string `json:"c"`
	// At is the due time (unix seconds) within the key's minute: a pass
	// early in the minute leaves the key for a later pass without touching
	// the credential.
	At int64 `json:"at,omitempty"`
}

func credKey(p, u, c string) string {
	return subjects.Token(p) + "." + subjects.Token(u) + "." + subjects.Token(c)
}

// dueAt is when a token expiring at exp is refreshed: lead before, minus
// up to jitter, never in the past.
func (s *Service) dueAt(exp time.Time) time.Time {
	due := exp.Add(-s.refreshLead)
	if s.refreshJitter > 0 {
		due = due.Add(-rand.N(s.refreshJitter))
	}
	if now := time.Now(); due.Before(now) {
		due = now
	}
	return due
}

// scheduleRefresh indexes credential c as due before exp (zero: a token
// that does not expire is never refreshed).
func (s *Service) scheduleRefresh(ctx context.Context, kv jetstream.KeyValue, p, u, c string, exp time.Time) error {
	if exp.IsZero() {
		return nil
	}
	at := s.dueAt(exp).Unix()
	minute := at / 60
	// The first schedule ever starts the refreshers' cursor, so they never
	// walk minutes from before anything was due.
	if _, err := kv.Create(ctx, cursorKey, []byte(strconv.FormatInt(time.Now().Unix()/60, 10))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("lifecycle: start the refresh cursor: %w", err)
	}
	b, _ := json.Marshal(dueEntry{Project: p, User: u, Credential: c, At: at})
	if _, err := kv.Put(ctx, duePrefix+strconv.FormatInt(minute, minuteFormat)+"."+credKey(p, u, c), b); err != nil {
		return fmt.Errorf("lifecycle: schedule the refresh of %s/%s: %w", u, c, err)
	}
	return nil
}

// refresher is one replica's pass over due minutes.
type refresher struct {
	s      *Service
	kv     jetstream.KeyValue
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Service) startRefresher(ctx context.Context) error {
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &refresher{s: s, kv: kv, cancel: cancel, done: make(chan struct{})}
	go r.loop(rctx)
	s.refresher = r
	return nil
}

func (r *refresher) stop() {
	r.cancel()
	<-r.done
}

func (r *refresher) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.s.refreshInterval)
	defer t.Stop()
	for {
		if err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.s.logger.Warn("oauth refresh pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass refreshes every credential due up to now and advances the cursor
// over past minutes left empty.
func (r *refresher) pass(ctx context.Context) error {
	now := time.Now().Unix() / 60
	from, crev, err := r.cursor(ctx, now)
	if err != nil {
		return err
	}
	if from < now-maxCatchUpMinutes {
		from = now - maxCatchUpMinutes
	}
	for m := from; m <= now; m++ {
		prefix := duePrefix + strconv.FormatInt(m, minuteFormat) + "."
		keys, err := r.kv.ListKeysFiltered(ctx, prefix+">")
		if err != nil {
			return fmt.Errorf("lifecycle: list due minute %d: %w", m, err)
		}
		var due []string
		for k := range keys.Keys() {
			due = append(due, k)
		}
		// Every replica reads the same minute: each walks it in its own
		// random order, so they mostly take different credentials instead
		// of queueing on the same locks.
		rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
		// Refreshes wait on the provider: a bounded number run at once.
		var left atomic.Int64
		var wg sync.WaitGroup
		sem := make(chan struct{}, refreshConcurrency)
		for _, k := range due {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if !r.refreshDue(ctx, k) {
					left.Add(1)
				}
			})
		}
		wg.Wait()
		if left.Load() > 0 || m == now || ctx.Err() != nil {
			return nil // the cursor stays on a minute with work left
		}
		// Another replica may advance it first; then this one's view is
		// behind and the next pass starts from the shared value.
		if crev, err = r.advance(ctx, m+1, crev); err != nil {
			return nil
		}
	}
	return nil
}

func (r *refresher) cursor(ctx context.Context, now int64) (int64, uint64, error) {
	e, err := r.kv.Get(ctx, cursorKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Nothing was ever scheduled: the first schedule creates the
		// cursor (scheduleRefresh).
		return now, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lifecycle: read the refresh cursor: %w", err)
	}
	m, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return now, e.Revision(), nil
	}
	return m, e.Revision(), nil
}

func (r *refresher) advance(ctx context.Context, to int64, rev uint64) (uint64, error) {
	v := []byte(strconv.FormatInt(to, 10))
	if rev == 0 {
		return r.kv.Create(ctx, cursorKey, v)
	}
	return r.kv.Update(ctx, cursorKey, v, rev)
}

// refreshDue handles one due key; it reports whether the key is done (a
// key locked by another replica is that replica's).
func (r *refresher) refreshDue(ctx context.Context, key string) bool {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	var d dueEntry
	if json.Unmarshal(e.Value(), &d) != nil {
		_ = r.kv.Delete(ctx, key)
		return true
	}
	if d.At > time.Now().Unix() {
		return false // later in this minute
	}
	res, err := r.s.refresh(ctx, r.kv, d.Project, d.User, d.Credential, false)
	switch {
	case errors.Is(err, errLocked):
		return false
	case err != nil:
		// Transient: try again next minute (the token is still valid
		// for most of the lead).
		r.s.logger.Warn("oauth refresh failed; retrying", "project", d.Project, "user", d.User, "credential", d.Credential, "err", err)
		b, _ := json.Marshal(d)
		next := duePrefix + strconv.FormatInt(time.Now().Unix()/60+1, minuteFormat) + "." + credKey(d.Project, d.User, d.Credential)
		if _, err := r.kv.Put(ctx, next, b); err != nil {
			return false
		}
	default:
		r.s.logger.Info("oauth refresh", "project", d.Project, "user", d.User, "credential", d.Credential, "outcome", res)
	}
	_ = r.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	return true
}

// errLocked: another replica is refreshing the credential.
var errLocked = errors.New("the credential is being refreshed by another replica")

// Refresh outcomes.
const (
	refreshed     = "refreshed"
	refreshNotDue = "not_due"
	refreshGone   = "gone"
	refreshNoneed = "not_oauth"
	refreshDenied = "invalid"
)

// lock takes credential c's refresh lock; release frees it only if it is
// still ours.
func lock(ctx context.Context, kv jetstream.KeyValue, p, u, c string) (release func(), err error) {
	key := lockPrefix + credKey(p, u, c)
	rev, err := kv.Create(ctx, key, []byte(strconv.FormatInt(time.Now().UnixMilli(), 10)), jetstream.KeyTTL(refreshLockTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, errLocked
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle: refresh lock: %w", err)
	}
	return func() { _ = kv.Delete(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev)) }, nil
}

// refresh refreshes credential c under its lock: when due (or force), with
// the refresh token read inside the lock. It returns the outcome.
func (s *Service) refresh(ctx context.Context, kv jetstream.KeyValue, p, u, c string, force bool) (string, error) {
	release, err := lock(ctx, kv, p, u, c)
	if err != nil {
		return "", err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	cred, err := s.dir.Credential(ctx, p, u, c)
	if errors.Is(err, directory.ErrNotFound) {
		return refreshGone, nil
	}
	if err != nil {
		return "", err
	}
	if cred.Status != directory.CredentialValid {
		return refreshDenied, nil
	}
	raw, err := s.dir.Secret(ctx, p, u, c)
	if err != nil {
		return "", err
	}
	sec := secretFromMap(raw)
	if sec.RefreshToken == "" {
		return refreshNoneed, nil
	}
	if !force && time.Now().Before(sec.ExpiresAt.Add(-s.refreshLead-s.refreshJitter)) {
		// Rescheduled since this key was written, or read early in its
		// minute: index the real due time again (rewriting this very key
		// when it is the same minute, so the caller's delete of the key
		// it read fails and the schedule is kept).
		if err := s.scheduleRefresh(ctx, kv, p, u, c, sec.ExpiresAt); err != nil {
			return "", err
		}
		return refreshNotDue, nil
	}
	m, cl, err := s.oauthIntegration(ctx, p, cred.Integration)
	if err != nil {
		return "", err
	}
	old := sec.token()
	old.Expiry = time.Now().Add(-time.Minute) // make the source refresh now
	tok, err := s.oauthConfig(m, cl, "").TokenSource(s.oauthCtx(ctx), old).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		_, rev, err := s.dir.UpdateCredential(ctx, p, u, c, func(cr *directory.Credential, isNew bool) error {
			if isNew {
				return errCredentialNotFound
			}
			cr.Status = directory.CredentialInvalid
			return nil
		})
		if err != nil && !errors.Is(err, errCredentialNotFound) {
			return "", err
		}
		s.logger.Info("oauth refresh refused: credential INVALID", "project", p, "user", u, "credential", c, "provider_error", providerError(re))
		_ = s.waitVisible(ctx, rev)
		return refreshDenied, nil
	}
	if err != nil {
		return "", fmt.Errorf("lifecycle: refresh %s/%s: %s: %w", u, c, providerError(err), err)
	}
	next := fromToken(tok)
	// Only the token fields are the refresh's.
	stored := next.over(raw)
	rev, err := s.dir.SetSecret(ctx, p, u, c, stored)
	if err != nil {
		return "", err
	}
	if err := s.scheduleRefresh(ctx, kv, p, u, c, next.ExpiresAt); err != nil {
		return "", err
	}
	_ = s.waitVisible(ctx, rev)
	return refreshed, nil
}

// forceRefresh is POST …/credentials/{c}/refresh: refresh now, whatever
// the expiry (waits a little for a refresh already under way). It answers
// the credential as it is afterwards — INVALID when the provider refused.
func (s *Service) forceRefresh(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(refreshLockTTL)
	var outcome string
	for {
		outcome, err = s.refresh(ctx, kv, cl.project, cl.user, credID, true)
		if !errors.Is(err, errLocked) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return storeErr(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	switch {
	case errors.Is(err, errLocked):
		return apierr.New(http.StatusConflict, "refresh_in_progress", "another refresh of %q is still running", credID)
	case err != nil:
		if _, ok := apierr.As(err); ok {
			return err
		}
		return apierr.New(http.StatusBadGateway, "refresh_failed", "%s", strings.TrimPrefix(err.Error(), "lifecycle: ")).Wrap(err)
	case outcome == refreshGone:
		return credentialNotFound(cl, credID)
	case outcome == refreshNoneed:
		return apierr.New(http.StatusConflict, "not_oauth", "credential %q has no OAuth refresh token", credID)
	}
	cred, err := s.dir.Credential(ctx, cl.project, cl.user, credID)
	if err != nil {
		return storeErr(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"outcome": outcome, "credential": cred.Public()})
}
