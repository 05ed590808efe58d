package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestRestartKeepsState stops `switchboard dev` and starts it again on the
// same data dir: workflows, users, credentials (with their secrets), the
// API key, the signing key and the run history are all still there.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	l := newListener(t)

	sys1, stop1 := startDev(t, dev.Options{DataDir: dir})
	a1 := newAPI(sys1.HTTPAddr)
	key := sys1.APIKey
	setupWalkthrough(t, a1, key, l)
	token, err := sys1.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	acc := accepted(t, a1.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", token,
		map[string]any{"name": eventName, "payload": map[string]any{"email": "before@example.com"}}))
	if len(acc.RunIDs) != 1 {
		t.Fatalf("want one run, got %+v", acc)
	}
	if run := waitRun(t, a1, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded {
		t.Fatalf("run before restart: %s (%s)", run.Status, run.Error)
	}
	wfBefore := a1.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows/"+workflowID, key, nil).Body
	userBefore := a1.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1", key, nil).Body
	runBefore := a1.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+acc.RunIDs[0], key, nil).Body
	decisionBefore := getDecision(t, a1, key, acc.ID)
	stop1()

	sys2, _ := startDev(t, dev.Options{DataDir: dir})
	a2 := newAPI(sys2.HTTPAddr)
	if sys2.APIKey != key {
		t.Fatalf("API key changed across the restart: %q -> %q", key, sys2.APIKey)
	}

	t.Run("workflow", func(t *testing.T) {
		got := a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows/"+workflowID, key, nil).Body
		if !bytes.Equal(got, wfBefore) {
			t.Errorf("workflow after restart:\n%s\nbefore:\n%s", got, wfBefore)
		}
	})
	t.Run("user and credentials", func(t *testing.T) {
		got := a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1", key, nil).Body
		if !bytes.Equal(got, userBefore) {
			t.Errorf("user after restart:\n%s\nbefore:\n%s", got, userBefore)
		}
		var u struct {
			Credentials []struct{ ID, Integration, Status string } `json:"credentials"`
		}
		if err := json.Unmarshal(got, &u); err != nil || len(u.Credentials) != 1 || u.Credentials[0].ID != "c1" || u.Credentials[0].Status != "VALID" {
			t.Errorf("user after restart has credentials %+v (%v), want c1 VALID", u.Credentials, err)
		}
	})
	t.Run("run history", func(t *testing.T) {
		// The read model file was kept: no rebuild, so no waiting.
		got := a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+acc.RunIDs[0], key, nil).Body
		if !bytes.Equal(got, runBefore) {
			t.Errorf("run after restart:\n%s\nbefore:\n%s", got, runBefore)
		}
		var list runList
		a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?workflow="+workflowID, key, nil).decode(t, &list)
		if len(list.Runs) != 1 || list.Runs[0].ID != acc.RunIDs[0] || list.Runs[0].Status != runs.StatusSucceeded {
			t.Errorf("run list after restart: %+v", list)
		}
		if d := getDecision(t, a2, key, acc.ID); !jsonEqual(d, decisionBefore) {
			t.Errorf("decision after restart %+v, before %+v", d, decisionBefore)
		}
	})
	t.Run("a token minted before still works and runs use the stored secret", func(t *testing.T) {
		acc := accepted(t, a2.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", token,
			map[string]any{"name": eventName, "payload": map[string]any{"email": "after@example.com"}}))
		if len(acc.RunIDs) != 1 {
			t.Fatalf("want one run after restart, got %+v", acc)
		}
		if run := waitRun(t, a2, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded {
			t.Fatalf("run after restart: %s (%s)", run.Status, run.Error)
		}
		if got := l.waitFor(t, "email", "after@example.com", 1); got[0].Auth != "Bearer tok-c1" {
			t.Errorf("listener got Authorization %q after restart", got[0].Auth)
		}
		if got := l.matching("email", "before@example.com"); len(got) != 1 {
			t.Errorf("the run from before the restart called the listener %d times, want 1", len(got))
		}
	})
}

// TestReadModelRebuild deletes the bbolt read model between two starts on
// the same data dir: it is rebuilt from RUN_EVENTS and serves exactly the
// same history (run list, pages, single runs, decision records).
func TestReadModelRebuild(t *testing.T) {
	dir := t.TempDir()
	l := newListener(t)

	sys1, stop1 := startDev(t, dev.Options{DataDir: dir})
	a1 := newAPI(sys1.HTTPAddr)
	key := sys1.APIKey
	setupWalkthrough(t, a1, key, l)
	a1.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2/credentials/c1", key,
		map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "t"}, "status": "INVALID"})
	a1.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/credentials/c1", key,
		map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "t3"}})

	var eventIDs, runIDs []string
	for i, user := range []string{"u1", "u2", "u3", "u1", "u3"} {
		acc := accepted(t, a1.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", key,
			map[string]any{"name": eventName, "user": user, "payload": map[string]any{"email": user + "@example.com", "n": i}}))
		eventIDs = append(eventIDs, acc.ID)
		runIDs = append(runIDs, acc.RunIDs...)
	}
	if len(runIDs) != 4 {
		t.Fatalf("got %d runs, want 4 (u2's credential is INVALID)", len(runIDs))
	}
	for _, id := range runIDs {
		if run := waitRun(t, a1, key, id); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", id, run.Status, run.Error)
		}
	}
	for _, id := range eventIDs {
		getDecision(t, a1, key, id)
	}

	// Everything the history API serves, as raw JSON.
	paths := []string{
		"/v1/projects/dev/runs?limit=500",
		"/v1/projects/dev/runs?workflow=" + workflowID,
		"/v1/projects/dev/runs?user=u3",
		"/v1/projects/dev/runs?status=succeeded",
		"/v1/projects/dev/runs?limit=2",
	}
	for _, id := range runIDs {
		paths = append(paths, "/v1/projects/dev/runs/"+id)
	}
	for _, id := range eventIDs {
		paths = append(paths, "/v1/projects/dev/events/"+id)
	}
	snapshot := func(a api) map[string]string {
		out := map[string]string{}
		for _, p := range paths {
			r := a.call(t, "GET", p, key, nil)
			out[p] = r.String()
		}
		return out
	}
	before := snapshot(a1)
	var nextPage string
	{
		var page runList
		a1.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?limit=2", key, nil).decode(t, &page)
		if page.NextCursor == "" {
			t.Fatal("a page of 2 out of 4 runs has no next cursor")
		}
		nextPage = "/v1/projects/dev/runs?limit=2&cursor=" + page.NextCursor
		before[nextPage] = a1.call(t, "GET", nextPage, key, nil).String()
		paths = append(paths, nextPage)
	}
	listBefore, err := sys1.History.ListRuns(history.Filter{Project: "dev", Limit: history.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	stop1()

	dbPath := filepath.Join(dir, "history.db")
	if err := os.Remove(dbPath); err != nil {
		t.Fatalf("remove the read model: %v", err)
	}

	sys2, _ := startDev(t, dev.Options{DataDir: dir})
	a2 := newAPI(sys2.HTTPAddr)
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("no read model file after the restart: %v", err)
	}
	wantList, _ := json.Marshal(listBefore)
	var gotList []byte
	eventually(t, 30*time.Second, "the rebuilt run list to match", func() (bool, string) {
		page, err := sys2.History.ListRuns(history.Filter{Project: "dev", Limit: history.MaxLimit})
		if err != nil {
			return false, err.Error()
		}
		gotList, _ = json.Marshal(page)
		return bytes.Equal(gotList, wantList), string(gotList)
	})
	after := snapshot(a2)
	for _, p := range paths {
		if after[p] != before[p] {
			t.Errorf("GET %s after the rebuild:\n%s\nbefore:\n%s", p, after[p], before[p])
		}
	}
}
