package history

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/runs"
)

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Filter selects runs of one project. Zero fields don't filter.
type Filter struct {
	Project  string // required
	Workflow string
	User     string
	Status   runs.Status
	// Since (inclusive) and Until (exclusive) bound the run's first-seen
	// CreatedAt, the time runs are ordered by.
	Since, Until time.Time
	// Limit is the page size: DefaultLimit when <= 0, at most MaxLimit.
	Limit int
	// Cursor is a previous Page's NextCursor. It is bound to the index the
	// filter selects (project, workflow or user); other filters may change
	// between pages.
	Cursor string
}

// Page is one page of runs, newest first.
type Page struct {
	Runs       []*runs.Run `json:"runs"`
	NextCursor string      `json:"nextCursor,omitempty"`
}

// Index kinds, the first byte of a cursor.
const (
	kindProject  = 'p'
	kindWorkflow = 'w'
	kindUser     = 'u'
)

// index picks the narrowest index for f: by workflow, by user, or by project.
// Keys of every index end in ts \x00 runID after the prefix.
func (f Filter) index() (kind byte, bucket []byte, prefix []byte) {
	switch {
	case f.Workflow != "":
		return kindWorkflow, bucketIdxWf, idxPrefix(f.Project, f.Workflow)
	case f.User != "":
		return kindUser, bucketIdxUser, idxPrefix(f.Project, f.User)
	default:
		// The runs bucket is ordered by project and time: its own index.
		return kindProject, bucketRuns, projectPrefix(f.Project)
	}
}

func encodeCursor(kind byte, key []byte) string {
	b := make([]byte, 0, len(key)+1)
	b = append(b, kind)
	b = append(b, key...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the index key a cursor points at. It must belong to
// the index (kind) and the project/field (prefix) of the current filter.
func decodeCursor(s string, kind byte, prefix []byte) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	if len(b) == 0 || b[0] != kind {
		return nil, fmt.Errorf("%w: cursor of another listing", ErrBadCursor)
	}
	key := b[1:]
	// prefix, 8 bytes time, 0x00, a run id of at least one byte.
	if !bytes.HasPrefix(key, prefix) || len(key) < len(prefix)+10 || key[len(prefix)+8] != 0 {
		return nil, fmt.Errorf("%w: cursor of another listing", ErrBadCursor)
	}
	if bytes.IndexByte(key[len(prefix)+9:], 0) >= 0 {
		return nil, fmt.Errorf("%w: malformed key", ErrBadCursor)
	}
	return key, nil
}

// ListRuns returns runs of f.Project newest first (by first-seen CreatedAt,
// then run id). Listing walks one index backwards from the upper bound and
// never touches other projects' rows; the status filter (and the user filter
// combined with a workflow) is checked per row within that index.
func (s *Store) ListRuns(f Filter) (Page, error) {
	if f.Project == "" {
		return Page{}, fmt.Errorf("%w: project is required", ErrBadFilter)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	kind, bucket, prefix := f.index()

	// upper is the exclusive upper bound of the walk.
	upper := bytes.Clone(prefix)
	upper[len(upper)-1] = 0x01 // prefix ends in 0x00; escaped parts never hold one
	if !f.Until.IsZero() {
		u := binary.BigEndian.AppendUint64(bytes.Clone(prefix), tsKey(f.Until))
		if bytes.Compare(u, upper) < 0 {
			upper = u
		}
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor, kind, prefix)
		if err != nil {
			return Page{}, err
		}
		if bytes.Compare(after, upper) < 0 {
			upper = after
		}
	}
	var since uint64
	if !f.Since.IsZero() {
		since = tsKey(f.Since)
	}
	projectKey := projectPrefix(f.Project)

	page := Page{Runs: []*runs.Run{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		rows := tx.Bucket(bucketRuns)
		c := tx.Bucket(bucket).Cursor()
		// Position on the last key below upper.
		k, v := c.Seek(upper)
		if k == nil {
			k, v = c.Last()
		}
		for k != nil && bytes.Compare(k, upper) >= 0 {
			k, v = c.Prev()
		}
		var last []byte
		rowKey := bytes.Clone(projectKey)
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			rest := k[len(prefix):]
			if len(rest) < 10 {
				continue
			}
			if binary.BigEndian.Uint64(rest) < since {
				break
			}
			if kind != kindProject {
				rowKey = append(rowKey[:len(projectKey)], rest...)
				if v = rows.Get(rowKey); v == nil {
					continue
				}
			}
			h, data, err := decodeRow(v)
			if err != nil {
				s.log.Warn("history: corrupt run row", "key", string(k))
				continue
			}
			if f.Workflow != "" && h.workflow != f.Workflow ||
				f.User != "" && h.user != f.User ||
				f.Status != "" && h.status != string(f.Status) {
				continue
			}
			if len(page.Runs) == limit {
				// There is at least one more row: hand out a cursor.
				page.NextCursor = encodeCursor(kind, last)
				break
			}
			run := new(runs.Run)
			if err := json.Unmarshal(data, run); err != nil {
				s.log.Warn("history: corrupt run row", "key", string(k), "err", err)
				continue
			}
			page.Runs = append(page.Runs, run)
			last = append(last[:0], k...)
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("history: list runs: %w", err)
	}
	return page, nil
}
