package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestLogKeysUnique: no log line of a dev system names a key twice (a
// process logger with "process", each role adding "service"), through a
// start, an App Event run, a request trigger and a stop.
func TestLogKeysUnique(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug})).With("process", "switchboard-dev")
	sys, stop := startDev(t, dev.Options{Logger: logger})
	a := newAPI(sys.HTTPAddr)
	l := newListener(t)
	setupWalkthrough(t, a, sys.APIKey, l)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", sys.APIKey, sdkEcho)
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", token, map[string]any{"name": eventName, "payload": map[string]any{"email": "logs@example.com"}})
	l.waitFor(t, "email", "logs@example.com", 1)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/workflows/sdk-echo/trigger", token, map[string]any{})
	stop()

	mu.Lock()
	out := logs.String()
	mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if dup := duplicateKey(sc.Bytes()); dup != "" {
			t.Errorf("key %q twice in %s", dup, sc.Text())
		}
	}
	if n == 0 {
		t.Fatal("no log lines")
	}
}

// duplicateKey returns a key that one JSON object (at any depth) names
// twice, or "".
func duplicateKey(line []byte) string {
	dec := json.NewDecoder(strings.NewReader(string(line)))
	var walk func() (string, error)
	walk = func() (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				key := fmt.Sprint(k)
				if seen[key] {
					return key, nil
				}
				seen[key] = true
				if d, err := walk(); d != "" || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return "", err
		case json.Delim('['):
			for dec.More() {
				if d, err := walk(); d != "" || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return "", err
		}
		return "", nil
	}
	d, _ := walk()
	return d
}
