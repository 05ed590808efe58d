//go:build chaos

package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// loadSpec is a paced App Event load.
type loadSpec struct {
	scenario string
	rate     int // events per second, over all workers
	workers  int
	duration time.Duration
	// idempotent sends every event with Idempotency-Key = its payload id
	// and retries it until a 2xx or until retryFor after the load ended.
	idempotent bool
	retryFor   time.Duration
}

// loadResult is what the callers were told. Only 2xx answers count as
// accepted; everything else is a failed attempt, which the system may or
// may not have stored (a request cut by SIGKILL), so it is never counted
// lost.
type loadResult struct {
	mu       sync.Mutex
	tried    map[string]bool
	accepted map[string][]string // payload id -> distinct event ids answered 2xx
	attempts int
	replayed map[string]bool   // payload ids answered 2xx with Idempotent-Replayed: true
	failures map[string]int    // why an attempt was not 2xx -> count
	failedAt map[int]time.Time // worker -> when its last attempt failed
}

func newLoadResult() *loadResult {
	return &loadResult{tried: map[string]bool{}, accepted: map[string][]string{}, replayed: map[string]bool{},
		failures: map[string]int{}, failedAt: map[int]time.Time{}}
}

// record notes worker's attempt for key: its status (0 when the call
// failed), the event id a 2xx answered with and whether it was a replay of
// an earlier answer, or the error.
func (r *loadResult) record(worker int, key string, status int, eventID string, replayed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tried[key] = true
	r.attempts++
	if err != nil || status/100 != 2 || eventID == "" {
		r.failedAt[worker] = time.Now()
	}
	switch {
	case err != nil:
		r.failures[errClass(err)]++
	case status/100 != 2:
		r.failures[fmt.Sprintf("HTTP %d", status)]++
	case eventID == "":
		r.failures["2xx without an event id"]++
	default:
		if replayed {
			r.replayed[key] = true
		}
		for _, id := range r.accepted[key] {
			if id == eventID {
				return
			}
		}
		r.accepted[key] = append(r.accepted[key], eventID)
	}
}

// workersFailedSince counts the workers whose last failed attempt is after t.
func (r *loadResult) workersFailedSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.failedAt {
		if at.After(t) {
			n++
		}
	}
	return n
}

// wasReplayed reports whether key's 2xx was a replayed answer.
func (r *loadResult) wasReplayed(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replayed[key]
}

// replays counts the payload ids answered with a replay.
func (r *loadResult) replays() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.replayed)
}

// snapshot returns copies of the result's maps and counters.
func (r *loadResult) snapshot() (tried map[string]bool, accepted map[string][]string, attempts int, failures map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tried = make(map[string]bool, len(r.tried))
	for k := range r.tried {
		tried[k] = true
	}
	accepted = make(map[string][]string, len(r.accepted))
	for k, v := range r.accepted {
		accepted[k] = append([]string(nil), v...)
	}
	failures = make(map[string]int, len(r.failures))
	for k, v := range r.failures {
		failures[k] = v
	}
	return tried, accepted, r.attempts, failures
}

// errClass keeps the failure table short: a refused or reset connection
// (the process is down) or a timeout, not every address and port.
func errClass(err error) string {
	var ne interface{ Timeout() bool }
	switch s := err.Error(); {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "connection reset"), strings.Contains(s, "EOF"):
		return "connection reset/EOF"
	default:
		return "error"
	}
}

// startLoad runs spec's workers against a and returns a function waiting
// for them. Each worker sends one event per tick with a payload id unique
// in the whole suite; a ticker paces it (a tick missed while a call was
// slow is dropped, as a real caller's would be).
func startLoad(a api, key string, spec loadSpec, res *loadResult) (wait func()) {
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(spec.duration)
	interval := time.Duration(float64(time.Second) * float64(spec.workers) / float64(spec.rate))
	for w := range spec.workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 1; time.Now().Before(end); n++ {
				id := fmt.Sprintf("%s-w%d-%05d", spec.scenario, w, n)
				if spec.idempotent {
					sendUntilAccepted(a, w, key, id, end.Add(spec.retryFor), res)
				} else {
					sendEvent(a, w, key, id, false, res)
				}
				<-tick.C
			}
		})
	}
	return wg.Wait
}

// sendEvent posts one App Event for id; with idem it carries
// Idempotency-Key: id. It reports whether the answer was 2xx.
func sendEvent(a api, worker int, key, id string, idem bool, res *loadResult) (status int, ok bool) {
	var hdr []string
	if idem {
		hdr = []string{"Idempotency-Key", id}
	}
	st, raw, h, err := a.callH("POST", "/v1/projects/"+project+"/events", key,
		map[string]any{"name": eventName, "user": user, "payload": map[string]any{"id": id}}, hdr...)
	var acc struct {
		ID string `json:"id"`
	}
	if err == nil && st/100 == 2 {
		_ = json.Unmarshal(raw, &acc)
	}
	res.record(worker, id, st, acc.ID, h.Get("Idempotent-Replayed") == "true", err)
	return st, err == nil && st/100 == 2 && acc.ID != ""
}

// sendUntilAccepted is a caller that must get its event in: it repeats the
// same request, same Idempotency-Key and body, until a 2xx or the deadline.
// A 4xx other than 409 and 429 is an answer, not an outage: it stops.
func sendUntilAccepted(a api, worker int, key, id string, deadline time.Time, res *loadResult) {
	for {
		st, ok := sendEvent(a, worker, key, id, true, res)
		if ok || !time.Now().Before(deadline) || st/100 == 4 && st != 409 && st != 429 {
			return
		}
		// The caller's retry delay, not a synchronization.
		time.Sleep(100 * time.Millisecond)
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
