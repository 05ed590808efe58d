package trigger_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/trigger"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// FuzzSubject: envelope fields come from outside (any NATS client, a
// replayed record). Whatever Subject accepts must be one well-formed
// five-token trigger subject, far from the control-line limit.
func FuzzSubject(f *testing.F) {
	f.Add("acme", int32(1), "u1", "wf", "hubspot")
	f.Add("a.b", int32(2), "", "w f", "")
	f.Add("p", int32(3), "x", "y", "a.b.>*")
	f.Add("", int32(0), "", "", "")
	f.Fuzz(func(t *testing.T, project string, kind int32, user, wf, integration string) {
		ev := &sbv1.TriggerEvent{Project: project, Kind: sbv1.Kind(kind), User: user, Workflow: wf, Integration: integration}
		s, err := trigger.Subject(ev)
		if err != nil {
			return
		}
		tokens := strings.Split(s, ".")
		if len(tokens) != 5 || tokens[0] != "sb" || tokens[1] != "trigger" || tokens[2] != project {
			t.Fatalf("Subject = %q", s)
		}
		for _, tok := range tokens {
			if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
				t.Fatalf("Subject = %q has a bad token %q", s, tok)
			}
		}
		if len(s) > 1024 {
			t.Fatalf("Subject is %d bytes", len(s))
		}
	})
}
