package history_test

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/services/history"
)

func TestRunFilterUserTokenSeesOwnRuns(t *testing.T) {
	pr := access.Principal{Role: access.RoleUser, Project: "p", User: "u1"}
	q := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	f, err := history.RunFilter(pr, q(nil))
	if err != nil || f.User != "u1" {
		t.Fatalf("filter %+v err %v", f, err)
	}
	if _, err := history.RunFilter(pr, q(map[string]string{"user": "u2"})); err == nil {
		t.Fatal("a user token listed another user's runs")
	}
	for _, bad := range []map[string]string{{"status": "done"}, {"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"since": "yesterday"}, {"until": "soon"}} {
		if _, err := history.RunFilter(access.Principal{Role: access.RoleAPIKey, Project: "p"}, q(bad)); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
