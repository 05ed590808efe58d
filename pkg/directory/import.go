package directory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

// Bulk import: application/x-ndjson, one user per line:
//
//	{"id":"u1","metadata":{"timezone":"Europe/Berlin"},
//	 "credentials":[{"id":"c1","integration":"crm","providerAccountId":"a-1",
//	                 "secret":{"accessToken":"…"},"settings":{}}]}
//
// A line upserts its user: metadata is replaced when present; each listed
// credential is created or updated (fields present replace the stored
// ones; the secret too); credentials not listed are kept. Lines are read
// one at a time with a per-line cap and written with bounded concurrency,
// so neither the body nor the user set is ever held in memory.

// DefaultMaxLineBytes caps one import line.
const DefaultMaxLineBytes = 1 << 20

// DefaultMaxImportErrors caps the errors an ImportResult keeps.
const DefaultMaxImportErrors = 1000

// ImportOptions tune Import.
type ImportOptions struct {
	// IntegrationExists reports whether the project has the integration;
	// a credential naming one it lacks is a line error. Nil accepts any
	// valid integration id.
	IntegrationExists func(id string) bool
	// Concurrency bounds users written at once (default: the Directory's
	// WriteConcurrency).
	Concurrency int
	// MaxLineBytes caps a line (default DefaultMaxLineBytes).
	MaxLineBytes int
	// MaxErrors caps the errors kept (default DefaultMaxImportErrors); the
	// rest are counted and Truncated is set.
	MaxErrors int
	// Progress, when set, is called after each finished line, from one
	// goroutine at a time; keep it cheap.
	Progress func(ImportProgress)
}

// ImportProgress is Import's running count.
type ImportProgress struct {
	Lines       int
	Users       int
	Credentials int
	Errors      int
	Bytes       int64 // bytes read from the input so far
}

// ImportError is one line that was not imported.
type ImportError struct {
	Line    int    `json:"line"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ImportResult is what Import did.
type ImportResult struct {
	Users       int           `json:"users"`
	Credentials int           `json:"credentials"`
	Errors      []ImportError `json:"errors"`
	// ErrorCount counts every failed line, kept or not.
	ErrorCount int  `json:"errorCount"`
	Truncated  bool `json:"truncated"`
	Lines      int  `json:"lines"`
}

// importLine is one parsed line.
type importLine struct {
	ID          string
	Metadata    map[string]any
	HasMetadata bool
	Credentials []importCredential
}

type importCredential struct {
	ID                string
	Integration       string
	ProviderAccountID *string
	Secret            map[string]any
	HasSecret         bool
	Settings          map[string]any
	HasSettings       bool
}

// parseImportLine decodes and validates one line. Every failure is an
// *ImportError (without its line number).
func parseImportLine(line []byte) (*importLine, *ImportError) {
	bad := func(code, field, format string, args ...any) *ImportError {
		return &ImportError{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	if !utf8.Valid(line) {
		return nil, bad("invalid_json", "", "the line is not valid UTF-8")
	}
	var raw struct {
		ID          *string         `json:"id"`
		Metadata    json.RawMessage `json:"metadata"`
		Credentials []struct {
			ID                *string         `json:"id"`
			Integration       *string         `json:"integration"`
			ProviderAccountID json.RawMessage `json:"providerAccountId"`
			Secret            json.RawMessage `json:"secret"`
			Settings          json.RawMessage `json:"settings"`
		} `json:"credentials"`
	}
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, bad("invalid_json", "", "the line must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("invalid_json", "", "the line is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, bad("invalid_json", "", "the line holds more than one JSON value")
	}
	if raw.ID == nil {
		return nil, bad("missing_field", "id", "id is required")
	}
	if err := checkID("user", *raw.ID); err != nil {
		return nil, fromValidation(err, "id")
	}
	out := &importLine{ID: *raw.ID}
	var ierr *ImportError
	if out.Metadata, out.HasMetadata, ierr = importObject("metadata", raw.Metadata); ierr != nil {
		return nil, ierr
	}
	if err := checkSize("metadata", out.Metadata, MaxMetadataBytes); err != nil {
		return nil, fromValidation(err, "metadata")
	}
	if len(raw.Credentials) > MaxCredentialsPerUser {
		return nil, bad("too_large", "credentials", "a user has at most %d credentials", MaxCredentialsPerUser)
	}
	seen := map[string]bool{}
	for i, rc := range raw.Credentials {
		f := func(name string) string { return fmt.Sprintf("credentials[%d].%s", i, name) }
		if rc.ID == nil {
			return nil, bad("missing_field", f("id"), "credential id is required")
		}
		if err := checkID("credential", *rc.ID); err != nil {
			return nil, fromValidation(err, f("id"))
		}
		if seen[*rc.ID] {
			return nil, bad("invalid_field", f("id"), "credential %q is listed twice", *rc.ID)
		}
		seen[*rc.ID] = true
		ic := importCredential{ID: *rc.ID}
		switch {
		case rc.Integration == nil || *rc.Integration == "":
			return nil, bad("missing_field", f("integration"), "integration is required")
		case !validIntegration(*rc.Integration):
			return nil, bad("invalid_field", f("integration"), "integration %q is not a valid id (lowercase letters, digits, - and _, at most 63)", *rc.Integration)
		}
		ic.Integration = *rc.Integration
		if len(rc.ProviderAccountID) > 0 && string(rc.ProviderAccountID) != "null" {
			var s string
			if json.Unmarshal(rc.ProviderAccountID, &s) != nil {
				return nil, bad("invalid_field", f("providerAccountId"), "providerAccountId must be a string")
			}
			if len(s) > MaxIDBytes || !utf8.ValidString(s) {
				return nil, bad("invalid_id", f("providerAccountId"), "providerAccountId must be UTF-8 of at most %d bytes", MaxIDBytes)
			}
			ic.ProviderAccountID = &s
		}
		if ic.Secret, ic.HasSecret, ierr = importObject(f("secret"), rc.Secret); ierr != nil {
			return nil, ierr
		}
		if err := checkSize("secret", ic.Secret, MaxSecretBytes); err != nil {
			return nil, fromValidation(err, f("secret"))
		}
		if ic.Settings, ic.HasSettings, ierr = importObject(f("settings"), rc.Settings); ierr != nil {
			return nil, ierr
		}
		if err := checkSize("settings", ic.Settings, MaxSettingsBytes); err != nil {
			return nil, fromValidation(err, f("settings"))
		}
		out.Credentials = append(out.Credentials, ic)
	}
	return out, nil
}

func importObject(field string, raw json.RawMessage) (map[string]any, bool, *ImportError) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false, &ImportError{Code: "invalid_field", Field: field, Message: field + " must be a JSON object"}
	}
	return m, true, nil
}

func fromValidation(err error, field string) *ImportError {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return &ImportError{Code: ve.Code, Field: field, Message: ve.Message}
	}
	return &ImportError{Code: "invalid_field", Field: field, Message: err.Error()}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r  io.Reader
	n  int64
	mu sync.Mutex
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Import reads r as application/x-ndjson, one user per line, and writes each
// line's user and credentials. A bad line (bad JSON, bad id, unknown
// integration, over MaxLineBytes) is reported with its line number and the
// rest are imported. The error return is for the input itself failing to
// read, or for ctx ending; the result then counts what was written so far.
func (d *Directory) Import(ctx context.Context, project string, r io.Reader, opts ImportOptions) (ImportResult, error) {
	if err := checkID("project", project); err != nil {
		return ImportResult{}, err
	}
	maxLine := opts.MaxLineBytes
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	maxErrs := opts.MaxErrors
	if maxErrs <= 0 {
		maxErrs = DefaultMaxImportErrors
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = d.conc
	}
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, maxLine+1)

	var (
		mu   sync.Mutex
		res  = ImportResult{Errors: []ImportError{}}
		prog ImportProgress
	)
	report := func(users, creds int, ierr *ImportError) {
		mu.Lock()
		defer mu.Unlock()
		prog.Lines++
		prog.Users += users
		prog.Credentials += creds
		res.Users += users
		res.Credentials += creds
		if ierr != nil {
			prog.Errors++
			res.ErrorCount++
			if len(res.Errors) < maxErrs {
				res.Errors = append(res.Errors, *ierr)
			} else {
				res.Truncated = true
			}
		}
		if opts.Progress != nil {
			prog.Bytes = cr.count()
			opts.Progress(prog)
		}
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	lineNo := 0
	var readErr error
	for {
		if ctx.Err() != nil {
			readErr = ctx.Err()
			break
		}
		line, tooLong, err := readLine(br)
		if len(line) > 0 || tooLong {
			lineNo++
			n := lineNo
			switch {
			case tooLong:
				report(0, 0, &ImportError{Line: n, Code: "line_too_long", Message: fmt.Sprintf("the line is longer than %d bytes", maxLine)})
			case len(bytes.TrimSpace(line)) == 0:
				// blank lines separate nothing and count for line numbers only
			default:
				l, ierr := parseImportLine(line)
				if ierr != nil {
					ierr.Line = n
					report(0, 0, ierr)
					break
				}
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					creds, ierr := d.importUser(ctx, project, l, opts.IntegrationExists)
					if ierr != nil {
						ierr.Line = n
						report(0, 0, ierr)
						return
					}
					report(1, creds, nil)
				}()
			}
		} else if err == nil {
			lineNo++ // an empty line
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("directory: import: reading line %d: %w", lineNo+1, err)
			break
		}
	}
	wg.Wait()
	mu.Lock()
	// Lines finish in any order; report them in input order.
	sort.Slice(res.Errors, func(i, j int) bool { return res.Errors[i].Line < res.Errors[j].Line })
	res.Lines = lineNo
	out := res
	mu.Unlock()
	return out, readErr
}

// readLine returns the next line without its end of line. A line longer
// than the reader's buffer is consumed to its end and reported as tooLong
// (its bytes are dropped). err is io.EOF after the last line.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err == io.EOF {
			return nil, true, io.EOF
		}
		return nil, true, err
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
	}
	// ReadSlice's buffer is reused by the next read: keep a copy.
	return append([]byte(nil), b...), false, err
}

// importUser writes one parsed line; it returns the credentials written.
func (d *Directory) importUser(ctx context.Context, p string, l *importLine, integrationExists func(string) bool) (int, *ImportError) {
	if integrationExists != nil {
		for i, c := range l.Credentials {
			if !integrationExists(c.Integration) {
				return 0, &ImportError{Code: "unknown_integration", Field: fmt.Sprintf("credentials[%d].integration", i),
					Message: fmt.Sprintf("project %q has no integration %q", p, c.Integration)}
			}
		}
	}
	_, _, err := d.mutate(ctx, p, l.ID, func(rec *record, secrets map[string]map[string]any) (*record, error) {
		now := time.Now().UTC()
		if rec == nil {
			rec = &record{User: User{Project: p, ID: l.ID, CreatedAt: now}, Creds: map[string]*storedCred{}}
		}
		if l.HasMetadata {
			rec.User.Metadata = l.Metadata
		}
		rec.User.UpdatedAt = now
		for _, ic := range l.Credentials {
			var out Credential
			_, err := applyCredential(rec, p, l.ID, ic.ID, secrets, func(cr *Credential, created bool) error {
				if !created && cr.Integration != ic.Integration {
					return invalid("credentials", "integration_mismatch",
						"credential %q belongs to integration %q, not %q", ic.ID, cr.Integration, ic.Integration)
				}
				cr.Integration = ic.Integration
				if ic.ProviderAccountID != nil {
					cr.ProviderAccountID = *ic.ProviderAccountID
				}
				if ic.HasSettings {
					cr.Settings = ic.Settings
				}
				if ic.HasSecret {
					cr.Secret, cr.HasSecret = ic.Secret, ic.Secret != nil
				}
				return nil
			}, &out)
			if err != nil {
				return nil, err
			}
		}
		return rec, nil
	})
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return 0, &ImportError{Code: ve.Code, Field: ve.Field, Message: ve.Message}
		}
		return 0, &ImportError{Code: "unavailable", Message: "the user could not be stored: " + err.Error()}
	}
	return len(l.Credentials), nil
}
