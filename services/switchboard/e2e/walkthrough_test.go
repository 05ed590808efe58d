package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestWalkthrough is the README walk-through as a Go test: apply a workflow
// whose http step posts a templated body to a local listener with the
// credential's bearer token, connect user u1 with credential c1, send the
// event with a user token on both paths, and read back the runs and the
// decision records. Subtests cover credential selection, per-credential
// enablement, INVALID credentials, ?wait=routed and a JSON envelope
// published straight to NATS.
func TestWalkthrough(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	setupWalkthrough(t, a, key, l)

	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	var firstRun, firstEmail string
	t.Run("both event paths", func(t *testing.T) {
		type sent struct{ eventID, email, runID string }
		var all []sent
		for i, path := range []string{"/v1/projects/dev/events", "/projects/dev/sdk/events/trigger"} {
			email := fmt.Sprintf("ada+%d@example.com", i)
			r := a.must(t, http.StatusAccepted, "POST", path, token, map[string]any{"name": eventName, "payload": map[string]any{"email": email}})
			acc := accepted(t, r)
			if acc.ID == "" || acc.Status != "accepted" {
				t.Fatalf("%s: got %s, want an id and status accepted", path, r)
			}
			got := l.waitFor(t, "email", email, 1)[0]
			want := map[string]any{"email": email, "owner": "u1", "event": acc.ID, "run": got.Body["run"]}
			if !jsonEqual(got.Body, want) {
				t.Errorf("%s: listener got body %s, want %v", path, got.Raw, want)
			}
			if got.Auth != "Bearer tok-c1" {
				t.Errorf("%s: listener got Authorization %q, want %q", path, got.Auth, "Bearer tok-c1")
			}
			if got.Path != "/contacts" {
				t.Errorf("%s: listener got path %q, want /contacts", path, got.Path)
			}
			runID, _ := got.Body["run"].(string)
			if !runs.ValidID(runID) {
				t.Fatalf("%s: templated run id %q is not a run id", path, runID)
			}
			if want := runs.ID(acc.ID, workflowID, "u1", "c1"); runID != want {
				t.Errorf("%s: run id %s, want the deterministic %s", path, runID, want)
			}
			all = append(all, sent{eventID: acc.ID, email: email, runID: runID})
		}

		// The run list shows both runs succeeded, with the step's output.
		var list runList
		eventually(t, 20*time.Second, "both runs succeeded in the run list", func() (bool, string) {
			r := a.call(t, "GET", "/v1/projects/dev/runs?workflow="+workflowID, key, nil)
			if r.Status != http.StatusOK {
				return false, r.String()
			}
			list = runList{}
			r.decode(t, &list)
			for _, s := range all {
				i := slices.IndexFunc(list.Runs, func(run runs.Run) bool { return run.ID == s.runID })
				if i < 0 || list.Runs[i].Status != runs.StatusSucceeded {
					return false, r.String()
				}
			}
			return true, ""
		})
		for _, s := range all {
			run := list.Runs[slices.IndexFunc(list.Runs, func(run runs.Run) bool { return run.ID == s.runID })]
			if run.Workflow != workflowID || run.User != "u1" || run.Credential != "c1" || run.EventID != s.eventID || run.Project != "dev" {
				t.Errorf("run %s: got workflow=%q user=%q credential=%q event=%q project=%q", run.ID, run.Workflow, run.User, run.Credential, run.EventID, run.Project)
			}
			if run.StartedAt.IsZero() || run.FinishedAt.IsZero() || run.FinishedAt.Before(run.StartedAt) {
				t.Errorf("run %s: bad timings started=%s finished=%s", run.ID, run.StartedAt, run.FinishedAt)
			}
			if len(run.Steps) != 1 {
				t.Fatalf("run %s: %d steps, want 1: %+v", run.ID, len(run.Steps), run.Steps)
			}
			st := run.Steps[0]
			out, _ := st.Output.(map[string]any)
			body, _ := out["body"].(map[string]any)
			if st.ID != "create" || st.Status != runs.StepSucceeded || st.Attempts != 1 || out["status"] != float64(200) ||
				!strings.HasPrefix(fmt.Sprint(body["id"]), "contact-") || body["ok"] != true {
				t.Errorf("run %s: step %+v, want create succeeded with status 200 and the listener's body", run.ID, st)
			}
			in, _ := st.Input.(map[string]any)
			inBody, _ := in["body"].(map[string]any)
			if in["method"] != "POST" || in["url"] != l.URL+"/contacts" || inBody["email"] != s.email {
				t.Errorf("run %s: step input %v, want POST %s/contacts with the templated body", run.ID, st.Input, l.URL)
			}
		}

		// The decision record of each event names the run.
		for _, s := range all {
			d := getDecision(t, a, key, s.eventID)
			want := []runs.Candidate{{Workflow: workflowID, User: "u1", Credential: "c1", Outcome: runs.OutcomeRan, RunID: s.runID}}
			if d.EventID != s.eventID || d.Project != "dev" || d.Name != eventName || d.User != "u1" || d.Kind != "APP_EVENT" ||
				!slices.Equal(d.Candidates, want) {
				t.Errorf("decision of %s: %+v, want candidates %+v", s.eventID, d, want)
			}
		}

		firstRun, firstEmail = all[0].runID, all[0].email
	})

	t.Run("a finished run shows its trigger", func(t *testing.T) {
		if firstRun == "" {
			t.Skip("no run from the previous subtest")
		}
		// The user token sees its own run (design §7b: status, timings,
		// trigger, every step).
		r := a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+firstRun, token, nil)
		var run runs.Run
		r.decode(t, &run)
		if run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s is %s", run.ID, run.Status)
		}
		var trig struct {
			ID      string         `json:"id"`
			Name    string         `json:"name"`
			User    string         `json:"user"`
			Payload map[string]any `json:"payload"`
		}
		if err := json.Unmarshal(run.Trigger, &trig); err != nil || trig.Name != eventName || trig.User != "u1" ||
			trig.ID != run.EventID || trig.Payload["email"] != firstEmail {
			t.Errorf("GET /runs/%s: trigger is %q, want the event envelope with payload.email %q", run.ID, run.Trigger, firstEmail)
		}
	})

	t.Run("X-Switchboard-Credential selects one credential", func(t *testing.T) {
		for _, c := range []string{"ca", "cb"} {
			a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2/credentials/"+c, key,
				map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-" + c}})
		}
		const email = "selected@example.com"
		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": "u2", "payload": map[string]any{"email": email}},
			"X-Switchboard-Credential", "cb")
		acc := accepted(t, r)
		if acc.Status != "routed" || len(acc.RunIDs) != 1 || acc.RunIDs[0] != runs.ID(acc.ID, workflowID, "u2", "cb") {
			t.Fatalf("got %s, want one run for credential cb", r)
		}
		d := getDecision(t, a, key, acc.ID)
		want := []runs.Candidate{{Workflow: workflowID, User: "u2", Credential: "cb", Outcome: runs.OutcomeRan, RunID: acc.RunIDs[0]}}
		if !slices.Equal(d.Candidates, want) {
			t.Errorf("decision candidates %+v, want %+v", d.Candidates, want)
		}
		if run := waitRun(t, a, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", run.ID, run.Status, run.Error)
		}
		got := l.matching("email", email)
		if len(got) != 1 || got[0].Auth != "Bearer tok-cb" {
			t.Errorf("listener got %+v, want exactly one call with Bearer tok-cb", got)
		}

		// Without the header, every valid credential of the user runs.
		const both = "both@example.com"
		r = a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": "u2", "payload": map[string]any{"email": both}})
		acc = accepted(t, r)
		if len(acc.RunIDs) != 2 {
			t.Fatalf("got %s, want two runs (ca and cb)", r)
		}
		var auths []string
		for _, g := range l.waitFor(t, "email", both, 2) {
			auths = append(auths, g.Auth)
		}
		slices.Sort(auths)
		if !slices.Equal(auths, []string{"Bearer tok-ca", "Bearer tok-cb"}) {
			t.Errorf("listener got Authorization %v, want one call per credential", auths)
		}

		// A credential the user does not have is recorded, not run.
		r = a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": "u2", "payload": map[string]any{"email": "nobody@example.com"}},
			"X-Switchboard-Credential", "zz")
		acc = accepted(t, r)
		if len(acc.RunIDs) != 0 {
			t.Fatalf("got %s, want no run for an unknown credential", r)
		}
		d = getDecision(t, a, key, acc.ID)
		if len(d.Candidates) != 1 || d.Candidates[0].Outcome != runs.OutcomeSkipped || d.Candidates[0].Reason != runs.ReasonCredentialUnknown {
			t.Errorf("decision candidates %+v, want one skipped %s", d.Candidates, runs.ReasonCredentialUnknown)
		}
	})

	t.Run("workflow disabled for a credential", func(t *testing.T) {
		for _, c := range []string{"c1", "c2"} {
			a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/credentials/"+c, key,
				map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-u3-" + c}})
		}
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/credentials/c2/workflows/"+workflowID, key, map[string]any{"enabled": false})
		tok3, err := sys.Token("u3", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		const email = "disabled@example.com"
		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", tok3,
			map[string]any{"name": eventName, "payload": map[string]any{"email": email}})
		acc := accepted(t, r)
		if len(acc.RunIDs) != 1 {
			t.Fatalf("got %s, want one run (c1 only)", r)
		}
		d := getDecision(t, a, key, acc.ID)
		byCred := candidatesByCredential(d)
		if c := byCred["c1"]; c.Outcome != runs.OutcomeRan || c.RunID != acc.RunIDs[0] {
			t.Errorf("c1 candidate %+v, want ran with run %s", c, acc.RunIDs[0])
		}
		if c := byCred["c2"]; c.Outcome != runs.OutcomeSkipped || c.Reason != runs.ReasonNotEnabled || c.RunID != "" {
			t.Errorf("c2 candidate %+v, want skipped %s", c, runs.ReasonNotEnabled)
		}
		if len(d.Candidates) != 2 {
			t.Errorf("decision has %d candidates, want 2: %+v", len(d.Candidates), d.Candidates)
		}
		if run := waitRun(t, a, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded || run.Credential != "c1" {
			t.Fatalf("run %+v, want c1 succeeded", run)
		}
		if got := l.matching("email", email); len(got) != 1 || got[0].Auth != "Bearer tok-u3-c1" {
			t.Errorf("listener got %+v, want exactly one call with c1's token", got)
		}
	})

	t.Run("INVALID credential is skipped", func(t *testing.T) {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u4/credentials/c1", key,
			map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-u4"}, "status": "INVALID"})
		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": "u4", "payload": map[string]any{"email": "invalid@example.com"}})
		acc := accepted(t, r)
		if acc.Status != "routed" || len(acc.RunIDs) != 0 {
			t.Fatalf("got %s, want routed with no run", r)
		}
		d := getDecision(t, a, key, acc.ID)
		want := runs.Candidate{Workflow: workflowID, User: "u4", Credential: "c1", Outcome: runs.OutcomeSkipped, Reason: runs.ReasonCredentialInvalid}
		if len(d.Candidates) != 1 || !sameCandidate(d.Candidates[0], want) {
			t.Errorf("decision candidates %+v, want %+v", d.Candidates, want)
		}
		r = a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?user=u4", key, nil)
		var list runList
		r.decode(t, &list)
		if len(list.Runs) != 0 {
			t.Errorf("u4 has runs: %s", r)
		}
	})

	t.Run("unknown user is recorded", func(t *testing.T) {
		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": "stranger", "payload": map[string]any{"email": "s@example.com"}})
		acc := accepted(t, r)
		d := getDecision(t, a, key, acc.ID)
		if len(acc.RunIDs) != 0 || len(d.Candidates) != 1 || d.Candidates[0].Reason != runs.ReasonUnknownUser {
			t.Errorf("got %s and candidates %+v, want no run and reason %s", r, d.Candidates, runs.ReasonUnknownUser)
		}
	})

	t.Run("wait=routed returns the run ids", func(t *testing.T) {
		for _, path := range []string{"/v1/projects/dev/events?wait=routed", "/projects/dev/sdk/events/trigger?wait=routed"} {
			email := "routed" + fmt.Sprint(len(path)) + "@example.com"
			r := a.must(t, http.StatusAccepted, "POST", path, token, map[string]any{"name": eventName, "payload": map[string]any{"email": email}})
			acc := accepted(t, r)
			if acc.Status != "routed" || len(acc.RunIDs) != 1 || acc.RunIDs[0] != runs.ID(acc.ID, workflowID, "u1", "c1") {
				t.Fatalf("%s: got %s, want status routed and the run id", path, r)
			}
			got := l.waitFor(t, "email", email, 1)
			if got[0].Body["run"] != acc.RunIDs[0] {
				t.Errorf("%s: listener saw run %v, the API returned %s", path, got[0].Body["run"], acc.RunIDs[0])
			}
			if run := waitRun(t, a, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded {
				t.Errorf("%s: run %s %s (%s)", path, run.ID, run.Status, run.Error)
			}
		}
	})

	t.Run("JSON envelope published straight to NATS", func(t *testing.T) {
		if sys.NATSURL == "" {
			t.Fatal("the embedded NATS does not listen for outside clients")
		}
		nc, err := nats.Connect(sys.NATSURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		const email = "x@y.z"
		m := nats.NewMsg("sb.trigger.dev.app_event.u1")
		m.Header.Set("Content-Type", "application/json")
		m.Data = []byte(`{"kind":"APP_EVENT","name":"Contact Created","user":"u1","payload":{"email":"` + email + `"}}`)
		// A plain publish, as `nats pub` does: the stream stores it.
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		got := l.waitFor(t, "email", email, 1)[0]
		if got.Auth != "Bearer tok-c1" || got.Body["owner"] != "u1" {
			t.Errorf("listener got %+v", got)
		}
		runID, _ := got.Body["run"].(string)
		run := waitRun(t, a, key, runID)
		if run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", run.ID, run.Status, run.Error)
		}
		eventID, _ := got.Body["event"].(string)
		d := getDecision(t, a, key, eventID)
		if len(d.Candidates) != 1 || d.Candidates[0].Outcome != runs.OutcomeRan || d.Candidates[0].RunID != runID {
			t.Errorf("decision of the NATS event: %+v", d)
		}

		// The same envelope in protobuf-less, header-less form (sniffed as
		// JSON) also starts a run.
		const email2 = "sniffed@y.z"
		if err := nc.Publish("sb.trigger.dev.app_event.u1",
			[]byte(`{"kind":"APP_EVENT","name":"Contact Created","user":"u1","payload":{"email":"`+email2+`"}}`)); err != nil {
			t.Fatal(err)
		}
		got = l.waitFor(t, "email", email2, 1)[0]
		runID, _ = got.Body["run"].(string)
		if run := waitRun(t, a, key, runID); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", run.ID, run.Status, run.Error)
		}
	})
}

func candidatesByCredential(d runs.Decision) map[string]runs.Candidate {
	out := map[string]runs.Candidate{}
	for _, c := range d.Candidates {
		out[c.Credential] = c
	}
	return out
}

// sameCandidate compares candidates ignoring the human message.
func sameCandidate(a, b runs.Candidate) bool {
	a.Message, b.Message = "", ""
	return a == b
}

// jsonEqual compares two values by their JSON encoding.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
