package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Catalog changes. What a credential needs depends on the catalog as much
// as on the credential: a workflow applied with enabledByDefault (true
// unless set), one deleted, or one whose trigger changed changes the
// subscriptions of every credential of its integration without any change
// to their records. Each replica compares, every CatalogInterval, a
// signature of each integration's trigger workflows (id, event,
// enabledByDefault) with the one last walked for it (sb_lifecycle
// "sg.<p>.<integration>"); on a difference one replica — the holder of
// "sgl.<p>.<integration>", a KV Create with a TTL — walks the directory's
// enrollment of that integration (its credentials, every zone and shard)
// and derives each user's subscriptions again from their current record,
// then stores the new signature. A replica dying mid-walk leaves the old
// signature, so the walk is done again.

const (
	subSigPrefix     = "sg."
	subSigLockPrefix = "sgl."
	subSigLockTTL    = 5 * time.Minute
	// DefaultSubscriptionCatalogInterval is how often a replica compares
	// the catalog's signatures.
	DefaultSubscriptionCatalogInterval = 10 * time.Second
)

// errCatalogMoved: the catalog changed during a walk, which is done again.
var errCatalogMoved = errors.New("the catalog changed during the walk")

// catalogLoop runs catalogPass every interval until ctx ends.
func (sb *subscriber) catalogLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := sb.opts.CatalogInterval
	if every <= 0 {
		every = DefaultSubscriptionCatalogInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	walked := map[string]string{} // "<p>.<integration>" → signature this replica saw stored
	for {
		if err := sb.catalogPass(ctx, walked); err != nil && ctx.Err() == nil {
			sb.log.Warn("subscription catalog pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// signatures maps each integration with a subscription section used (or
// once used: walked) by project p's workflows to its trigger workflows'
// signature.
func (sb *subscriber) signatures(p string, walked map[string]string) map[string]string {
	parts := map[string][]string{}
	for _, wf := range sb.s.cat.Workflows(p) {
		t := wf.Trigger
		if t.Type != workflow.TriggerIntegration || t.Integration == "" {
			continue
		}
		parts[t.Integration] = append(parts[t.Integration], fmt.Sprintf("%s\x00%s\x00%t", wf.ID, t.Event, wf.IsEnabledByDefault()))
	}
	prefix := subjects.Token(p) + "."
	for k := range walked {
		if i, ok := strings.CutPrefix(k, prefix); ok {
			if _, seen := parts[i]; !seen {
				parts[i] = nil // every trigger workflow deleted
			}
		}
	}
	out := map[string]string{}
	for i, ps := range parts {
		in, ok := sb.s.cat.Integration(p, i)
		if !ok || in.Effective().Subscription == nil {
			if _, was := walked[prefix+i]; !was {
				continue
			}
		} else {
			ps = append(ps, "per\x00"+in.Effective().Subscription.Per)
		}
		sort.Strings(ps)
		sum := sha256.Sum256([]byte(strings.Join(ps, "\x01")))
		out[i] = hex.EncodeToString(sum[:16])
	}
	return out
}

func (sb *subscriber) catalogPass(ctx context.Context, walked map[string]string) error {
	for _, p := range sb.s.cat.Projects() {
		for i, sig := range sb.signatures(p, walked) {
			key := subjects.Token(p) + "." + i
			if walked[key] == sig {
				continue
			}
			e, err := sb.kv.Get(ctx, subSigPrefix+key)
			switch {
			case err == nil && string(e.Value()) == sig:
				walked[key] = sig
				continue
			case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
				return fmt.Errorf("lifecycle: read subscription signature of %s: %w", key, err)
			}
			crev := sb.s.cat.Revision()
			if err := sb.walk(ctx, p, i, key, sig, func() bool { return sb.s.cat.Revision() == crev }); err != nil {
				if errors.Is(err, errCatalogMoved) {
					delete(walked, key)
					continue
				}
				if !errors.Is(err, errLocked) {
					return err
				}
				continue // another replica walks it
			}
			walked[key] = sig
		}
	}
	return nil
}

// walk derives again the subscriptions of every user with a credential of
// integration i in project p, under the integration's walk lock, then
// stores sig.
//
// unchanged reports whether the catalog is still the one sig was computed
// from: a walk during which it changed has derived some users from a
// newer catalog than others (even when the signature is the same again
// afterwards, as after an apply and a delete), so its signature is not
// stored and the next pass walks again.
func (sb *subscriber) walk(ctx context.Context, p, i, key, sig string, unchanged func() bool) error {
	lockKey := subSigLockPrefix + key
	lrev, err := sb.kv.Create(ctx, lockKey, []byte(time.Now().UTC().Format(time.RFC3339Nano)), jetstream.KeyTTL(subSigLockTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return errLocked
	}
	if err != nil {
		return fmt.Errorf("lifecycle: subscription walk lock: %w", err)
	}
	defer func() { _ = sb.kv.Delete(context.WithoutCancel(ctx), lockKey, jetstream.LastRevision(lrev)) }()
	zones, err := sb.s.dir.Zones(ctx, p, i)
	if err != nil {
		return fmt.Errorf("lifecycle: zones of %s/%s: %w", p, i, err)
	}
	users := map[string]bool{}
	for _, z := range zones {
		for shard := range directory.Shards {
			after := ""
			for {
				page, err := sb.s.dir.Enrollment(ctx, p, i, z, shard, after, directory.MaxPage)
				if err != nil {
					return fmt.Errorf("lifecycle: enrollment of %s/%s: %w", p, i, err)
				}
				for _, e := range page.Entries {
					if e.Credential != "" && !users[e.User] {
						users[e.User] = true
						if err := sb.rederive(ctx, p, e.User); err != nil {
							return err
						}
					}
				}
				if page.Next == "" {
					break
				}
				after = page.Next
			}
		}
	}
	// Users whose state still holds a removed workflow's subscriptions but
	// who have no credential of i any more are already handled by their
	// own record changes.
	if !unchanged() {
		sig = "" // walk again
	}
	if _, err := sb.kv.Put(ctx, subSigPrefix+key, []byte(sig)); err != nil {
		return fmt.Errorf("lifecycle: store subscription signature of %s: %w", key, err)
	}
	sb.log.Info("subscriptions derived again after a catalog change", "project", p, "integration", i, "users", len(users), "again", sig == "")
	if sig == "" {
		return errCatalogMoved
	}
	return nil
}

// rederive derives user u's subscriptions from their current record, as
// the consumer does from a change (the stored revision is kept: the
// consumer still applies every newer change).
func (sb *subscriber) rederive(ctx context.Context, p, u string) error {
	var next *directory.StoredUser
	user, err := sb.s.dir.User(ctx, p, u)
	switch {
	case errors.Is(err, directory.ErrNotFound):
	case err != nil:
		return fmt.Errorf("lifecycle: read user %s: %w", u, err)
	default:
		creds, err := sb.s.dir.Credentials(ctx, p, u)
		if err != nil {
			return fmt.Errorf("lifecycle: read credentials of %s: %w", u, err)
		}
		next = &directory.StoredUser{User: user, Credentials: make(map[string]*directory.StoredCredential, len(creds))}
		for _, c := range creds {
			next.Credentials[c.ID] = &directory.StoredCredential{Credential: c}
		}
	}
	ukey := credUserKey(p, u)
	for range 20 {
		st, srev, err := sb.load(ctx, ukey)
		if err != nil {
			return err
		}
		rev := uint64(0)
		if st != nil {
			rev = st.Rev
		}
		nst := sb.want(st, next, rev)
		if nst == nil {
			return nil
		}
		if _, err := sb.store(ctx, ukey, nst, srev); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return err
		}
		if _, due := nst.nextDue(); due {
			return sb.mark(ctx, ukey, time.Now())
		}
		return nil
	}
	return fmt.Errorf("lifecycle: subscriptions of %s: %w too often", ukey, errConflict)
}
