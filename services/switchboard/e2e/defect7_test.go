package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

const defect7Admin = "adm_defect7"

func startDefect7(t *testing.T, opts app.Options) *app.App {
	t.Helper()
	srv := brokertest.Start(t)
	opts.Connect = srv.Embedded.Connect
	opts.HTTPAddr = "127.0.0.1:0"
	opts.DataDir = t.TempDir()
	opts.AdminToken = defect7Admin
	opts.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

// trickler is a raw client that sends its headers at once and then its
// body one byte at a time, as a slowloris client does.
type trickler struct {
	conn net.Conn
	stop chan struct{}
	done chan struct{}
}

func startTrickler(t *testing.T, addr, method, path, token string, length int) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hdr := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, addr, length)
	if token != "" {
		hdr += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
		t.Fatal(err)
	}
	tr := &trickler{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range length {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(tr.stop); <-tr.done })
	return tr
}

// outcome reads what the server sends until it closes the connection or
// within ends: the status (0 if none) and whether the connection was closed.
func (tr *trickler) outcome(within time.Duration) (status int, closed bool) {
	_ = tr.conn.SetReadDeadline(time.Now().Add(within))
	br := bufio.NewReader(tr.conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, !isTimeout(err)
	}
	status = resp.StatusCode
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// After the response the server must hang up rather than wait for the
	// rest of a body nobody will read.
	_, err = br.ReadByte()
	return status, err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (strings.Contains(err.Error(), "timeout") || (asNetErr(err, &ne) && ne.Timeout()))
}

func asNetErr(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// TestDefect7SlowBodies: clients trickling a body held their connections
// for as long as they liked, unauthenticated ones included.
func TestDefect7SlowBodies(t *testing.T) {
	a := startDefect7(t, app.Options{HTTPLimits: httpx.ServerOptions{
		BodyTimeout:   3 * time.Second,
		SlowBodyAfter: 200 * time.Millisecond,
		MaxSlowBodies: 3,
	}})
	addr := a.HTTPAddr()

	// Unauthenticated: answered 401 and hung up on, without waiting for
	// the body.
	var unauth []*trickler
	for range 20 {
		unauth = append(unauth, startTrickler(t, addr, http.MethodPost, "/v1/projects/p/events", "", 10_000))
	}
	for i, tr := range unauth {
		status, closed := tr.outcome(3 * time.Second)
		if status != http.StatusUnauthorized || !closed {
			t.Fatalf("unauthenticated trickler %d: status %d, closed %v; want 401 and closed within 3s", i, status, closed)
		}
	}

	// Authenticated tricklers take the slow-body slots, all three of them.
	t0 := time.Now()
	var slow []*trickler
	for range 3 {
		slow = append(slow, startTrickler(t, addr, http.MethodPut, "/v1/projects/p", defect7Admin, 10_000))
	}
	for a.SlowBodies() < 3 {
		if time.Since(t0) > 2*time.Second {
			t.Fatalf("%d slow bodies hold slots after 2s, want 3", a.SlowBodies())
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline above
	}
	// One more slow body finds no slot: 503 overloaded, at once (well
	// before the body deadline).
	extra := startTrickler(t, addr, http.MethodPut, "/v1/projects/p", defect7Admin, 10_000)
	if status, closed := extra.outcome(2 * time.Second); status != http.StatusServiceUnavailable || !closed {
		t.Fatalf("a fourth slow body: status %d closed %v; want 503 overloaded while three hold the slots", status, closed)
	}
	// A normal request is served meanwhile: a fast body needs no slot.
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/projects/p2", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+defect7Admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("a normal request while the slots are taken: %d %s", resp.StatusCode, body)
	}
	// The slow ones get 408 once their body deadline (3s) passes, and the
	// connection is closed.
	for i, tr := range slow {
		status, closed := tr.outcome(time.Until(t0.Add(6 * time.Second)))
		if !closed || (status != http.StatusRequestTimeout && status != 0) {
			t.Fatalf("slow authenticated trickler %d: status %d closed %v; want 408 and closed", i, status, closed)
		}
		if el := time.Since(t0); el < 3*time.Second {
			t.Errorf("slow trickler %d cut off after %s, before its deadline", i, el)
		}
	}
	// Their slots are free again: a new slow body is read (and times out)
	// rather than refused.
	again := startTrickler(t, addr, http.MethodPut, "/v1/projects/p", defect7Admin, 10_000)
	if status, _ := again.outcome(6 * time.Second); status != http.StatusRequestTimeout {
		t.Fatalf("a slow body after the slots were freed: %d, want 408", status)
	}
}
