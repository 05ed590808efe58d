package lifecycle

import "context"

// SubscriptionStates returns every subscription of credential c of user u
// of project p as stored, also after the credential is gone (tests: a
// given-up teardown is recorded there).
func (s *Service) SubscriptionStates(ctx context.Context, p, u, c string) []SubscriptionStatus {
	if s.subscriber == nil {
		return nil
	}
	st, _, err := s.subscriber.load(ctx, credUserKey(p, u))
	if err != nil || st == nil || st.Creds[c] == nil {
		return nil
	}
	var out []SubscriptionStatus
	for _, k := range sortedKeys(st.Creds[c].Subs) {
		x := st.Creds[c].Subs[k]
		out = append(out, SubscriptionStatus{Trigger: k, Status: x.status(), Error: x.Error, Attempts: x.Attempts, ProviderID: x.ID})
	}
	return out
}

// Subscription stages a fault can stop at.
const (
	StageSubAfterState = stageSubAfterState
	StageSubLocked     = stageSubLocked
)
