package directory

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Index entries. Every entry is a function of one user record: index(rec)
// is the set of keys (with values) the record implies. A writer moving a
// record from A to B
//
//  1. writes the entries of B that A lacks or holds with another value,
//     each stamped with base = the revision of A it read,
//  2. stores B with compare-and-set against that revision,
//  3. removes the entries of A (and of its own lost attempts) that B lacks
//     — each only if its base is older than B's revision, and by its exact
//     stream sequence, so an entry rewritten meanwhile survives.
//
// Hence, for the newest record of every user, each entry it implies exists
// (a crash can leave extra entries, never remove needed ones), and readers
// treat an entry only as a hint: each hit is checked against the record and
// dropped when the record disagrees. A stale entry found that way is
// removed with the same rule. Zone markers are written before the first
// entry of a zone and never removed, so Zones lists every zone in use.

// entryValue is the JSON value of an index key.
type entryValue struct {
	P string          `json:"p,omitempty"` // token entries: project
	U string          `json:"u,omitempty"`
	C string          `json:"c,omitempty"`
	W map[string]bool `json:"w,omitempty"` // enrollment: per-workflow overrides
	S string          `json:"s,omitempty"` // enrollment: status
	Z string          `json:"z,omitempty"` // zone markers: the zone
	B uint64          `json:"b,omitempty"` // base: the record revision the writer read
}

// indexed is one entry of index(rec): its value and its encoding without base.
type indexed struct {
	v   entryValue
	enc []byte
}

// index returns the entries rec implies, and its zone markers.
func (d *Directory) index(p string, rec *record) (map[string]indexed, map[string]string) {
	if rec == nil {
		return nil, nil
	}
	out := map[string]indexed{}
	markers := map[string]string{}
	put := func(key string, v entryValue) {
		enc, _ := json.Marshal(v)
		out[key] = indexed{v: v, enc: enc}
	}
	u := rec.User.ID
	zone := d.zones.of(&rec.User)
	put(enrollmentKey(p, "", zone, u, ""), entryValue{U: u, W: rec.User.Workflows, S: CredentialValid})
	markers[zoneKey(p, "", zone)] = zone
	for id, sc := range rec.Creds {
		c := &sc.Credential
		put(enrollmentKey(p, c.Integration, zone, u, id), entryValue{U: u, C: id, W: c.Workflows, S: c.Status})
		markers[zoneKey(p, c.Integration, zone)] = zone
		if c.ProviderAccountID != "" {
			put(accountKey(p, c.Integration, c.ProviderAccountID, u, id), entryValue{U: u, C: id})
		}
		if c.WebhookToken != "" {
			put(tokenKey(c.WebhookToken), entryValue{P: p, U: u, C: id})
		}
	}
	return out, markers
}

func encodeEntry(v entryValue, base uint64) []byte {
	v.B = base
	b, _ := json.Marshal(v)
	return b
}

// removeStale deletes index key k (found at seq with value v) if it is not
// needed by the record at revision rev: only when the entry's base is older
// than rev, i.e. it was not written for rev or any later record.
func (d *Directory) removeStale(ctx context.Context, key string, seq uint64, v []byte, rev uint64) {
	var ev entryValue
	if json.Unmarshal(v, &ev) == nil && ev.B >= rev {
		return
	}
	if err := d.dir.deleteSeq(ctx, key, seq); err != nil {
		d.logger.Debug("directory: stale index entry not removed", "key", key, "err", err)
	}
}

// cleanup removes keys that the record committed at rev (whose index is
// keep) does not imply.
func (d *Directory) cleanup(ctx context.Context, keys map[string]bool, keep map[string]indexed, rev uint64) {
	for k := range keys {
		if _, ok := keep[k]; ok {
			continue
		}
		v, seq, err := d.dir.get(ctx, k)
		if err != nil {
			d.logger.Debug("directory: index cleanup", "key", k, "err", err)
			continue
		}
		if v != nil {
			d.removeStale(ctx, k, seq, v, rev)
		}
	}
}

// Lookups.

// CredentialsByAccount returns the credentials of project p for
// integration whose provider account id is accountID (several users may
// share one account), sorted by user then credential id. Every result was
// verified against its user's record.
func (d *Directory) CredentialsByAccount(ctx context.Context, p, integration, accountID string) ([]*Credential, error) {
	if checkID("providerAccountId", accountID) != nil || !validIntegration(integration) {
		return nil, nil
	}
	hits, err := d.allMatching(ctx, accountPrefix(p, integration, accountID)+".>")
	if err != nil {
		return nil, err
	}
	var out []*Credential
	for _, h := range hits {
		var ev entryValue
		if h.value == nil || json.Unmarshal(h.value, &ev) != nil {
			continue
		}
		dc, err := d.load(ctx, p, ev.U, true)
		if err != nil {
			return nil, err
		}
		cr, _ := dc.credential(ev.C)
		if cr == nil || cr.Integration != integration || cr.ProviderAccountID != accountID ||
			accountKey(p, integration, accountID, ev.U, ev.C) != h.key {
			d.removeStale(ctx, h.key, h.seq, h.value, dc.rev)
			continue
		}
		out = append(out, cr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// allMatching returns every live key matching filter: one multi_last read
// through the server's subject index, or, past maxMultiLast matches, a
// walk of the stream.
func (d *Directory) allMatching(ctx context.Context, filter string) ([]scanned, error) {
	hits, _, err := d.dir.multiLast(ctx, []string{filter}, 0, maxMultiLast)
	if !errors.Is(err, errTooMany) {
		return hits, err
	}
	var out []scanned
	var from uint64
	for {
		hits, more, err := d.dir.scan(ctx, filter, from, maxMultiLast)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			from = h.seq + 1
			if h.value != nil {
				out = append(out, h)
			}
		}
		if !more || len(hits) == 0 {
			return out, nil
		}
	}
}

// CredentialByToken returns the credential whose webhook token is token,
// verified against its user's record, or ErrNotFound.
func (d *Directory) CredentialByToken(ctx context.Context, token string) (*Credential, error) {
	if !validToken(token) {
		return nil, ErrNotFound
	}
	v, seq, err := d.dir.get(ctx, tokenKey(token))
	if err != nil {
		return nil, err
	}
	var ev entryValue
	if v == nil || json.Unmarshal(v, &ev) != nil {
		return nil, ErrNotFound
	}
	dc, err := d.load(ctx, ev.P, ev.U, true)
	if err != nil {
		return nil, notFoundIfInvalid(err)
	}
	cr, _ := dc.credential(ev.C)
	if cr == nil || subtle.ConstantTimeCompare([]byte(cr.WebhookToken), []byte(token)) != 1 {
		d.removeStale(ctx, tokenKey(token), seq, v, dc.rev)
		return nil, ErrNotFound
	}
	return cr, nil
}

// MaxPage is the most entries one Enrollment page returns.
const MaxPage = 1000

// cursor is a position in one shard's enrollment: sub-shards [sub, sub+width)
// are being read, from stream sequence seq on.
type cursor struct {
	sub, width int
	seq        uint64
}

func (c cursor) String() string {
	return strconv.Itoa(c.sub) + "-" + strconv.Itoa(c.width) + "-" + strconv.FormatUint(c.seq, 10)
}

func parseCursor(s string) (cursor, bool) {
	if s == "" {
		return cursor{width: 4}, true
	}
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return cursor{}, false
	}
	sub, err1 := strconv.Atoi(parts[0])
	width, err2 := strconv.Atoi(parts[1])
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || sub < 0 || sub >= subShards || width < 1 || width > subShards {
		return cursor{}, false
	}
	return cursor{sub: sub, width: width, seq: seq}, true
}

// Enrollment returns one page of who could run a workflow of integration
// (or "" for workflows without one) in zone ("" for users without a valid
// time zone) and shard (0 <= shard < Shards): entries after the cursor
// after ("" for the first page), at most limit (default 100, at most
// MaxPage). Entries carry overrides and status but not the verdict, which
// depends on the workflow's enabledByDefault: apply Entry.Runs. Each entry
// was verified against its user's record (read around the cache, so a
// fan-out does not flush it). Order is by hash of the user id, not by id;
// an entry added or rewritten during a walk may appear once, twice (run ids
// are deterministic, so a repeated run dedupes) or, if added, not at all.
func (d *Directory) Enrollment(ctx context.Context, p, integration, zone string, shard int, after string, limit int) (Page, error) {
	switch {
	case shard < 0 || shard >= Shards:
		return Page{}, invalid("shard", "invalid_field", "shard must be in [0, %d)", Shards)
	case integration != "" && !validIntegration(integration):
		return Page{}, invalid("integration", "invalid_field", "%q is not a valid integration id", integration)
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxPage)
	cur, ok := parseCursor(after)
	if !ok {
		return Page{}, invalid("after", "invalid_field", "%q is not a cursor returned by Enrollment", after)
	}
	var hits []scanned
	next := ""
	// Read whole groups of sub-shards in one multi_last each, widening the
	// group while they come back small and narrowing it when a group
	// matches too many keys for one read.
	for len(hits) < limit && cur.sub < subShards {
		width := min(cur.width, subShards-cur.sub)
		filters := make([]string, width)
		for i := range filters {
			filters[i] = enrollmentSub(p, integration, zone, shard, cur.sub+i) + ".>"
		}
		want := limit - len(hits)
		got, pending, err := d.dir.multiLast(ctx, filters, cur.seq, want)
		if errors.Is(err, errTooMany) {
			if width > 1 {
				cur.width = width / 2
				continue
			}
			var more bool
			got, more, err = d.dir.scan(ctx, filters[0], cur.seq, want)
			if more {
				pending = 1
			}
		}
		if err != nil {
			return Page{}, err
		}
		hits = append(hits, got...)
		if pending > 0 && len(got) > 0 {
			cur.seq = got[len(got)-1].seq + 1
			next = cur.String()
			break
		}
		cur.sub, cur.seq = cur.sub+width, 0
		if len(got) < want/4 {
			cur.width = min(width*2, 64)
		}
		if cur.sub < subShards {
			next = cur.String()
		} else {
			next = ""
		}
	}
	return d.verifiedPage(ctx, p, integration, zone, hits, next)
}

// EnrollmentAll returns every entry of (p, integration, zone) across all
// shards, verified as Enrollment's are, when there are at most limit (at
// most MaxPage); ok is false when there are more, and the caller pages by
// shard. One read instead of a walk of every shard's sub-shards: the common
// case of a schedule tick for a small zone.
//
// A zone-wide read costs the server in proportion to every entry the
// filter matches, not to limit: at a million entries it took tens of
// seconds before it could say "more". So one sub-shard (1/16,384 of the
// zone) is read first; holding largeSample entries or more, it says the
// zone is far larger than any limit (a zone of MaxPage entries holds about
// 0.06 per sub-shard), and ok is false without the zone-wide read. Either
// answer reads the same entries in the end, so a rare small zone sent to
// the shard walk costs time, never entries.
func (d *Directory) EnrollmentAll(ctx context.Context, p, integration, zone string, limit int) (page Page, ok bool, err error) {
	if integration != "" && !validIntegration(integration) {
		return Page{}, false, invalid("integration", "invalid_field", "%q is not a valid integration id", integration)
	}
	limit = min(max(limit, 1), MaxPage)
	sample, _, err := d.dir.multiLast(ctx, []string{enrollmentSub(p, integration, zone, 0, 0) + ".>"}, 0, largeSample)
	switch {
	case errors.Is(err, errTooMany):
		return Page{}, false, nil
	case err != nil:
		return Page{}, false, err
	case len(sample) >= largeSample:
		return Page{}, false, nil
	}
	filter := prefixEnrollment + "." + tok(p) + "." + tok(integration) + "." + tok(zone) + ".>"
	hits, pending, err := d.dir.multiLast(ctx, []string{filter}, 0, limit)
	switch {
	case errors.Is(err, errTooMany):
		return Page{}, false, nil
	case err != nil:
		return Page{}, false, err
	case pending > 0:
		return Page{}, false, nil
	}
	page, err = d.verifiedPage(ctx, p, integration, zone, hits, "")
	return page, err == nil, err
}

// largeSample is how many entries of one sub-shard mark a zone as far
// larger than MaxPage (see EnrollmentAll): at MaxPage entries a sub-shard
// holds 4 or more with a probability of about 6e-7.
const largeSample = 4

// verifiedPage turns index hits into a page of entries, each verified
// against its user's record (read around the cache); stale hits are removed.
func (d *Directory) verifiedPage(ctx context.Context, p, integration, zone string, hits []scanned, next string) (Page, error) {
	page := Page{Entries: make([]Entry, 0, len(hits)), Next: next}
	if len(hits) == 0 {
		return page, nil
	}
	users := make([]string, 0, len(hits))
	vals := make([]entryValue, len(hits))
	for i, h := range hits {
		if h.value != nil && json.Unmarshal(h.value, &vals[i]) == nil {
			users = append(users, vals[i].U)
		}
	}
	docs, err := d.loadMany(ctx, p, users)
	if err != nil {
		return Page{}, err
	}
	for i, h := range hits {
		ev := vals[i]
		dc := docs[ev.U]
		if h.value == nil || dc == nil {
			continue
		}
		e, ok := d.verifyEntry(p, integration, zone, dc, ev)
		if !ok || enrollmentKey(p, integration, zone, ev.U, ev.C) != h.key {
			d.removeStale(ctx, h.key, h.seq, h.value, dc.rev)
			continue
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// verifyEntry checks an enrollment hit against the user's record and
// returns the entry as the record has it.
func (d *Directory) verifyEntry(p, integration, zone string, dc *doc, ev entryValue) (Entry, bool) {
	if dc.user == nil || dc.user.ID != ev.U || d.zones.of(dc.user) != zone {
		return Entry{}, false
	}
	if ev.C == "" {
		if integration != "" {
			return Entry{}, false
		}
		return Entry{User: ev.U, Workflows: dc.user.Workflows, Status: CredentialValid}, true
	}
	cr, _ := dc.credential(ev.C)
	if cr == nil || cr.Integration != integration || integration == "" {
		return Entry{}, false
	}
	return Entry{User: ev.U, Credential: ev.C, Workflows: cr.Workflows, Status: cr.Status}, true
}

// loadMany reads the records of users (peeking at the cache, never filling
// it) with batched reads.
func (d *Directory) loadMany(ctx context.Context, p string, users []string) (map[string]*doc, error) {
	out := make(map[string]*doc, len(users))
	var missing []string
	keyUser := map[string]string{}
	for _, u := range users {
		if _, seen := out[u]; seen || checkID("user", u) != nil {
			continue
		}
		if _, seen := keyUser[userKey(p, u)]; seen {
			continue
		}
		if dc, ok := d.cache.get(userKey(p, u), false); ok {
			out[u] = dc
			continue
		}
		keyUser[userKey(p, u)] = u
		missing = append(missing, userKey(p, u))
	}
	for len(missing) > 0 {
		n := min(len(missing), maxMultiLast)
		got, err := d.dir.lastOf(ctx, missing[:n])
		if err != nil {
			return nil, err
		}
		for _, g := range got {
			u, ok := keyUser[g.key]
			if !ok {
				continue
			}
			dc, err := decodeDoc(g.value, g.seq)
			if err != nil {
				d.logger.Warn("directory: unreadable user record", "key", g.key, "err", err)
				continue
			}
			out[u] = dc
		}
		for _, k := range missing[:n] {
			if u := keyUser[k]; out[u] == nil {
				out[u] = newDoc(nil, 0)
			}
		}
		missing = missing[n:]
	}
	return out, nil
}

// Zones lists the time zones in use by the enrollment of integration ("" for
// workflows without one) in project p, sorted; "" stands for users without
// a valid zone. A zone whose entries are all gone is left out.
func (d *Directory) Zones(ctx context.Context, p, integration string) ([]string, error) {
	if integration != "" && !validIntegration(integration) {
		return nil, invalid("integration", "invalid_field", "%q is not a valid integration id", integration)
	}
	markers, err := d.allMatching(ctx, zonePrefix(p, integration)+".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range markers {
		var ev entryValue
		if m.value == nil || json.Unmarshal(m.value, &ev) != nil {
			continue
		}
		// One entry is enough; more than one read can answer is too. One
		// sub-shard is read first, as EnrollmentAll's sample: a large zone
		// has entries there, and the zone-wide read costs the server every
		// entry the filter matches (seconds at a million, each refresh).
		sample, _, err := d.dir.multiLast(ctx, []string{enrollmentSub(p, integration, ev.Z, 0, 0) + ".>"}, 0, 1)
		if err != nil && !errors.Is(err, errTooMany) {
			return nil, err
		}
		if len(sample) > 0 || errors.Is(err, errTooMany) {
			out = append(out, ev.Z)
			continue
		}
		first, _, err := d.dir.multiLast(ctx, []string{prefixEnrollment + "." + tok(p) + "." + tok(integration) + "." + tok(ev.Z) + ".>"}, 0, 1)
		if err != nil && !errors.Is(err, errTooMany) {
			return nil, err
		}
		if len(first) > 0 || errors.Is(err, errTooMany) {
			out = append(out, ev.Z)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ensureMarkers writes the zone markers this process has not written yet.
func (d *Directory) ensureMarkers(ctx context.Context, markers map[string]string) error {
	todo := map[string][]byte{}
	for k, z := range markers {
		if _, ok := d.markers.Load(k); !ok {
			todo[k] = encodeEntry(entryValue{Z: z}, 0)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	msgs := make(map[string][]byte, len(todo))
	for k, v := range todo {
		msgs[d.dir.pre+k] = v
	}
	if err := publishAll(ctx, d.dir.js, msgs); err != nil {
		return fmt.Errorf("directory: zone markers: %w", err)
	}
	for k := range todo {
		d.markers.Store(k, true)
	}
	return nil
}

func sameEntry(a, b indexed) bool { return bytes.Equal(a.enc, b.enc) }
