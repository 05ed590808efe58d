package lifecycle

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// rec builds a stored user record with the given credentials.
func rec(creds ...*directory.StoredCredential) *directory.StoredUser {
	u := &directory.StoredUser{User: &directory.User{Project: "p", ID: "u1"}, Credentials: map[string]*directory.StoredCredential{}}
	for _, c := range creds {
		u.Credentials[c.ID] = c
	}
	return u
}

func cred(id, status, secretVersion string, settings map[string]any) *directory.StoredCredential {
	return &directory.StoredCredential{
		Credential:    &directory.Credential{Project: "p", User: "u1", ID: id, Integration: "hubspot", Status: status, Settings: settings},
		SecretVersion: secretVersion,
	}
}

func TestDerive(t *testing.T) {
	const V, I = directory.CredentialValid, directory.CredentialInvalid
	filled := map[string]any{"portalId": "42"}
	required := func(_, integration string) []string {
		if integration == "hubspot" {
			return []string{"portalId"}
		}
		return nil
	}
	// Each case is a sequence of records (nil: user deleted) and the events
	// each one derives, given the state the previous ones left.
	tests := []struct {
		name  string
		steps []*directory.StoredUser
		want  [][]string
	}{
		{"connect without the required setting, then fill it in",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", nil)), rec(cred("c1", V, "v1", filled))},
			[][]string{nil, {"settings.updated", "integration.enabled"}}},
		{"connect complete: enabled at once",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled))},
			[][]string{{"integration.enabled"}}},
		{"a non-required setting does not gate or re-fire enabled",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(cred("c1", V, "v1", map[string]any{"portalId": "42", "color": "red"}))},
			[][]string{{"integration.enabled"}, {"settings.updated"}}},
		{"empty string is not filled in",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", map[string]any{"portalId": ""}))},
			[][]string{nil}},
		{"same record again derives nothing",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(cred("c1", V, "v1", filled))},
			[][]string{{"integration.enabled"}, nil}},
		{"invalid, then valid again re-fires",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(cred("c1", I, "v1", filled)), rec(cred("c1", V, "v2", filled))},
			[][]string{{"integration.enabled"}, {"credential.invalid"}, {"integration.enabled"}}},
		{"removed, then reconnected re-fires",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(), rec(cred("c1", V, "v2", filled))},
			[][]string{{"integration.enabled"}, {"integration.disabled"}, {"integration.enabled"}}},
		{"user deleted disables every credential",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled), cred("c2", V, "v1", nil)), nil},
			[][]string{{"integration.enabled"}, {"integration.disabled", "integration.disabled"}}},
		{"new secret on a valid credential is a refresh, not a new enable",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(cred("c1", V, "v2", filled))},
			[][]string{{"integration.enabled"}, {"credential.refreshed"}}},
		{"clearing a required setting does not disable; refilling does not re-fire",
			[]*directory.StoredUser{rec(cred("c1", V, "v1", filled)), rec(cred("c1", V, "v1", nil)), rec(cred("c1", V, "v1", filled))},
			[][]string{{"integration.enabled"}, {"settings.updated"}, {"settings.updated"}}},
		{"connected INVALID: invalid, never enabled",
			[]*directory.StoredUser{rec(cred("c1", I, "v1", filled))},
			[][]string{{"credential.invalid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st *derivedState
			for i, r := range tt.steps {
				next, events, err := derive(st, r, "u.p.u1", uint64(i+1), time.Unix(100, 0), required)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range events {
					got = append(got, e.Event)
				}
				if !slices.Equal(got, tt.want[i]) {
					t.Fatalf("step %d: events %v, want %v", i, got, tt.want[i])
				}
				// The state goes through JSON between derivations, as in KV.
				b, _ := json.Marshal(next)
				st = &derivedState{}
				if err := json.Unmarshal(b, st); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDerivePayload(t *testing.T) {
	u := rec(cred("c1", directory.CredentialValid, "v1", map[string]any{"portalId": "42"}))
	u.User.Metadata = map[string]any{"email": "a@example.com"}
	u.Credentials["c1"].ProviderAccountID = "acct-9"
	_, events, err := derive(nil, u, "u.p.u1", 7, time.Unix(100, 0), func(string, string) []string { return nil })
	if err != nil || len(events) != 1 {
		t.Fatalf("events %v, err %v", events, err)
	}
	var p Payload
	if err := json.Unmarshal(events[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Integration != "hubspot" || p.CredentialID != "c1" || p.ProviderAccountID != "acct-9" || p.Settings["portalId"] != "42" ||
		p.User.ID != "u1" || p.User.Metadata["email"] != "a@example.com" || events[0].Revision != "u.p.u1@7" {
		t.Fatalf("payload %+v revision %s", p, events[0].Revision)
	}
}
