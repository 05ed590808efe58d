package fakeprovider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lists is the list APIs of five providers without per-user webhooks, for
// the polling triggers (pkg/manifest polling built-ins), each in that
// provider's real request and answer shape:
//
//	GET  /services/data/v60.0/query?q=SELECT … FROM Contact WHERE LastModifiedDate >= 2026-01-02T03:04:05Z ORDER BY LastModifiedDate ASC LIMIT 200
//	     Salesforce SOQL → {"totalSize","done","records":[{"attributes":{"type"},"Id","LastModifiedDate",…}]}
//	GET  /drive/v3/changes/startPageToken → {"kind":"drive#startPageToken","startPageToken"}
//	GET  /drive/v3/changes?pageToken=N&pageSize=100 → {"kind":"drive#changeList","changes":[…],
//	     "nextPageToken" (more) | "newStartPageToken" (last page)}
//	GET  /v1/recents?since_timestamp=YYYY-MM-DD HH:MM:SS&items=deal → Pipedrive
//	     {"success":true,"data":[{"item","id","data"}],"additional_data":{"last_timestamp_on_page","pagination"}}
//	POST /v1/databases/{id}/query (Notion-Version header; filter last_edited_time on_or_after)
//	     → {"object":"list","results":[…],"next_cursor","has_more"}
//	GET  /rest/api/3/search/jql?jql=updated >= "yyyy/MM/dd HH:mm" ORDER BY updated ASC
//	     (Basic auth) → Jira {"issues":[{"id","key","fields":{"updated",…}}],"isLast":true}
//
// Any non-empty credential is accepted (Bearer, x-api-token, Basic) and
// counted. Notion and Jira compare at the minute, as the real APIs do.
//
// Controls (not part of any provider's API):
//
//	POST /fake/records     {"provider":"salesforce|drive|pipedrive|notion|jira",
//	                        "object":"Contact|deal|<database id>|…","fields":{…}} → the stored record
//	POST /fake/poll-fault  {"status":429,"retryAfter":"2","body":"malformed|huge","count":1,"token":""}:
//	                        the next count list requests (of token, or any) answer that
//	GET  /fake/poll-stats  {"requests":{"<credential>":n},"total":n}
type Lists struct {
	now func() time.Time

	mu      sync.Mutex
	seq     int
	records map[string][]*listRecord // by provider
	faults  []*ListFault
	polls   map[string]int
	total   int
}

// ListsOptions configure Lists.
type ListsOptions struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ListFault makes list requests fail: Status (with Retry-After) or a
// malformed or huge Body, Count times (0: once), for Token ("" any).
type ListFault struct {
	Status     int    `json:"status,omitempty"`
	RetryAfter string `json:"retryAfter,omitempty"`
	Body       string `json:"body,omitempty"`
	Count      int    `json:"count,omitempty"`
	Token      string `json:"token,omitempty"`
}

type listRecord struct {
	seq      int
	object   string
	id       string
	modified time.Time
	fields   map[string]any
}

// Providers Lists serves.
const (
	ListSalesforce = "salesforce"
	ListDrive      = "drive"
	ListPipedrive  = "pipedrive"
	ListNotion     = "notion"
	ListJira       = "jira"
)

// HugeBodyBytes is the size of a "huge" fault's answer: beyond any
// poller's bound (pkg/manifest MaxPollResponseBytes).
const HugeBodyBytes = 6 << 20

// NewLists returns empty list APIs.
func NewLists(opts ListsOptions) *Lists {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Lists{now: opts.Now, records: map[string][]*listRecord{}, polls: map[string]int{}}
}

// WithLists serves l's routes beside h (the OAuth provider's).
func WithLists(h http.Handler, l *Lists) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	l.Register(mux)
	return mux
}

// Register mounts the list APIs and their controls on mux.
func (l *Lists) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /services/data/{version}/query", l.list(l.salesforce))
	mux.HandleFunc("GET /drive/v3/changes/startPageToken", l.list(l.driveStart))
	mux.HandleFunc("GET /drive/v3/changes", l.list(l.driveChanges))
	mux.HandleFunc("GET /v1/recents", l.list(l.pipedrive))
	mux.HandleFunc("POST /v1/databases/{db}/query", l.list(l.notion))
	mux.HandleFunc("GET /rest/api/3/search/jql", l.list(l.jira))
	mux.HandleFunc("POST /fake/records", l.addRecord)
	mux.HandleFunc("POST /fake/poll-fault", l.addFault)
	mux.HandleFunc("GET /fake/poll-stats", func(w http.ResponseWriter, _ *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"requests": l.polls, "total": l.total})
	})
}

// Add stores a record for provider (one of the List* names): object is the
// Salesforce sObject, the Pipedrive item type, the Notion database id, or
// ignored (Drive, Jira). It returns the record as the provider lists it.
func (l *Lists) Add(provider, object string, fields map[string]any) (map[string]any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch provider {
	case ListSalesforce, ListDrive, ListPipedrive, ListNotion, ListJira:
	default:
		return nil, fmt.Errorf("unknown provider %q (salesforce, drive, pipedrive, notion, jira)", provider)
	}
	l.seq++
	r := &listRecord{seq: l.seq, object: object, modified: l.now().UTC(), fields: fields}
	if id, ok := fields["id"].(string); ok && id != "" {
		r.id = id // an update of an existing record: a new version
	} else {
		r.id = fmt.Sprintf("%s%06d", map[string]string{ListSalesforce: "003", ListDrive: "f", ListPipedrive: "", ListNotion: "pg-", ListJira: "1"}[provider], l.seq)
	}
	l.records[provider] = append(l.records[provider], r)
	return l.shape(provider, r), nil
}

// Fail queues a fault for the next list requests.
func (l *Lists) Fail(f ListFault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = append(l.faults, &f)
}

// Polls returns how many list requests credential token made.
func (l *Lists) Polls(token string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.polls[token]
}

// PollCounts returns the list requests per credential token.
func (l *Lists) PollCounts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.polls))
	for k, v := range l.polls {
		out[k] = v
	}
	return out
}

// token is the request's credential: Bearer, x-api-token or Basic user.
func token(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	if t := r.Header.Get("x-api-token"); t != "" {
		return t
	}
	if u, p, ok := r.BasicAuth(); ok && p != "" {
		return u
	}
	return ""
}

// list authenticates, counts, applies a queued fault, then serves fn's
// answer.
func (l *Lists) list(fn func(r *http.Request) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := token(r)
		if tok == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized", "message": "no credentials"})
			return
		}
		l.mu.Lock()
		l.polls[tok]++
		l.total++
		var fault *ListFault
		for i, f := range l.faults {
			if f.Token == "" || f.Token == tok {
				fault = f
				if f.Count--; f.Count <= 0 {
					l.faults = append(l.faults[:i], l.faults[i+1:]...)
				}
				break
			}
		}
		l.mu.Unlock()
		if fault != nil {
			if fault.RetryAfter != "" {
				w.Header().Set("Retry-After", fault.RetryAfter)
			}
			status := fault.Status
			if status == 0 {
				status = http.StatusOK
			}
			switch fault.Body {
			case "malformed":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"records":[{"Id":"003x",`))
			case "huge":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"records":[`))
				chunk := []byte(`{"Id":"003x","LastModifiedDate":"2026-01-01T00:00:00.000+0000","Name":"` + strings.Repeat("x", 900) + `"},`)
				for n := 0; n < HugeBodyBytes; n += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
				_, _ = w.Write([]byte(`{"Id":"003y","LastModifiedDate":"2026-01-01T00:00:00.000+0000"}]}`))
			default:
				writeJSON(w, status, map[string]any{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "rate limited"})
			}
			return
		}
		status, v := fn(r)
		writeJSON(w, status, v)
	}
}

// snapshot returns provider's records sorted by modification (then order).
func (l *Lists) snapshot(provider string) []*listRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]*listRecord(nil), l.records[provider]...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].modified.Before(out[j].modified) })
	return out
}

var soql = regexp.MustCompile(`(?i)^SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+LastModifiedDate\s*(>=|>)\s*(\S+))?(?:\s+ORDER\s+BY\s+LastModifiedDate(?:\s+ASC)?)?(?:\s+LIMIT\s+(\d+))?\s*$`)

const (
	sfTime    = "2006-01-02T15:04:05.000-0700"
	pdTime    = "2006-01-02 15:04:05"
	jqlTime   = "2006/01/02 15:04"
	notionFmt = "2006-01-02T15:04:00.000Z"
)

func sfError(msg string) (int, any) {
	return http.StatusBadRequest, []map[string]string{{"message": msg, "errorCode": "MALFORMED_QUERY"}}
}

func (l *Lists) salesforce(r *http.Request) (int, any) {
	m := soql.FindStringSubmatch(strings.TrimSpace(r.URL.Query().Get("q")))
	if m == nil {
		return sfError("unexpected token in the query")
	}
	var since time.Time
	if m[4] != "" {
		t, err := parseSOQLTime(m[4])
		if err != nil {
			return sfError("line 1: invalid dateTime: " + m[4])
		}
		since = t
	}
	limit := 2000
	if m[5] != "" {
		limit, _ = strconv.Atoi(m[5])
	}
	recs := []any{}
	for _, rec := range l.snapshot(ListSalesforce) {
		if !strings.EqualFold(rec.object, m[2]) || (m[4] != "" && (rec.modified.Before(since) || (m[3] == ">" && !rec.modified.After(since)))) {
			continue
		}
		if len(recs) == limit {
			break
		}
		recs = append(recs, l.shape(ListSalesforce, rec))
	}
	return http.StatusOK, map[string]any{"totalSize": len(recs), "done": true, "records": recs}
}

func parseSOQLTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, sfTime, "2006-01-02T15:04:05-07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid dateTime %q", s)
}

func (l *Lists) driveStart(*http.Request) (int, any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return http.StatusOK, map[string]any{"kind": "drive#startPageToken", "startPageToken": strconv.Itoa(l.nextDriveSeq())}
}

// nextDriveSeq is the position after the last change; l.mu held.
func (l *Lists) nextDriveSeq() int {
	if rs := l.records[ListDrive]; len(rs) > 0 {
		return rs[len(rs)-1].seq + 1
	}
	return 1
}

func (l *Lists) driveChanges(r *http.Request) (int, any) {
	q := r.URL.Query()
	from, err := strconv.Atoi(q.Get("pageToken"))
	if err != nil || from < 1 {
		return http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "message": "Invalid Value", "errors": []map[string]string{{"reason": "invalid", "location": "pageToken"}}}}
	}
	size := 100
	if n, err := strconv.Atoi(q.Get("pageSize")); err == nil && n > 0 && n <= 1000 {
		size = n
	}
	l.mu.Lock()
	all := append([]*listRecord(nil), l.records[ListDrive]...)
	next := l.nextDriveSeq()
	l.mu.Unlock()
	changes := []any{}
	out := map[string]any{"kind": "drive#changeList"}
	for _, rec := range all {
		if rec.seq < from {
			continue
		}
		if len(changes) == size {
			out["nextPageToken"] = strconv.Itoa(rec.seq)
			break
		}
		changes = append(changes, l.shape(ListDrive, rec))
	}
	if _, more := out["nextPageToken"]; !more {
		out["newStartPageToken"] = strconv.Itoa(next)
	}
	out["changes"] = changes
	return http.StatusOK, out
}

func (l *Lists) pipedrive(r *http.Request) (int, any) {
	q := r.URL.Query()
	since, err := time.Parse(pdTime, q.Get("since_timestamp"))
	if err != nil {
		return http.StatusBadRequest, map[string]any{"success": false, "error": "since_timestamp must be YYYY-MM-DD HH:MM:SS", "error_info": "Please check developers.pipedrive.com", "errorCode": 400}
	}
	items := map[string]bool{}
	for _, it := range strings.Split(q.Get("items"), ",") {
		if it != "" {
			items[it] = true
		}
	}
	limit := 100
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 500 {
		limit = n
	}
	data := []any{}
	more, last := false, ""
	for _, rec := range l.snapshot(ListPipedrive) {
		if rec.modified.Truncate(time.Second).Before(since) || (len(items) > 0 && !items[rec.object]) {
			continue
		}
		if len(data) == limit {
			more = true
			break
		}
		data = append(data, l.shape(ListPipedrive, rec))
		last = rec.modified.Format(pdTime)
	}
	add := map[string]any{"since_timestamp": since.Format(pdTime),
		"pagination": map[string]any{"start": 0, "limit": limit, "more_items_in_collection": more}}
	if last != "" {
		add["last_timestamp_on_page"] = last
	}
	return http.StatusOK, map[string]any{"success": true, "data": data, "additional_data": add}
}

func (l *Lists) notion(r *http.Request) (int, any) {
	if r.Header.Get("Notion-Version") == "" {
		return http.StatusBadRequest, map[string]any{"object": "error", "status": 400, "code": "missing_version", "message": "Notion-Version header failed validation"}
	}
	var q struct {
		Filter struct {
			Timestamp      string `json:"timestamp"`
			LastEditedTime struct {
				OnOrAfter string `json:"on_or_after"`
			} `json:"last_edited_time"`
		} `json:"filter"`
		PageSize int `json:"page_size"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&q); err != nil {
		return http.StatusBadRequest, map[string]any{"object": "error", "status": 400, "code": "invalid_json", "message": "Error parsing JSON body."}
	}
	var since time.Time
	if s := q.Filter.LastEditedTime.OnOrAfter; s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return http.StatusBadRequest, map[string]any{"object": "error", "status": 400, "code": "validation_error", "message": "body.filter.last_edited_time.on_or_after should be an ISO 8601 date string"}
		}
		since = t.Truncate(time.Minute)
	}
	size := q.PageSize
	if size <= 0 || size > 100 {
		size = 100
	}
	db := r.PathValue("db")
	results := []any{}
	more := false
	for _, rec := range l.snapshot(ListNotion) {
		if (rec.object != "" && rec.object != db) || rec.modified.Truncate(time.Minute).Before(since) {
			continue
		}
		if len(results) == size {
			more = true
			break
		}
		results = append(results, l.shape(ListNotion, rec))
	}
	return http.StatusOK, map[string]any{"object": "list", "results": results, "next_cursor": nil, "has_more": more, "type": "page_or_database"}
}

var jql = regexp.MustCompile(`(?i)^updated\s*>=\s*"([^"]+)"(?:\s+ORDER\s+BY\s+updated(?:\s+ASC)?)?\s*$`)

func (l *Lists) jira(r *http.Request) (int, any) {
	q := r.URL.Query()
	m := jql.FindStringSubmatch(strings.TrimSpace(q.Get("jql")))
	if m == nil {
		return http.StatusBadRequest, map[string]any{"errorMessages": []string{"Error in the JQL Query: expected updated >= \"yyyy/MM/dd HH:mm\""}, "errors": map[string]any{}}
	}
	since, err := time.Parse(jqlTime, m[1])
	if err != nil {
		return http.StatusBadRequest, map[string]any{"errorMessages": []string{fmt.Sprintf("Date value '%s' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.", m[1])}, "errors": map[string]any{}}
	}
	max := 50
	if n, err := strconv.Atoi(q.Get("maxResults")); err == nil && n > 0 && n <= 5000 {
		max = n
	}
	issues := []any{}
	for _, rec := range l.snapshot(ListJira) {
		if rec.modified.Truncate(time.Minute).Before(since) {
			continue
		}
		if len(issues) == max {
			break
		}
		issues = append(issues, l.shape(ListJira, rec))
	}
	return http.StatusOK, map[string]any{"issues": issues, "isLast": len(issues) < max}
}

// shape is rec as provider lists it.
func (l *Lists) shape(provider string, rec *listRecord) map[string]any {
	fields := map[string]any{}
	for k, v := range rec.fields {
		if k != "id" {
			fields[k] = v
		}
	}
	switch provider {
	case ListSalesforce:
		obj := rec.object
		if obj == "" {
			obj = "Contact"
		}
		fields["attributes"] = map[string]any{"type": obj, "url": "/services/data/v60.0/sobjects/" + obj + "/" + rec.id}
		fields["Id"] = rec.id
		fields["LastModifiedDate"] = rec.modified.Format(sfTime)
		if _, ok := fields["CreatedDate"]; !ok {
			fields["CreatedDate"] = rec.modified.Format(sfTime)
		}
		return fields
	case ListDrive:
		fields["id"] = rec.id
		fields["modifiedTime"] = rec.modified.Format(time.RFC3339Nano)
		return map[string]any{"kind": "drive#change", "changeType": "file", "time": rec.modified.Format("2006-01-02T15:04:05.000Z"),
			"removed": false, "fileId": rec.id, "file": fields}
	case ListPipedrive:
		obj := rec.object
		if obj == "" {
			obj = "deal"
		}
		n, _ := strconv.Atoi(strings.TrimLeft(rec.id, "0"))
		fields["id"] = n
		fields["update_time"] = rec.modified.Format(pdTime)
		return map[string]any{"item": obj, "id": n, "data": fields}
	case ListNotion:
		return map[string]any{"object": "page", "id": rec.id, "created_time": rec.modified.Format(notionFmt),
			"last_edited_time": rec.modified.Format(notionFmt), "parent": map[string]any{"type": "database_id", "database_id": rec.object},
			"properties": fields}
	default: // Jira
		fields["updated"] = rec.modified.Format(sfTime)
		if _, ok := fields["created"]; !ok {
			fields["created"] = rec.modified.Format(sfTime)
		}
		return map[string]any{"id": rec.id, "key": "PRJ-" + strings.TrimLeft(rec.id[1:], "0"), "self": "/rest/api/3/issue/" + rec.id, "fields": fields}
	}
}

func (l *Lists) addRecord(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Provider string         `json:"provider"`
		Object   string         `json:"object"`
		Fields   map[string]any `json:"fields"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON: " + err.Error()})
		return
	}
	rec, err := l.Add(in.Provider, in.Object, in.Fields)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, rec)
}

func (l *Lists) addFault(w http.ResponseWriter, r *http.Request) {
	var f ListFault
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON: " + err.Error()})
		return
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "status must be an HTTP status"})
		return
	}
	l.Fail(f)
	w.WriteHeader(http.StatusNoContent)
}
