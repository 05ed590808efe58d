package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Write side. Every write goes to KV and returns the new revision; callers
// that need to read their own write call WaitRevision with it.

// update applies fn to the stored JSON value of key with compare-and-set,
// retrying on concurrent writes. fn receives nil when the key is absent.
func (c *Catalog) update(ctx context.Context, key string, fn func(cur []byte) (any, error)) (uint64, error) {
	for attempt := 0; attempt < 20; attempt++ {
		var cur []byte
		var rev uint64
		e, err := c.kv.Get(ctx, key)
		switch {
		case err == nil:
			cur, rev = e.Value(), e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return 0, fmt.Errorf("catalog: get %s: %w", key, err)
		}
		v, err := fn(cur)
		if err != nil {
			return 0, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("catalog: encode %s: %w", key, err)
		}
		var newRev uint64
		if cur == nil {
			newRev, err = c.kv.Create(ctx, key, b)
		} else {
			newRev, err = c.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return newRev, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			continue
		}
		return 0, fmt.Errorf("catalog: write %s: %w", key, err)
	}
	return 0, fmt.Errorf("catalog: write %s: too many concurrent updates", key)
}

func (c *Catalog) delete(ctx context.Context, key string) (uint64, error) {
	if _, err := c.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err := c.kv.Delete(ctx, key); err != nil {
		return 0, fmt.Errorf("catalog: delete %s: %w", key, err)
	}
	// Delete does not return the revision; the bucket's last sequence is it.
	st, err := c.kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("catalog: status: %w", err)
	}
	return st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq, nil
}

// UpdateProject creates or changes project p through fn.
func (c *Catalog) UpdateProject(ctx context.Context, p string, fn func(*Project) error) (*Project, uint64, error) {
	var out *Project
	rev, err := c.update(ctx, projectKey(p), func(cur []byte) (any, error) {
		now := time.Now().UTC()
		pr := &Project{ID: p, CreatedAt: now}
		if cur != nil {
			if err := json.Unmarshal(cur, pr); err != nil {
				return nil, err
			}
		}
		if err := fn(pr); err != nil {
			return nil, err
		}
		pr.UpdatedAt = now
		out = pr
		return pr, nil
	})
	return out, rev, err
}

// Apply stores every object. Validation happened in workflow.Parse, so the
// whole set is known to be valid before the first write; the writes
// themselves are not one transaction (KV has none), but each is idempotent,
// so a caller retries a failed apply as a whole.
func (c *Catalog) Apply(ctx context.Context, objs []workflow.Object) (uint64, error) {
	var rev uint64
	for _, o := range objs {
		var key string
		switch x := o.(type) {
		case *workflow.Workflow:
			key = workflowKey(x.Project, x.ID)
		case *workflow.AppEvent:
			key = eventKey(x.Project, x.Name)
		case *workflow.Integration:
			key = integrationKey(x.Project, x.ID)
		default:
			return rev, fmt.Errorf("catalog: cannot store %T", o)
		}
		r, err := c.putChanged(ctx, key, o)
		if err != nil {
			return rev, err
		}
		rev = max(rev, r)
	}
	return rev, nil
}

// putChanged stores v under key unless the stored value is the same
// encoding already, and returns the revision that holds v: re-applying
// identical documents (every `switchboard dev` start, a CI job applying
// its directory on every run) writes nothing, so every process's watch,
// the revision and KV history stay still. The returned revision is the
// existing entry's then, which WaitRevision accepts as well.
func (c *Catalog) putChanged(ctx context.Context, key string, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("catalog: encode %s: %w", key, err)
	}
	e, err := c.kv.Get(ctx, key)
	switch {
	case err == nil && bytes.Equal(e.Value(), b):
		return e.Revision(), nil
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, fmt.Errorf("catalog: get %s: %w", key, err)
	}
	rev, err := c.kv.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("catalog: put %s: %w", key, err)
	}
	return rev, nil
}

// DeleteWorkflow removes workflow w.
func (c *Catalog) DeleteWorkflow(ctx context.Context, p, w string) (uint64, error) {
	return c.delete(ctx, workflowKey(p, w))
}
