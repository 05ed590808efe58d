package directory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Write side. Every write is a compare-and-set of one user record with
// retries (like catalog.update), with the record's index entries kept
// beside it (index.go) and secrets in sb_secrets (secret.go). Each returns
// the record's new revision; this Directory's reads reflect it at once,
// another Directory's after WaitRevision(rev).

const maxAttempts = 50

func decodeDoc(raw []byte, rev uint64) (*doc, error) {
	if raw == nil {
		return newDoc(nil, rev), nil
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return nil, err
	}
	return newDoc(rec, rev), nil
}

func decodeRecord(raw []byte) (*record, error) {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("unreadable record: %w", err)
	}
	if rec.Creds == nil {
		rec.Creds = map[string]*storedCred{}
	}
	return &rec, nil
}

// pendingSecret is a secret written for an attempt, under its version.
type pendingSecret struct {
	cred, version string
}

// mutation is one attempt's edit of a user record: it gets a copy of the
// record (nil when the user does not exist) and returns the record to store
// (nil deletes the user), listing in newSecrets[cred] the secrets to store
// (a nil value removes the credential's secret).
type mutation func(rec *record, newSecrets map[string]map[string]any) (*record, error)

// mutate applies fn to user u's record with compare-and-set, retrying on
// concurrent writes, and keeps index entries and secrets in step.
func (d *Directory) mutate(ctx context.Context, p, u string, fn mutation) (*record, uint64, error) {
	if err := checkID("project", p); err != nil {
		return nil, 0, err
	}
	if err := checkID("user", u); err != nil {
		return nil, 0, err
	}
	key := userKey(p, u)
	written := map[string]bool{} // index keys written by any attempt
	var orphanSecrets []pendingSecret
	defer func() {
		if len(orphanSecrets) > 0 {
			d.deleteSecrets(context.WithoutCancel(ctx), p, u, orphanSecrets)
		}
	}()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		raw, rev, err := d.dir.get(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		var old *record
		if raw != nil {
			var err error
			if old, err = decodeRecord(raw); err != nil {
				return nil, 0, fmt.Errorf("directory: user %q: %w", u, err)
			}
		}
		var cur *record
		if raw != nil {
			cur, _ = decodeRecord(raw) // a second copy for fn to edit
		}
		oldIdx, _ := d.index(p, old)
		// giveUp ends the write without storing: entries written by lost
		// attempts that the stored record does not imply are removed.
		giveUp := func(err error) (*record, uint64, error) {
			if len(written) > 0 {
				d.cleanup(context.WithoutCancel(ctx), written, oldIdx, rev)
			}
			return nil, 0, err
		}
		newSecrets := map[string]map[string]any{}
		next, err := fn(cur, newSecrets)
		if err != nil {
			return giveUp(err)
		}
		if next != nil {
			next.User.Project, next.User.ID = p, u
		}
		if next == nil && old == nil {
			return giveUp(ErrNotFound)
		}
		if err := checkRecord(next); err != nil {
			return giveUp(err)
		}
		// Secrets and index entries are stored before the record, in one
		// batch: the record never names a secret version or implies an
		// entry that is not stored.
		batch := map[string][]byte{}
		var pending []pendingSecret
		for cred, s := range newSecrets {
			sc := next.Creds[cred]
			if sc == nil {
				continue
			}
			if s == nil {
				sc.SecretVersion = ""
				continue
			}
			ver := newVersion()
			subj, sealed, err := d.sealSecret(p, u, cred, ver, s)
			if err != nil {
				return giveUp(err)
			}
			batch[subj] = sealed
			sc.SecretVersion = ver
			pending = append(pending, pendingSecret{cred, ver})
		}
		var value []byte
		if next != nil {
			if value, err = json.Marshal(next); err != nil {
				return nil, 0, fmt.Errorf("directory: encode user %q: %w", u, err)
			}
			if len(value) > MaxRecordBytes {
				return giveUp(invalid("user", "too_large", "the user's record (user and credentials) would be %d bytes, over the limit of %d", len(value), MaxRecordBytes))
			}
		}
		newIdx, markers := d.index(p, next)
		if err := d.ensureMarkers(ctx, markers); err != nil {
			return giveUp(err)
		}
		for k, e := range newIdx {
			if o, ok := oldIdx[k]; !ok || !sameEntry(o, e) || written[k] {
				batch[d.dir.pre+k] = encodeEntry(e.v, rev)
				written[k] = true // even if the write fails: it may have landed
			}
		}
		if err := publishAll(ctx, d.dir.js, batch); err != nil {
			d.deleteSecrets(context.WithoutCancel(ctx), p, u, pending)
			return giveUp(err)
		}
		newRev, err := d.dir.cas(ctx, key, value, rev)
		if errors.Is(err, errConflict) {
			orphanSecrets = append(orphanSecrets, pending...)
			// Back off a little, with jitter, so writers racing on one
			// user take turns instead of colliding again.
			if err := sleepCtx(ctx, time.Duration(mrand.N(attempt+1))*time.Millisecond); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			// The write may or may not have landed: keep the secrets it may name.
			return nil, 0, err
		}
		// Committed. Everything below is cleanup a crash may skip: stale
		// entries and unreferenced secret versions are harmless leftovers.
		cctx := context.WithoutCancel(ctx)
		for k := range oldIdx {
			written[k] = true
		}
		d.cleanup(cctx, written, newIdx, newRev)
		if old != nil {
			for id, sc := range old.Creds {
				if sc.SecretVersion == "" {
					continue
				}
				if n := credOf(next, id); n == nil || n.SecretVersion != sc.SecretVersion {
					orphanSecrets = append(orphanSecrets, pendingSecret{id, sc.SecretVersion})
				}
			}
		}
		// This process reads its own write at once; the watch will confirm it.
		d.cache.insert(key, newDoc(next, newRev), newRev)
		return next, newRev, nil
	}
	return nil, 0, fmt.Errorf("directory: user %q: too many concurrent updates", u)
}

func credOf(rec *record, id string) *storedCred {
	if rec == nil {
		return nil
	}
	return rec.Creds[id]
}

// checkRecord validates a record about to be stored.
func checkRecord(rec *record) error {
	if rec == nil {
		return nil
	}
	if err := checkSize("metadata", rec.User.Metadata, MaxMetadataBytes); err != nil {
		return err
	}
	if len(rec.User.Workflows) > MaxWorkflowOverrides {
		return invalid("workflows", "too_large", "a user has at most %d workflow overrides", MaxWorkflowOverrides)
	}
	if len(rec.Creds) > MaxCredentialsPerUser {
		return invalid("credentials", "too_large", "a user has at most %d credentials", MaxCredentialsPerUser)
	}
	for id, sc := range rec.Creds {
		c := &sc.Credential
		switch {
		case checkID("credential", id) != nil:
			return checkID("credential", id)
		case !validIntegration(c.Integration):
			return invalid("integration", "invalid_field", "integration %q is not a valid id (lowercase letters, digits, - and _, at most 63)", c.Integration)
		case c.Status != CredentialValid && c.Status != CredentialInvalid:
			return invalid("status", "invalid_field", "status must be %q or %q", CredentialValid, CredentialInvalid)
		case len(c.ProviderAccountID) > MaxIDBytes:
			return invalid("providerAccountId", "invalid_id", "providerAccountId is longer than %d bytes", MaxIDBytes)
		case len(c.Workflows) > MaxWorkflowOverrides:
			return invalid("workflows", "too_large", "a credential has at most %d workflow overrides", MaxWorkflowOverrides)
		}
		if err := checkSize("settings", c.Settings, MaxSettingsBytes); err != nil {
			return err
		}
	}
	return nil
}

// newToken returns a webhook token: 128 random bits, base64url.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validToken reports whether s has the shape of a webhook token.
func validToken(s string) bool {
	if len(s) != 22 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// newVersion names one stored secret (96 random bits).
func newVersion() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// UpdateUser creates or changes connected user u through fn. fn gets a copy
// (a new user when absent); identity and timestamps are kept by the writer.
func (d *Directory) UpdateUser(ctx context.Context, p, u string, fn func(*User) error) (*User, uint64, error) {
	rec, rev, err := d.mutate(ctx, p, u, func(rec *record, _ map[string]map[string]any) (*record, error) {
		now := time.Now().UTC()
		if rec == nil {
			rec = &record{User: User{Project: p, ID: u, CreatedAt: now}, Creds: map[string]*storedCred{}}
		}
		created := rec.User.CreatedAt
		if err := fn(&rec.User); err != nil {
			return nil, err
		}
		rec.User.CreatedAt, rec.User.UpdatedAt = created, now
		return rec, nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := rec.User
	return &out, rev, nil
}

// DeleteUser removes user u with every credential, secret and index entry.
func (d *Directory) DeleteUser(ctx context.Context, p, u string) (uint64, error) {
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, _ map[string]map[string]any) (*record, error) {
		if rec == nil {
			return nil, ErrNotFound
		}
		return nil, nil
	})
	return rev, err
}

// UpdateCredential creates or changes credential c of user u through fn,
// creating the user too when it does not exist (a connect implies its
// user). created tells fn whether the credential is new. fn may change
// Integration, ProviderAccountID, Settings, Status and Workflows, and set
// Secret to store a new secret, or clear HasSecret (Secret nil) to remove
// it; the identity, WebhookToken and timestamps are the writer's.
func (d *Directory) UpdateCredential(ctx context.Context, p, u, c string, fn func(cr *Credential, created bool) error) (*Credential, uint64, error) {
	if err := checkID("credential", c); err != nil {
		return nil, 0, err
	}
	var out Credential
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, secrets map[string]map[string]any) (*record, error) {
		return applyCredential(rec, p, u, c, secrets, fn, &out)
	})
	if err != nil {
		return nil, 0, err
	}
	return &out, rev, nil
}

// applyCredential is UpdateCredential's edit of a record; out receives the
// credential's public form.
func applyCredential(rec *record, p, u, c string, secrets map[string]map[string]any,
	fn func(*Credential, bool) error, out *Credential) (*record, error) {
	now := time.Now().UTC()
	if rec == nil {
		rec = &record{User: User{Project: p, ID: u, CreatedAt: now, UpdatedAt: now}, Creds: map[string]*storedCred{}}
	}
	sc, exists := rec.Creds[c]
	if !exists {
		sc = &storedCred{Credential: Credential{Project: p, User: u, ID: c, Status: CredentialValid,
			CreatedAt: now, WebhookToken: newToken()}}
	}
	cr := sc.Credential
	cr.Secret, cr.HasSecret = nil, sc.SecretVersion != ""
	if err := fn(&cr, !exists); err != nil {
		return nil, err
	}
	switch {
	case cr.Secret != nil:
		if err := checkSize("secret", cr.Secret, MaxSecretBytes); err != nil {
			return nil, err
		}
		secrets[c] = cr.Secret
	case !cr.HasSecret && sc.SecretVersion != "":
		secrets[c] = nil
	}
	next := &storedCred{Credential: cr, SecretVersion: sc.SecretVersion}
	next.Project, next.User, next.ID = p, u, c
	next.WebhookToken, next.CreatedAt, next.UpdatedAt = sc.WebhookToken, sc.CreatedAt, now
	next.Secret, next.HasSecret = nil, false
	rec.Creds[c] = next
	*out = next.Credential
	out.HasSecret = cr.Secret != nil || (cr.HasSecret && sc.SecretVersion != "")
	return rec, nil
}

// SetSecret stores secret as credential c's secret (nil removes it).
func (d *Directory) SetSecret(ctx context.Context, p, u, c string, secret map[string]any) (uint64, error) {
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, secrets map[string]map[string]any) (*record, error) {
		sc := credOf(rec, c)
		if sc == nil {
			return nil, ErrNotFound
		}
		if err := checkSize("secret", secret, MaxSecretBytes); err != nil {
			return nil, err
		}
		if secret != nil || sc.SecretVersion != "" {
			secrets[c] = secret
		}
		sc.UpdatedAt = time.Now().UTC()
		return rec, nil
	})
	return rev, err
}

// DeleteCredential disconnects credential c of user u: the credential, its
// secret and its index entries go.
func (d *Directory) DeleteCredential(ctx context.Context, p, u, c string) (uint64, error) {
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, _ map[string]map[string]any) (*record, error) {
		if credOf(rec, c) == nil {
			return nil, ErrNotFound
		}
		delete(rec.Creds, c)
		rec.User.UpdatedAt = time.Now().UTC()
		return rec, nil
	})
	return rev, err
}

// RotateWebhookToken gives credential c a new webhook token; the old one
// stops resolving.
func (d *Directory) RotateWebhookToken(ctx context.Context, p, u, c string) (*Credential, uint64, error) {
	var out Credential
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, _ map[string]map[string]any) (*record, error) {
		sc := credOf(rec, c)
		if sc == nil {
			return nil, ErrNotFound
		}
		sc.WebhookToken, sc.UpdatedAt = newToken(), time.Now().UTC()
		out = sc.Credential
		out.HasSecret = sc.SecretVersion != ""
		return rec, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return &out, rev, nil
}

// SetCredentialWorkflow turns workflow w on or off for credential c.
func (d *Directory) SetCredentialWorkflow(ctx context.Context, p, u, c, w string, on bool) (*Credential, uint64, error) {
	if !workflow.ValidID(w) {
		return nil, 0, invalid("workflow", "invalid_id", "%q is not a valid workflow id", w)
	}
	var out Credential
	_, rev, err := d.mutate(ctx, p, u, func(rec *record, _ map[string]map[string]any) (*record, error) {
		sc := credOf(rec, c)
		if sc == nil {
			return nil, ErrNotFound
		}
		if sc.Workflows == nil {
			sc.Workflows = map[string]bool{}
		}
		sc.Workflows[w], sc.UpdatedAt = on, time.Now().UTC()
		out = sc.Credential
		out.HasSecret = sc.SecretVersion != ""
		return rec, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return &out, rev, nil
}

// SetUserWorkflow turns workflow w (one without an integration) on or off
// for user u, creating the user when needed.
func (d *Directory) SetUserWorkflow(ctx context.Context, p, u, w string, on bool) (*User, uint64, error) {
	if !workflow.ValidID(w) {
		return nil, 0, invalid("workflow", "invalid_id", "%q is not a valid workflow id", w)
	}
	return d.UpdateUser(ctx, p, u, func(us *User) error {
		if us.Workflows == nil {
			us.Workflows = map[string]bool{}
		}
		us.Workflows[w] = on
		return nil
	})
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
