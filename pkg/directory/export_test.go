package directory

import (
	"context"
	"encoding/json"
	"sort"
)

// IndexDiff compares the index keys stored for project p with the ones its
// user records imply: missing are needed but absent, extra present but
// implied by no record.
func IndexDiff(ctx context.Context, d *Directory, p string) (missing, extra []string, err error) {
	want := map[string]bool{}
	scanAll := func(filter string, f func(scanned)) error {
		var from uint64
		for {
			hits, more, err := d.dir.scan(ctx, filter, from, 1000)
			if err != nil {
				return err
			}
			for _, h := range hits {
				from = h.seq + 1
				if h.value != nil {
					f(h)
				}
			}
			if !more || len(hits) == 0 {
				return nil
			}
		}
	}
	var decodeErr error
	if err := scanAll(prefixUser+"."+tok(p)+".*", func(h scanned) {
		rec, err := decodeRecord(h.value)
		if err != nil {
			decodeErr = err
			return
		}
		idx, _ := d.index(p, rec)
		for k := range idx {
			want[k] = true
		}
	}); err != nil || decodeErr != nil {
		return nil, nil, errorsJoin(err, decodeErr)
	}
	have := map[string]bool{}
	for _, pre := range []string{prefixAccount, prefixEnrollment} {
		if err := scanAll(pre+"."+tok(p)+".>", func(h scanned) { have[h.key] = true }); err != nil {
			return nil, nil, err
		}
	}
	if err := scanAll(prefixToken+".*", func(h scanned) {
		var ev entryValue
		if json.Unmarshal(h.value, &ev) == nil && ev.P == p {
			have[h.key] = true
		}
	}); err != nil {
		return nil, nil, err
	}
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	for k := range have {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra, nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Exported for the fuzz test and the index tests.
var (
	ParseImportLine = func(line []byte) error {
		_, ierr := parseImportLine(line)
		if ierr != nil {
			return ierr
		}
		return nil
	}
	UserKey       = userKey
	AccountKey    = accountKey
	EnrollmentKey = enrollmentKey
	TokenKey      = tokenKey
)

func (e *ImportError) Error() string { return e.Code + ": " + e.Message }
