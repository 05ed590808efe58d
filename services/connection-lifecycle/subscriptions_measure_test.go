package lifecycle_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestSubscriptionMeasure (SWITCHBOARD_MEASURE_SUBSCRIPTIONS=N): N users
// with one credential each enable a workflow, two replicas; prints the time
// until every subscription exists at the fake, and the creates.
func TestSubscriptionMeasure(t *testing.T) {
	var n int
	if _, err := fmt.Sscan(os.Getenv("SWITCHBOARD_MEASURE_SUBSCRIPTIONS"), &n); err != nil || n <= 0 {
		t.Skip("set SWITCHBOARD_MEASURE_SUBSCRIPTIONS=N")
	}
	e := newSubEnv(t)
	e.replicaWith(t, "r2", nil, e.opts)
	start := time.Now()
	for i := range n {
		u := fmt.Sprintf("mu%d", i)
		if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/"+u+"/credentials/c", e.key,
			`{"integration":"stripe","secret":{"accessToken":"sk_test_m"}}`); r.status != 200 {
			t.Fatal(r.status)
		}
		if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/"+u+"/credentials/c/workflows/w1", e.key, `{"enabled":true}`); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	written := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for len(e.subsOf("sk_test_m")) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d", len(e.subsOf("sk_test_m")), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	all := time.Since(start)
	t.Logf("%d credentials: writes %s, all subscribed %s after the first write (%s after the last), creates %+v",
		n, written.Round(time.Millisecond), all.Round(time.Millisecond), (all - written).Round(time.Millisecond), e.fake.SubscriptionCalls())
}
