package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// pollingDocs extend the built-in salesforce integration with a 2 s poll
// of contacts (the built-in polls once a minute) and a workflow on its
// contact.changed event calling the listener.
func pollingDocs(listener string) string {
	return fmt.Sprintf(`kind: Integration
id: salesforce
polling:
  - event: contact.changed
    interval: 2s
    request:
      url: '{{ credential.settings.instanceUrl }}/services/data/v60.0/query'
      query:
        q: 'SELECT Id, Name, LastModifiedDate FROM Contact WHERE LastModifiedDate >= {{ cursor }} ORDER BY LastModifiedDate ASC LIMIT 200'
    initialCursor: poll.now
    items: body.records
    recordId: 'item.Id + "@" + item.LastModifiedDate'
    cursor: 'len(body.records ?? []) > 0 ? date(last(body.records).LastModifiedDate, "2006-01-02T15:04:05.000-0700").UTC().Format("2006-01-02T15:04:05Z") : cursor'
---
kind: Workflow
id: sf-contact
trigger: {type: integration, integration: salesforce, event: contact.changed}
steps:
  - id: notify
    type: http
    method: POST
    url: %[1]s/contact
    auth: credential
    json: {contact: "{{ trigger.payload.Id }}", name: "{{ trigger.payload.Name }}", user: "{{ user.id }}", event: "{{ trigger.id }}"}
`, listener)
}

// TestPollingTrigger: a Salesforce credential is polled through the fake
// provider's SOQL endpoint; a contact added there runs the workflow once,
// for that credential, within one interval of its first poll after the
// record; polled again, the record is a duplicate and runs nothing more.
func TestPollingTrigger(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	lists := fakeprovider.NewLists(fakeprovider.ListsOptions{})
	fake := httptest.NewServer(fakeprovider.WithLists(http.NotFoundHandler(), lists))
	t.Cleanup(fake.Close)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, pollingDocs(l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1/credentials/sf1", key, map[string]any{
		"integration": "salesforce", "providerAccountId": "00Dorg1",
		"settings": map[string]any{"instanceUrl": fake.URL}, "secret": map[string]any{"accessToken": "tok-u1"}})
	type polls struct {
		Polls []struct {
			Event, Status, Cursor string
			Polls, Records        int
		} `json:"polls"`
	}
	var p polls
	eventually(t, 30*time.Second, "the credential's first poll", func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/users/u1/credentials/sf1/polls", key, nil)
		r.decode(t, &p)
		return len(p.Polls) == 1 && p.Polls[0].Status == "ok", r.String()
	})
	if p.Polls[0].Event != "contact.changed" || p.Polls[0].Cursor == "" {
		t.Fatalf("polls %+v", p)
	}
	added := time.Now()
	rec, err := lists.Add(fakeprovider.ListSalesforce, "Contact", map[string]any{"Name": "Ada Lovelace"})
	if err != nil {
		t.Fatal(err)
	}
	got := l.waitFor(t, "contact", rec["Id"].(string), 1)
	t.Logf("record added → workflow request in %s (interval 2s)", time.Since(added).Round(time.Millisecond))
	if g := got[0]; g.Body["user"] != "u1" || g.Body["name"] != "Ada Lovelace" || g.Auth != "Bearer tok-u1" {
		t.Fatalf("run request %+v", g)
	}
	d := getDecision(t, a, key, got[0].Body["event"].(string))
	if len(d.Candidates) != 1 || d.Candidates[0].Credential != "sf1" || d.Candidates[0].Workflow != "sf-contact" {
		t.Fatalf("decision %+v", d.Candidates)
	}
	// Two more polls see the record again (the query is inclusive): no
	// second run.
	before := lists.Polls("tok-u1")
	eventually(t, 30*time.Second, "two more polls", func() (bool, string) {
		return lists.Polls("tok-u1") >= before+2, fmt.Sprint(lists.Polls("tok-u1"))
	})
	if n := len(l.matching("contact", rec["Id"].(string))); n != 1 {
		t.Fatalf("%d runs for one record", n)
	}
}
