package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestDeadList runs `switchboard dead list` against a real dev system: it
// reads the project's dead letters through the HTTP API, never another
// project's.
func TestDeadList(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys := startDev(ctx, t)
	publish := func(project, wf, runID, reason string) uint64 {
		m := nats.NewMsg(subjects.DeadRun(project, wf))
		m.Header.Set(wire.HeaderDeadReason, reason)
		m.Header.Set(wire.HeaderRunID, runID)
		m.Header.Set(runs.HeaderRecord, runs.RecordRun)
		m.Data, _ = json.Marshal(runs.Run{ID: runID, Project: project, Workflow: wf, User: "u1", Status: runs.StatusFailed})
		ack, err := sys.JS.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	mine := publish(dev.Project, "wf-a", runs.ID("e1", "wf-a", "u1", ""), "step deliver failed")
	publish("elsewhere", "wf-a", runs.ID("e2", "wf-a", "u1", ""), "not ours")
	second := publish(dev.Project, "wf-b", runs.ID("e3", "wf-b", "u1", ""), "step b failed")

	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--url", "http://"+sys.HTTPAddr, "--api-key", sys.APIKey))
		err := root.Execute()
		return out.String(), err
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		notWant []string
		err     string
	}{
		{name: "the project's dead letters", args: []string{"dead", "list", "--project", dev.Project},
			want:    []string{fmt.Sprintf("#%d ", mine), "reason: step deliver failed", fmt.Sprintf("#%d ", second), "sb.dead.dev.run.wf-b"},
			notWant: []string{"not ours"}},
		{name: "paged by the limit", args: []string{"dead", "list", "--limit", "1"},
			want: []string{fmt.Sprintf("#%d ", mine)}, notWant: []string{fmt.Sprintf("#%d ", second)}},
		{name: "newest first", args: []string{"dead", "list", "--newest", "--limit", "1"},
			want: []string{fmt.Sprintf("#%d ", second)}, notWant: []string{fmt.Sprintf("#%d ", mine)}},
		{name: "one workflow as JSON", args: []string{"dead", "list", "--workflow", "wf-b", "--json"},
			want: []string{`"seq": ` + fmt.Sprint(second), `"replayable": true`}, notWant: []string{"wf-a"}},
		{name: "another project's key is refused", args: []string{"dead", "list", "--project", "elsewhere"}, err: "HTTP 403"},
		{name: "replay needs a number", args: []string{"dead", "replay", "x"}, err: "SEQ must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
	var page []history.DeadLetter
	out, err := run("dead", "list", "--json")
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page) != 2 {
		t.Fatalf("--json: %v %s", err, out)
	}
}
