package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// chromium finds the system Chromium (Debian's package `chromium`), or
// skips: a developer machine may not have it. .ci/run installs it and sets
// SWITCHBOARD_REQUIRE_CHROMIUM, which makes a missing one a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (apt-get install -y chromium)"
	if os.Getenv("SWITCHBOARD_REQUIRE_CHROMIUM") != "" {
		// .ci/run installs it: in CI the browser test never skips.
		t.Fatal(why + ", and SWITCHBOARD_REQUIRE_CHROMIUM is set")
	}
	t.Skip(why + "; .ci/run installs it so CI always runs this test")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context, closed at cleanup. The background-networking flags keep
// Chromium from reaching out (on a closed network it hangs otherwise).
func browser(t *testing.T, execPath string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancelTab := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser and binds its life to the context
	// it is given, so it runs on ctx itself; a start that hangs is cut off
	// by closing the tab.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancelTab()
		t.Fatalf("chromium did not start within 60s")
	}
	return ctx
}

// step runs browser actions with a deadline, failing the test with what
// was being done.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitFor polls a JavaScript predicate until it holds.
func waitFor(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	step(t, ctx, "wait for "+what, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second)))
}

// text reads an element's text.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

// screenshot stores a full-page PNG (quality 100; below it is a JPEG) under the test's artifact directory
// (kept with `go test -artifacts -outputdir DIR`).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

// rowsJS is the run ids the console's runs table shows, in order.
const rowsJS = `[...document.querySelectorAll('#runs-table tbody tr[data-run-row]')].map(tr => tr.dataset.runRow)`

// TestConsole drives the run console in a real headless Chromium against a
// dev system: it loads /console, enters the API key, filters the runs, sees
// a new run appear live, opens a run with its step timeline, opens an
// event's decision record (a run and a skip with its reason), replays a
// dead letter (a run that failed against a closed port) and a filtered set
// in bulk with progress, and stores screenshots as test artifacts.
func TestConsole(t *testing.T) {
	execPath := chromium(t)
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	closed := rqClosedPort(t)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, documents(l.URL)+`
---
kind: Workflow
id: console-dead
trigger: {type: request}
steps:
  - id: deliver
    type: http
    method: POST
    url: http://`+closed+`/hook
    json: {run: "{{ run.id }}"}
    retry: {attempts: 2, backoff: 100ms}
`)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"plan": "pro"}})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1/credentials/c1", key,
		map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-c1"}})
	// u2 has no credential: contact-to-crm does not run for them.
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2", key, map[string]any{})

	send := func(user, email string) eventAccepted {
		t.Helper()
		return accepted(t, a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", key,
			map[string]any{"name": eventName, "user": user, "payload": map[string]any{"email": email}}))
	}
	ev1 := send("u1", "ada@example.com")
	run1 := runs.ID(ev1.ID, workflowID, "u1", "c1")
	ev2 := send("u1", "grace@example.com")
	run2 := runs.ID(ev2.ID, workflowID, "u1", "c1")
	skipped := send("u2", "alan@example.com")
	for _, id := range []string{run1, run2} {
		if r := waitRun(t, a, key, id); r.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s, want succeeded", id, r.Status)
		}
	}
	skippedDecision := getDecision(t, a, key, skipped.ID)
	if len(skippedDecision.Candidates) != 1 || skippedDecision.Candidates[0].Outcome != runs.OutcomeSkipped {
		t.Fatalf("u2's decision %+v, want one skipped candidate", skippedDecision)
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := rqCall(t, "POST", a.base+"/v1/projects/dev/workflows/console-dead/trigger", []byte(`{}`), "Authorization", "Bearer "+token)
	if r.Status != http.StatusAccepted {
		t.Fatalf("trigger console-dead: %s, want 202", r)
	}
	deadRunID, _ := rqObject(t, r)["runId"].(string)
	if run := waitRun(t, a, key, deadRunID); run.Status != runs.StatusFailed {
		t.Fatalf("run %s: %s, want failed", deadRunID, run.Status)
	}
	var dead history.DeadLetter
	eventually(t, 20*time.Second, "the dead letter over HTTP", func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/dead?workflow=console-dead", key, nil)
		var page history.DeadPage
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		r.decode(t, &page)
		if len(page.DeadLetters) != 1 {
			return false, r.String()
		}
		dead = page.DeadLetters[0]
		return true, ""
	})
	if dead.RunID != deadRunID || !dead.Replayable {
		t.Fatalf("dead letter %+v, want replayable run %s", dead, deadRunID)
	}

	ctx := browser(t, execPath)
	// Uncaught exceptions and refused resources (CSP) are the page's bugs.
	consoleCtx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(consoleCtx)
	problems := make(chan string, 64)
	go func() {
		defer close(problems)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				t.Logf("browser console: %s", m)
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				problems <- m.String()
			}
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		for p := range problems {
			t.Errorf("browser: %s", p)
		}
	})
	base := "http://" + sys.HTTPAddr
	// Each part builds on the one before: stop at the first that fails.
	run := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	run("load and sign in", func(t *testing.T) {
		step(t, ctx, "load the console",
			chromedp.Navigate(base+"/console"),
			chromedp.WaitVisible(chromedp.CSS("#login-key")))
		step(t, ctx, "sign in",
			chromedp.SendKeys(chromedp.CSS("#login-key"), key),
			chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS("#runs-table tbody tr[data-run-row]")))
		waitFor(t, ctx, "every run listed, newest first", fmt.Sprintf(`%s.join() === %q`, rowsJS,
			strings.Join([]string{deadRunID, run2, run1}, ",")))
		// The key is the tab's, not the page's or a cookie.
		waitFor(t, ctx, "the key in sessionStorage", fmt.Sprintf(`sessionStorage.getItem("switchboard.console.key") === %q && document.cookie === ""`, key))
	})

	run("filter runs", func(t *testing.T) {
		step(t, ctx, "filter by status",
			chromedp.SetValue(chromedp.CSS("#f-status"), "failed"),
			chromedp.Click(chromedp.CSS("#f-apply")))
		waitFor(t, ctx, "only the failed run", fmt.Sprintf(`%s.join() === %q`, rowsJS, deadRunID))
		// The time filter: nothing was created after tomorrow, everything
		// before it.
		tomorrow := time.Now().Add(24 * time.Hour).Format("2006-01-02T15:04:05")
		step(t, ctx, "filter by time",
			chromedp.SetValue(chromedp.CSS("#f-since"), tomorrow),
			chromedp.Click(chromedp.CSS("#f-apply")))
		waitFor(t, ctx, "no run since tomorrow", rowsJS+`.length === 0 && document.querySelector("#runs-table tbody").textContent.includes("No runs match")`)
		step(t, ctx, "until tomorrow",
			chromedp.SetValue(chromedp.CSS("#f-since"), ""),
			chromedp.SetValue(chromedp.CSS("#f-until"), tomorrow),
			chromedp.Click(chromedp.CSS("#f-apply")))
		waitFor(t, ctx, "the failed run until tomorrow", fmt.Sprintf(`%s.join() === %q`, rowsJS, deadRunID))
		step(t, ctx, "filter by workflow and user",
			chromedp.Click(chromedp.CSS("#f-clear")),
			chromedp.SendKeys(chromedp.CSS("#f-workflow"), workflowID),
			chromedp.SendKeys(chromedp.CSS("#f-user"), "u1"),
			chromedp.Click(chromedp.CSS("#f-apply")))
		waitFor(t, ctx, "the two contact runs", fmt.Sprintf(`%s.join() === %q`, rowsJS, run2+","+run1))
		// Live: a new run shows up without a click.
		ev3 := send("u1", "live@example.com")
		run3 := runs.ID(ev3.ID, workflowID, "u1", "c1")
		waitFor(t, ctx, "the new run, live", fmt.Sprintf(`%s[0] === %q`, rowsJS, run3))
		waitRun(t, a, key, run3)
	})

	run("open a run", func(t *testing.T) {
		step(t, ctx, "open run "+run1,
			chromedp.Click(chromedp.CSS(`#runs-table a[data-run="`+run1+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-step="create"] .bar`)))
		if got := text(t, ctx, "#run-title"); !strings.Contains(got, run1) || !strings.Contains(got, "succeeded") {
			t.Errorf("run title %q", got)
		}
		step(t, ctx, "show the step's output",
			chromedp.Click(chromedp.CSS(`#timeline li[data-step="create"] details:last-of-type summary`)),
			chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-step="create"] details:last-of-type pre`)))
		// The listener's answer is the step's output.
		if out := text(t, ctx, `#timeline li[data-step="create"] details:last-of-type pre`); !strings.Contains(out, "contact-") {
			t.Errorf("step output %q, want the listener's answer", out)
		}
		screenshot(t, ctx, "console-run.png")
	})

	run("decision record", func(t *testing.T) {
		step(t, ctx, "open the run's event",
			chromedp.Click(chromedp.CSS(`#run-meta a[data-event="`+ev1.ID+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#decision-table tr[data-candidate="`+workflowID+`"]`)))
		if got := text(t, ctx, `#decision-table tr[data-candidate="`+workflowID+`"]`); !strings.Contains(got, "ran") || !strings.Contains(got, run1) {
			t.Errorf("decision row %q, want ran with %s", got, run1)
		}
		// Why didn't it run for u2? The reason the router recorded.
		step(t, ctx, "look up u2's event",
			chromedp.SetValue(chromedp.CSS("#event-id"), skipped.ID),
			chromedp.Click(chromedp.CSS(`#event-lookup button[type=submit]`)))
		waitFor(t, ctx, "u2's skipped candidate", fmt.Sprintf(
			`(document.querySelector('#decision-table tr[data-candidate="%s"]') || {}).textContent?.includes(%q)`,
			workflowID, skippedDecision.Candidates[0].Reason))
		if got := text(t, ctx, `#decision-table tr[data-candidate="`+workflowID+`"]`); !strings.Contains(got, "skipped") {
			t.Errorf("decision row %q, want skipped", got)
		}
		screenshot(t, ctx, "console-decision.png")
	})

	run("replay a dead letter", func(t *testing.T) {
		sel := fmt.Sprintf(`#dead-table tr[data-dead="%d"]`, dead.Seq)
		step(t, ctx, "open the dead letters",
			chromedp.Click(chromedp.CSS("#tab-dead")),
			chromedp.WaitVisible(chromedp.CSS(sel+" button")))
		if got := text(t, ctx, sel); !strings.Contains(got, deadRunID) || !strings.Contains(got, "deliver") {
			t.Errorf("dead letter row %q, want the run and its failing step", got)
		}
		step(t, ctx, "replay it",
			chromedp.Click(chromedp.CSS(sel+" button")),
			chromedp.WaitVisible(chromedp.CSS(sel+" .result a[data-run]")))
		newID := text(t, ctx, sel+" .result a[data-run]")
		replayed := waitRun(t, a, key, newID)
		if replayed.ReplayOf != deadRunID || replayed.Workflow != "console-dead" {
			t.Fatalf("replayed run %+v, want a run of console-dead replaying %s", replayed, deadRunID)
		}
		screenshot(t, ctx, "console-dead.png")
		// The failed run itself: its step's error and attempts.
		step(t, ctx, "open the dead run",
			chromedp.Click(chromedp.CSS(sel+` a[data-run="`+deadRunID+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-step="deliver"] .error-text`)))
		if got := text(t, ctx, `#timeline li[data-step="deliver"]`); !strings.Contains(got, "connection refused") || !strings.Contains(got, "attempts 2") {
			t.Errorf("failed step %q, want the connection error after 2 attempts", got)
		}
	})

	run("bulk replay with progress", func(t *testing.T) {
		step(t, ctx, "filter the contact runs",
			chromedp.Click(chromedp.CSS("#tab-runs")),
			chromedp.WaitVisible(chromedp.CSS("#run-filters")))
		// The filters kept their values (workflow and user): three runs.
		waitFor(t, ctx, "three contact runs", rowsJS+`.length === 3`)
		step(t, ctx, "ask for a bulk replay",
			chromedp.Click(chromedp.CSS("#bulk-start")),
			chromedp.WaitVisible(chromedp.CSS("#bulk-go")))
		if q := text(t, ctx, "#bulk-question"); !strings.Contains(q, "Replay 3 run(s)") {
			t.Errorf("confirmation %q, want 3 runs", q)
		}
		step(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#bulk-go")))
		waitFor(t, ctx, "the bulk replay done", `document.querySelector("#bulk-text").textContent.includes("done")`)
		if got := text(t, ctx, "#bulk-text"); !strings.HasPrefix(got, "3 of 3 · 3 replayed · 0 failed") {
			t.Errorf("progress %q", got)
		}
		waitFor(t, ctx, "a full progress bar", `document.querySelector("#bulk-bar").value === 3 && document.querySelector("#bulk-bar").max === 3`)
		eventually(t, 20*time.Second, "three replays of contact runs", func() (bool, string) {
			r := a.call(t, "GET", "/v1/projects/dev/runs?workflow="+workflowID, key, nil)
			var list runList
			r.decode(t, &list)
			n := 0
			for _, run := range list.Runs {
				if run.ReplayOf != "" {
					n++
				}
			}
			return n == 3, r.String()
		})
		// The list shows the replays once the bulk replay is done.
		waitFor(t, ctx, "the replays listed", `document.querySelectorAll('#runs-table tbody tr[data-run-row]').length === 6`)
		screenshot(t, ctx, "console-bulk.png")
	})
}
