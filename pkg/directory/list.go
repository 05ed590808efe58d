package directory

import (
	"context"
	"strconv"
)

// UserPage is one page of a project's connected users.
type UserPage struct {
	Users []*User `json:"users"`
	// Next continues the listing; empty on the last page.
	Next string `json:"nextCursor,omitempty"`
}

// Users lists project p's connected users, a page of at most limit (100
// by default, at most MaxPage) after cursor (empty: from the start). It
// walks the users' primary records in the order they were last written
// (stream sequence), so a page costs its size, not the size of the
// project; the cursor is the sequence to go on from. A user written while
// the caller pages may be listed again on a later page (its record moved
// to a newer sequence); one that exists all along is never missed.
func (d *Directory) Users(ctx context.Context, p, cursor string, limit int) (UserPage, error) {
	if err := checkID("project", p); err != nil {
		return UserPage{}, err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxPage)
	var from uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil || n == 0 {
			return UserPage{}, invalid("cursor", "invalid_field", "%q is not a cursor returned by a users listing", cursor)
		}
		from = n
	}
	page := UserPage{Users: []*User{}}
	// Deleted users leave delete markers in the walk: read on until the
	// page is full or the records end.
	for len(page.Users) < limit {
		hits, more, err := d.dir.scan(ctx, prefixUser+"."+tok(p)+".*", from, limit-len(page.Users))
		if err != nil {
			return UserPage{}, err
		}
		for _, h := range hits {
			from = h.seq + 1
			if h.value == nil {
				continue
			}
			rec, err := decodeRecord(h.value)
			if err != nil {
				continue // unreadable record: the readers of one user say so
			}
			u := rec.User
			page.Users = append(page.Users, &u)
		}
		if !more || len(hits) == 0 {
			return page, nil
		}
	}
	page.Next = strconv.FormatUint(from, 10)
	return page, nil
}
