package fakeprovider_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// TestListsSpeakTheManifests: each polling built-in, pointed at the fake,
// gets nothing before a record exists, the record once it is added, and
// (with the cursor it computed) nothing new on the next poll but the
// boundary record it dedupes by id.
func TestListsSpeakTheManifests(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lists := fakeprovider.NewLists(fakeprovider.ListsOptions{Now: func() time.Time { return clock }})
	srv := httptest.NewServer(fakeprovider.WithLists(http.NotFoundHandler(), lists))
	defer srv.Close()
	tests := []struct {
		manifest, event, provider, object string
		settings                          map[string]any
	}{
		{"salesforce", "contact.changed", fakeprovider.ListSalesforce, "Contact", map[string]any{"instanceUrl": srv.URL}},
		{"google-drive-changes", "file.changed", fakeprovider.ListDrive, "", map[string]any{"apiBase": srv.URL}},
		{"pipedrive-recents", "deal.updated", fakeprovider.ListPipedrive, "deal", map[string]any{"apiBase": srv.URL}},
		{"notion", "page.edited", fakeprovider.ListNotion, "db1", map[string]any{"apiBase": srv.URL, "databaseId": "db1"}},
		{"jira-issues", "issue.updated", fakeprovider.ListJira, "", map[string]any{"siteUrl": srv.URL}},
	}
	for _, tt := range tests {
		t.Run(tt.manifest, func(t *testing.T) {
			m, _ := manifest.Builtin(tt.manifest)
			q, _ := m.Poll(tt.event)
			env := manifest.PollEnv{Credential: map[string]any{"id": "c1", "settings": tt.settings}, Now: clock}
			var start any
			if q.Start != nil {
				start = pollCall(t, q.Start, q, env, m.Auth.Type)
			}
			cur, err := q.FirstCursor(env, start)
			if err != nil {
				t.Fatal(err)
			}
			env.Cursor = cur
			if page := pollPage(t, q, env, m.Auth.Type); len(page.Records) != 0 {
				t.Fatalf("records before any was added: %+v", page.Records)
			}
			clock = clock.Add(30 * time.Second)
			if _, err := lists.Add(tt.provider, tt.object, map[string]any{"Name": "Ada"}); err != nil {
				t.Fatal(err)
			}
			page := pollPage(t, q, env, m.Auth.Type)
			if len(page.Records) != 1 {
				t.Fatalf("records after one was added: %+v", page.Records)
			}
			first := page.Records[0].ID
			env.Cursor = page.Cursor
			for _, r := range pollPage(t, q, env, m.Auth.Type).Records {
				if r.ID != first {
					t.Fatalf("a new record %s on the re-poll", r.ID)
				}
			}
		})
	}
	t.Run("faults", func(t *testing.T) {
		m, _ := manifest.Builtin("salesforce")
		q, _ := m.Poll("contact.changed")
		env := manifest.PollEnv{Credential: map[string]any{"settings": map[string]any{"instanceUrl": srv.URL}}, Cursor: "2026-01-01T00:00:00Z"}
		lists.Fail(fakeprovider.ListFault{Status: 429, RetryAfter: "7", Token: "fault-tok"})
		req, _ := q.Request.Build(q, env)
		resp := pollDo(t, req, "fault-tok")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("status %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		lists.Fail(fakeprovider.ListFault{Body: "huge"})
		b, _ := io.ReadAll(pollDo(t, req, "fault-tok").Body)
		if len(b) < fakeprovider.HugeBodyBytes {
			t.Fatalf("huge answer of %d bytes", len(b))
		}
		if lists.Polls("fault-tok") != 2 {
			t.Fatalf("polls %d", lists.Polls("fault-tok"))
		}
	})
}

func pollDo(t *testing.T, br *manifest.BuiltRequest, tok string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(br.Method, br.URL, bytes.NewReader(br.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = br.Header.Clone()
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func pollCall(t *testing.T, r *manifest.PollRequest, q *manifest.Poll, env manifest.PollEnv, auth string) any {
	t.Helper()
	br, err := r.Build(q, env)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(br.Method, br.URL, bytes.NewReader(br.Body))
	req.Header = br.Header.Clone()
	switch auth {
	case "basic":
		req.SetBasicAuth("me@example.com", "api-token")
	case "api_key":
		req.Header.Set("x-api-token", "k")
	default:
		req.Header.Set("Authorization", "Bearer tok")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", br.Method, br.URL, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func pollPage(t *testing.T, q *manifest.Poll, env manifest.PollEnv, auth string) *manifest.Page {
	t.Helper()
	page, err := q.Read(env, http.Header{}, pollCall(t, &q.Request, q, env, auth))
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestListsControls: the HTTP controls the README uses add a record,
// queue a fault and count requests; bad input is a 400.
func TestListsControls(t *testing.T) {
	lists := fakeprovider.NewLists(fakeprovider.ListsOptions{})
	srv := httptest.NewServer(fakeprovider.WithLists(http.NotFoundHandler(), lists))
	defer srv.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, path, body string
		want             int
	}{
		{"record", "/fake/records", `{"provider":"salesforce","object":"Contact","fields":{"Name":"Ada"}}`, http.StatusCreated},
		{"unknown provider", "/fake/records", `{"provider":"zoho"}`, http.StatusBadRequest},
		{"not JSON", "/fake/records", `{`, http.StatusBadRequest},
		{"fault", "/fake/poll-fault", `{"status":429,"retryAfter":"120"}`, http.StatusNoContent},
		{"bad fault status", "/fake/poll-fault", `{"status":42}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := post(tt.path, tt.body); got != tt.want {
				t.Fatalf("%s: %d %s, want %d", tt.path, got, body, tt.want)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/services/data/v60.0/query?q="+url.QueryEscape("SELECT Id FROM Contact"), nil)
	req.Header.Set("Authorization", "Bearer t1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "120" {
		t.Fatalf("after the fault: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if lists.Polls("t1") != 1 {
		t.Fatalf("polls %v", lists.PollCounts())
	}
}
