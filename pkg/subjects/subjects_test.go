package subjects_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

func TestTokenKeepsPlainTokens(t *testing.T) {
	for _, s := range []string{"a", "acme", "Contact_Created", "x-1", "ABC_def-09", "_", "-"} {
		if got := subjects.Token(s); got != s {
			t.Errorf("Token(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestTokenEscapes(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"", "="},
		{"a.b", "=" + base64.RawURLEncoding.EncodeToString([]byte("a.b"))},
		{"Contact Created", "=Q29udGFjdCBDcmVhdGVk"},
		{"a.b", "=YS5i"},
		{"*", "=Kg"},
		{">", "=Pg"},
		{"=x", "=PXg"},
		{"é", "=w6k"},
		{"user@example.com", "=dXNlckBleGFtcGxlLmNvbQ"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got := subjects.Token(c.in)
			if got != c.want {
				t.Errorf("Token(%q) = %q, want %q", c.in, got, c.want)
			}
			if !strings.HasPrefix(got, "=") {
				t.Errorf("escaped token %q lacks the = prefix", got)
			}
			// A single valid subject token: no separators, wildcards or space.
			if strings.ContainsAny(got, ". \t\r\n*>") {
				t.Errorf("Token(%q) = %q is not a single subject token", c.in, got)
			}
			dec, err := base64.RawURLEncoding.DecodeString(got[1:])
			if err != nil || string(dec) != c.in {
				t.Errorf("Token(%q) does not decode back: %q, %v", c.in, dec, err)
			}
		})
	}
}

func TestTokenNoCollisions(t *testing.T) {
	inputs := []string{"", "a.b", "a_b", "a-b", "a b", "ab", "a..b", ".ab", "ab.", "=", "=YS5i", "YS5i", "a\x00b", "A.B", "a.B"}
	seen := map[string]string{}
	for _, in := range inputs {
		tok := subjects.Token(in)
		if prev, ok := seen[tok]; ok {
			t.Errorf("Token(%q) = Token(%q) = %q", in, prev, tok)
		}
		seen[tok] = in
	}
	if subjects.Token("a.b") == subjects.Token("a_b") {
		t.Error(`"a.b" and "a_b" collide`)
	}
}

func TestSubjects(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{subjects.Trigger("acme", subjects.KindAppEvent, "Contact Created"), "sb.trigger.acme.app_event.=Q29udGFjdCBDcmVhdGVk"},
		{subjects.Trigger("acme", subjects.KindRequest, "wf1"), "sb.trigger.acme.request.wf1"},
		{subjects.Run("acme", "wf1"), "sb.run.acme.wf1"},
		{subjects.RunHistory("acme"), "sb.history.acme.run"},
		{subjects.Decisions("acme"), "sb.history.acme.decision"},
		{subjects.RunState("acme", "run_x"), "sb.state.acme.run.run_x"},
		{subjects.HistoryRunQuery("acme", "run_x"), "sb.api.history.acme.run.run_x"},
		{subjects.DeadRun("acme", "wf1"), "sb.dead.acme.run.wf1"},
		{subjects.DeadTrigger("a.b"), "sb.dead.=YS5i.trigger"},
		{subjects.Function("acme", "enrich"), "sb.fn.acme.enrich"},
		{subjects.ReplyPrefix("i1"), "_INBOX.sb.ingress.i1"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	// Every stream subject falls under its stream's wildcard.
	under := func(subj, wildcard string) bool { return strings.HasPrefix(subj, strings.TrimSuffix(wildcard, ">")) }
	if !under(subjects.Trigger("p", "k", "x"), subjects.TriggersAll) || !under(subjects.Run("p", "w"), subjects.RunsAll) ||
		!under(subjects.RunHistory("p"), subjects.RunEventsAll) || !under(subjects.Decisions("p"), subjects.RunEventsAll) ||
		!under(subjects.RunState("p", "r"), subjects.RunStateAll) ||
		!under(subjects.DeadRun("p", "w"), subjects.DeadAll) || !under(subjects.DeadTrigger("p"), subjects.DeadAll) {
		t.Error("a subject is outside its stream's wildcard")
	}
}

func TestTriggerProject(t *testing.T) {
	cases := []struct {
		subject string
		project string
		ok      bool
	}{
		{subjects.Trigger("acme", subjects.KindAppEvent, "Contact Created"), "acme", true},
		{subjects.Trigger("p-1", subjects.KindRequest, "a.b"), "p-1", true},
		{"sb.trigger.acme.app_event.key.extra", "acme", true},
		{"sb.trigger.acme.app_event", "", false},
		{"sb.trigger", "", false},
		{"", "", false},
		{"sb.run.acme.app_event.key", "", false},
		{"xx.trigger.acme.app_event.key", "", false},
	}
	for _, c := range cases {
		t.Run(c.subject, func(t *testing.T) {
			p, ok := subjects.TriggerProject(c.subject)
			if p != c.project || ok != c.ok {
				t.Errorf("TriggerProject(%q) = %q, %v; want %q, %v", c.subject, p, ok, c.project, c.ok)
			}
		})
	}
}

func TestRunParts(t *testing.T) {
	for _, tc := range []struct {
		subject, project, workflow string
		ok                         bool
	}{
		{"sb.run.p.w", "p", "w", true},
		{subjects.Run("acme", "contact-to-crm"), "acme", "contact-to-crm", true},
		{"sb.run.p.w.extra", "", "", false},
		{"sb.run.p", "", "", false},
		{"sb.run..w", "", "", false},
		{"sb.trigger.p.w", "", "", false},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			p, w, ok := subjects.RunParts(tc.subject)
			if p != tc.project || w != tc.workflow || ok != tc.ok {
				t.Fatalf("RunParts(%q) = %q, %q, %v", tc.subject, p, w, ok)
			}
		})
	}
}

func TestDeadParts(t *testing.T) {
	if got := subjects.DeadOfProject("acme"); got != "sb.dead.acme.>" {
		t.Errorf("DeadOfProject = %q", got)
	}
	for _, tc := range []struct {
		subject, project, kind, workflow string
		ok                               bool
	}{
		{subjects.DeadRun("acme", "wf1"), "acme", "run", "wf1", true},
		{subjects.DeadTrigger("acme"), "acme", "trigger", "", true},
		{"sb.dead.acme.run", "", "", "", false},
		{"sb.dead.acme.run.wf.extra", "", "", "", false},
		{"sb.dead.acme.other", "", "", "", false},
		{"sb.run.acme.wf1", "", "", "", false},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			p, k, w, ok := subjects.DeadParts(tc.subject)
			if p != tc.project || k != tc.kind || w != tc.workflow || ok != tc.ok {
				t.Errorf("DeadParts = %q %q %q %v", p, k, w, ok)
			}
		})
	}
}
