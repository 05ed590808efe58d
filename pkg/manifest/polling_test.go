package manifest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

const pollDoc = `{id: crm, triggers: [{event: a}], polling: [{event: a, interval: 30s,
  request: {url: 'https://p.example/list', query: {since: '{{ cursor }}'}, headers: {X-V: '2'}},
  items: body.data, recordId: 'item.id', cursor: 'body.next ?? cursor'}]}`

func TestPollingSection(t *testing.T) {
	tests := []struct {
		name, doc, wantField string
	}{
		{"valid", pollDoc, ""},
		{"post body", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {method: post, url: 'https://p.example/q', body: {f: {after: '{{ cursor }}'}, n: 100}}, items: body.r, recordId: item.id}]}`, ""},
		{"templated host", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: '{{ credential.settings.base }}/q'}, items: body.r, recordId: item.id}]}`, ""},
		{"event required", `{id: x, triggers: [{event: a}], polling: [{request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].event"},
		{"event not a trigger", `{id: x, triggers: [{event: a}], polling: [{event: b, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].event"},
		{"duplicate event", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}, {event: a, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[1].event"},
		{"interval too short", `{id: x, triggers: [{event: a}], polling: [{event: a, interval: 1ms, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].interval"},
		{"url required", `{id: x, triggers: [{event: a}], polling: [{event: a, items: body.r, recordId: item.id}]}`, "polling[0].request.url"},
		{"url relative", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: '/q'}, items: body.r, recordId: item.id}]}`, "polling[0].request.url"},
		{"bad method", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {method: DELETE, url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].request.method"},
		{"unknown variable in url", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/{{ secret.token }}'}, items: body.r, recordId: item.id}]}`, "polling[0].request.url"},
		{"unclosed template", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/{{ cursor'}, items: body.r, recordId: item.id}]}`, "polling[0].request.url"},
		{"bad query template", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q', query: {q: '{{ ) }}'}}, items: body.r, recordId: item.id}]}`, "polling[0].request.query.q"},
		{"authorization header", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q', headers: {authorization: x}}, items: body.r, recordId: item.id}]}`, "polling[0].request.headers.Authorization"},
		{"items required", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, recordId: item.id}]}`, "polling[0].items"},
		{"record id required", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, items: body.r}]}`, "polling[0].recordId"},
		{"record id over the wrong variable", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, items: body.r, recordId: event.id}]}`, "polling[0].recordId"},
		{"more without cursor", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id, more: 'true'}]}`, "polling[0].more"},
		{"start without initial cursor", `{id: x, triggers: [{event: a}], polling: [{event: a, start: {url: 'https://p.example/s'}, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].initialCursor"},
		{"bad start url", `{id: x, triggers: [{event: a}], polling: [{event: a, start: {url: 'ftp://p'}, initialCursor: body.t, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id}]}`, "polling[0].start.url"},
		{"unknown field", `{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: 'https://p.example/q'}, items: body.r, recordId: item.id, since: 1}]}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte(tt.doc))
			if tt.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Polling) == 0 {
					t.Fatal("no polls")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one on %s", tt.wantField)
			}
			if p, ok := err.(manifest.Problems); ok && tt.wantField != "unknown field" {
				for _, x := range p {
					if x.Field == tt.wantField {
						return
					}
				}
				t.Fatalf("problems %v, want one on field %s", p, tt.wantField)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("err %v, want %q", err, tt.wantField)
			}
		})
	}
	t.Run("extend merges polls by event", func(t *testing.T) {
		base, err := manifest.Parse([]byte(pollDoc))
		if err != nil {
			t.Fatal(err)
		}
		over, err := manifest.Parse([]byte(`{id: crm, name: CRM}`))
		if err != nil {
			t.Fatal(err)
		}
		got := over.Extend(base)
		if p := got.Compile(); len(p) > 0 {
			t.Fatal(p)
		}
		if q, ok := got.Poll("a"); !ok || q.EveryInterval() != 30*time.Second {
			t.Fatalf("extended polls %+v", got.Polling)
		}
	})
}

func TestPollBuildAndRead(t *testing.T) {
	m, err := manifest.Parse([]byte(pollDoc))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := m.Poll("a")
	env := manifest.PollEnv{Credential: map[string]any{"id": "c1"}, Cursor: "c 5&x", Now: time.Unix(0, 0)}
	req, err := q.Request.Build(q, env)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(req.URL)
	if req.Method != http.MethodGet || u.Query().Get("since") != "c 5&x" || req.Header.Get("X-V") != "2" {
		t.Fatalf("request %+v", req)
	}
	tests := []struct {
		name, body, wantErr, cursor string
		ids                         []string
	}{
		{"records and cursor", `{"data":[{"id":"r1"},{"id":2}],"next":"c6"}`, "", "c6", []string{"r1", "2"}},
		{"no records keeps the cursor", `{"data":[]}`, "", "c 5&x", nil},
		{"items not a list", `{"data":{"id":"r1"}}`, "not a list", "", nil},
		{"record without id", `{"data":[{"id":"r1"},{"x":1}]}`, "recordId of item 1", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
				t.Fatal(err)
			}
			page, err := q.Read(env, http.Header{}, body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range page.Records {
				ids = append(ids, r.ID)
			}
			if page.Cursor != tt.cursor || strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
				t.Fatalf("page %+v ids %v", page, ids)
			}
		})
	}
}

// TestPollingBuiltins: each polling built-in renders a request for its
// provider's list API and reads the provider's documented answer shape.
func TestPollingBuiltins(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		id, event, answer string
		settings          map[string]any
		wantURL           []string // substrings of the rendered URL
		wantIDs           []string
		wantCursor        string
		wantMore          bool
	}{
		{"salesforce", "contact.changed",
			`{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Contact"},"Id":"003A","Name":"Ada","LastModifiedDate":"2026-01-02T03:05:00.000+0000"}]}`,
			map[string]any{"instanceUrl": "https://org.my.salesforce.com"},
			[]string{"https://org.my.salesforce.com/services/data/v60.0/query?q=SELECT", "LastModifiedDate+%3E%3D+2026-01-02T03%3A04%3A05Z"},
			[]string{"003A@2026-01-02T03:05:00.000+0000"}, "2026-01-02T03:05:00Z", false},
		{"google-drive-changes", "file.changed",
			`{"kind":"drive#changeList","nextPageToken":"120","changes":[{"kind":"drive#change","changeType":"file","time":"2026-01-02T03:05:00.000Z","removed":false,"fileId":"f1","file":{"id":"f1","name":"a.txt"}}]}`,
			nil, []string{"https://www.googleapis.com/drive/v3/changes?", "pageToken=100"},
			[]string{"f1@2026-01-02T03:05:00.000Z"}, "120", true},
		{"pipedrive-recents", "deal.updated",
			`{"success":true,"data":[{"item":"deal","id":7,"data":{"id":7,"title":"Big","update_time":"2026-01-02 03:05:00"}}],"additional_data":{"since_timestamp":"2026-01-02 03:04:05","last_timestamp_on_page":"2026-01-02 03:05:00","pagination":{"start":0,"limit":100,"more_items_in_collection":false}}}`,
			nil, []string{"https://api.pipedrive.com/v1/recents?", "items=deal", "since_timestamp=100"},
			[]string{"deal:7@2026-01-02 03:05:00"}, "2026-01-02 03:05:00", false},
		{"notion", "page.edited",
			`{"object":"list","results":[{"object":"page","id":"p1","last_edited_time":"2026-01-02T03:05:00.000Z"}],"next_cursor":null,"has_more":false}`,
			map[string]any{"databaseId": "db1"}, []string{"https://api.notion.com/v1/databases/db1/query"},
			[]string{"p1@2026-01-02T03:05:00.000Z"}, "2026-01-02T03:05:00.000Z", false},
		{"jira-issues", "issue.updated",
			`{"issues":[{"id":"10001","key":"PRJ-1","fields":{"summary":"S","updated":"2026-01-02T03:05:00.000+0000"}}],"isLast":true}`,
			map[string]any{"siteUrl": "https://acme.atlassian.net"}, []string{"https://acme.atlassian.net/rest/api/3/search/jql?", "updated+%3E%3D+%22100%22"},
			[]string{"10001@2026-01-02T03:05:00.000+0000"}, "2026/01/02 03:05", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			m, ok := manifest.Builtin(tt.id)
			if !ok {
				t.Fatalf("no built-in %s", tt.id)
			}
			q, ok := m.Poll(tt.event)
			if !ok {
				t.Fatalf("%s has no poll of %s", tt.id, tt.event)
			}
			env := manifest.PollEnv{Credential: map[string]any{"id": "c1", "settings": tt.settings}, Now: now}
			first, err := q.FirstCursor(env, map[string]any{"startPageToken": "100"})
			if err != nil || first == "" {
				t.Fatalf("first cursor %q, %v", first, err)
			}
			env.Cursor = first
			if tt.id != "google-drive-changes" {
				env.Cursor = "100" // a recognisable cursor in the URL
				if tt.id == "salesforce" {
					env.Cursor = first
				}
			}
			req, err := q.Request.Build(q, env)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantURL {
				if !strings.Contains(req.URL, w) {
					t.Errorf("url %s lacks %s", req.URL, w)
				}
			}
			var body any
			if err := json.Unmarshal([]byte(tt.answer), &body); err != nil {
				t.Fatal(err)
			}
			page, err := q.Read(env, http.Header{}, body)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range page.Records {
				ids = append(ids, r.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") || page.Cursor != tt.wantCursor || page.More != tt.wantMore {
				t.Fatalf("ids %v cursor %q more %v", ids, page.Cursor, page.More)
			}
			if m.ProviderType(tt.event) == "" {
				t.Fatal("no provider type")
			}
		})
	}
}

// FuzzPolling: any document with a polling section parses or is refused
// with problems, and a poll that compiles builds its request and reads any
// JSON answer without panicking.
func FuzzPolling(f *testing.F) {
	f.Add([]byte(pollDoc), `{"data":[{"id":"r1"}],"next":"x"}`, "c")
	for _, id := range []string{"salesforce", "google-drive-changes", "pipedrive-recents", "notion", "jira-issues"} {
		m, _ := manifest.Builtin(id)
		b, _ := json.Marshal(m)
		f.Add(b, `{"records":[{"Id":"a","LastModifiedDate":"2026-01-02T03:05:00.000+0000"}],"results":[],"issues":[{"id":1,"fields":{"updated":"x"}}]}`, "2026-01-02T03:04:05Z")
	}
	f.Add([]byte(`{id: x, triggers: [{event: a}], polling: [{event: a, request: {url: '{{ cursor }}', body: [[['{{ poll.now }}']]]}, items: body, recordId: string(item)}]}`), `[1,2,3]`, "https://h/x")
	f.Fuzz(func(t *testing.T, doc []byte, answer, cursor string) {
		m, err := manifest.Parse(doc)
		if err != nil || m == nil {
			return
		}
		var body any
		_ = json.Unmarshal([]byte(answer), &body)
		for i := range m.Polling {
			q := &m.Polling[i]
			env := manifest.PollEnv{Credential: map[string]any{"id": "c", "settings": map[string]any{"instanceUrl": cursor}}, Cursor: cursor, Now: time.Unix(1, 0)}
			_, _ = q.FirstCursor(env, body)
			_, _ = q.Request.Build(q, env)
			if page, err := q.Read(env, http.Header{"X": {cursor}}, body); err == nil {
				if len(page.Records) > manifest.MaxPollItems || len(page.Cursor) > manifest.MaxCursorLen {
					t.Fatalf("page beyond its bounds: %d records, cursor %d bytes", len(page.Records), len(page.Cursor))
				}
				for _, r := range page.Records {
					if r.ID == "" || len(r.ID) > manifest.MaxRecordIDLen {
						t.Fatalf("record id %q", r.ID)
					}
				}
			}
		}
	})
}
