package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-hq/switchboard/pkg/testlog"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
	"github.com/switchboard-hq/switchboard/services/switchboard/openapi"
)

// checked is a proxy in front of a dev system that holds every request the
// client sends and every answer it gets against the OpenAPI document: the
// client is written against the document, and this is where that is
// checked.
type checked struct {
	mu   sync.Mutex
	errs []string
}

func (c *checked) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, msg)
}

func startChecked(t *testing.T) (sys *dev.System, base string, ch *checked) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := dev.Start(ctx, dev.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", ExamplesDir: "../../../examples", Logger: testlog.New(t)})
	if err != nil {
		t.Fatalf("dev.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sys.Stop(ctx)
	})
	b, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	ch = &checked{}
	// kin-openapi knows no NDJSON; the document describes the import body
	// as a string, which is how the plain decoder reads it.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	target, _ := url.Parse("http://" + sys.HTTPAddr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	rt, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := rt.FindRoute(r)
		if err != nil {
			ch.fail(r.Method + " " + r.URL.Path + ": not in the document: " + err.Error())
			proxy.ServeHTTP(w, r)
			return
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
			ch.fail(r.Method + " " + r.URL.Path + ": request: " + err.Error())
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			ch.fail(r.Method + " " + r.URL.Path + ": response " + rec.Body.String() + ": " + err.Error())
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
	return sys, srv.URL, ch
}

func TestClientWalkthrough(t *testing.T) {
	sys, base, ch := startChecked(t)
	ctx := context.Background()
	c, err := client.New(client.Options{BaseURL: base, Token: sys.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile("../../../examples/contact-created.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Users and credentials are not the client's (the CLI does not write
	// them); set up u1's credential over plain HTTP, through the same check.
	for path, body := range map[string]string{
		"/v1/projects/dev/users/u1":                `{"metadata":{}}`,
		"/v1/projects/dev/users/u1/credentials/c1": `{"integration":"crm","secret":{"accessToken":"t"}}`,
	} {
		req, _ := http.NewRequest(http.MethodPut, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+sys.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: HTTP %d", path, resp.StatusCode)
		}
	}
	sched, err := os.ReadFile("../../../examples/schedules/every-5s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var runID, eventID string
	for _, step := range []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"apply", func(t *testing.T) error {
			res, err := c.Apply(ctx, "dev", docs)
			if err == nil && len(res.Applied) == 0 {
				t.Errorf("applied nothing: %+v", res)
			}
			return err
		}},
		{"event", func(t *testing.T) error {
			res, err := c.SendEvent(ctx, "dev", client.EventRequest{Name: "Contact Created", User: "u1", Payload: []byte(`{"email":"a@example.com"}`)}, client.EventOptions{WaitRouted: true})
			if err != nil {
				return err
			}
			eventID = res.ID
			if len(res.RunIDs) > 0 {
				runID = res.RunIDs[0]
			}
			return nil
		}},
		{"decision", func(t *testing.T) error {
			d, err := eventually(func() (*client.Decision, error) { return c.GetDecision(ctx, "dev", eventID) })
			if err == nil && d.EventID != eventID {
				t.Errorf("decision of %s, want %s", d.EventID, eventID)
			}
			return err
		}},
		{"runs list", func(t *testing.T) error {
			_, err := c.ListRuns(ctx, "dev", client.RunFilter{Workflow: "contact-to-crm", Limit: 10})
			return err
		}},
		{"run", func(t *testing.T) error {
			if runID == "" {
				t.Fatal("the event started no run")
			}
			r, err := eventually(func() (*client.Run, error) { return c.GetRun(ctx, "dev", runID) })
			if err == nil && r.ID != runID {
				t.Errorf("run %s, want %s", r.ID, runID)
			}
			return err
		}},
		{"replay run", func(t *testing.T) error {
			res, err := c.ReplayRun(ctx, "dev", runID)
			if err == nil && res.ReplayOf != runID {
				t.Errorf("replayOf %s, want %s", res.ReplayOf, runID)
			}
			return err
		}},
		{"replay event", func(t *testing.T) error {
			_, err := c.ReplayEvent(ctx, "dev", eventID)
			return err
		}},
		{"schedule of a non-schedule", func(t *testing.T) error {
			_, err := c.GetSchedule(ctx, "dev", "contact-to-crm", 3)
			if !client.IsCode(err, "not_a_schedule") {
				t.Errorf("GetSchedule(contact-to-crm) = %v, want not_a_schedule", err)
			}
			return nil
		}},
		{"import", func(t *testing.T) error {
			nd := "{\"id\":\"imp1\",\"metadata\":{\"timezone\":\"Europe/Berlin\"}}\n{\"id\":\"imp2\"}\n{\"oops\"\n"
			res, err := c.ImportUsers(ctx, "dev", strings.NewReader(nd), int64(len(nd)))
			if err == nil && (res.Users != 2 || len(res.Errors) != 1) {
				t.Errorf("import = %+v, want 2 users and 1 line error", res)
			}
			return err
		}},
		{"schedule", func(t *testing.T) error {
			if _, err := c.Apply(ctx, "dev", sched); err != nil {
				return err
			}
			if _, err := c.GetSchedule(ctx, "dev", "every-5s", 2); err != nil {
				return err
			}
			if _, err := c.TriggerSchedule(ctx, "dev", "every-5s", "imp1"); err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			_, err := c.BackfillSchedule(ctx, "dev", "every-5s", client.BackfillRequest{From: now.Add(-30 * time.Second), To: now.Add(-10 * time.Second), User: "imp1"})
			return err
		}},
		{"webhook replay", func(t *testing.T) error {
			_, err := c.ReplayWebhooks(ctx, "dev", "hubspot", client.WebhookReplay{Since: time.Now().Add(-time.Minute), ReplayID: "client-test"})
			return err
		}},
		{"dead", func(t *testing.T) error {
			_, err := c.ListDead(ctx, "dev", client.DeadFilter{Newest: true, Limit: 5})
			return err
		}},
		{"not found", func(t *testing.T) error {
			_, err := c.GetRun(ctx, "dev", "run_nope")
			if !client.IsCode(err, "run_not_found") && !client.IsCode(err, "not_found") {
				t.Errorf("GetRun(run_nope) = %v, want a not-found API error", err)
			}
			return nil
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.run(t); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, e := range ch.errs {
		t.Errorf("against the document: %s", e)
	}
}

// eventually retries a read the history read model may not have caught up
// with yet (404 until then).
func eventually[T any](get func() (T, error)) (T, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := get()
		var e *client.Error
		if err == nil || time.Now().After(deadline) || !asNotFound(err, &e) {
			return v, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func asNotFound(err error, e **client.Error) bool {
	return errors.As(err, e) && (*e).Status == http.StatusNotFound && !strings.Contains((*e).Code, "project")
}
