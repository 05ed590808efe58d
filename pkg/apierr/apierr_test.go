package apierr_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

func TestConstructors(t *testing.T) {
	cause := errors.New("disk on fire")
	cases := []struct {
		name    string
		err     *apierr.Error
		status  int
		code    string
		message string
	}{
		{"New", apierr.New(409, "conflict", "already %s", "there"), 409, "conflict", "already there"},
		{"BadRequest", apierr.BadRequest("invalid_json", "bad %d", 1), 400, "invalid_json", "bad 1"},
		{"Unauthorized", apierr.Unauthorized("no %s", "token"), 401, "unauthorized", "no token"},
		{"Forbidden", apierr.Forbidden("not yours"), 403, "forbidden", "not yours"},
		{"NotFound", apierr.NotFound("unknown_event", "event %q", "x"), 404, "unknown_event", `event "x"`},
		{"Internal", apierr.Internal(cause), 500, "internal", "internal error"},
		{"Unavailable", apierr.Unavailable(cause), 503, "unavailable", "the event store is not available; retry later"},
		{"percent without args", apierr.New(400, "c", "100%% sure"), 400, "c", "100% sure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err.Status != c.status || c.err.StatusCode() != c.status || c.err.Code != c.code || c.err.Message != c.message {
				t.Errorf("got %d %q %q, want %d %q %q", c.err.Status, c.err.Code, c.err.Message, c.status, c.code, c.message)
			}
		})
	}
	if !errors.Is(apierr.Internal(cause), cause) || !errors.Is(apierr.Unavailable(cause), cause) {
		t.Error("Internal/Unavailable do not wrap the cause")
	}
}

func TestErrorString(t *testing.T) {
	e := apierr.BadRequest("bad", "message")
	if e.Error() != "bad: message" {
		t.Errorf("Error() = %q", e.Error())
	}
	e.Wrap(errors.New("cause"))
	if e.Error() != "bad: message: cause" {
		t.Errorf("Error() with cause = %q", e.Error())
	}
}

func TestAsThroughWrapping(t *testing.T) {
	base := apierr.NotFound("nope", "x").WithField("a.b")
	wrapped := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", base))
	got, ok := apierr.As(wrapped)
	if !ok || got != base {
		t.Fatalf("As = %v, %v", got, ok)
	}
	if _, ok := apierr.As(errors.New("plain")); ok {
		t.Error("As found an *Error in a plain error")
	}
	if _, ok := apierr.As(nil); ok {
		t.Error("As(nil) = true")
	}
	cause := errors.New("root")
	e := apierr.BadRequest("x", "y").Wrap(cause)
	if !errors.Is(e, cause) || errors.Unwrap(e) != cause {
		t.Error("Unwrap does not reach the cause")
	}
}

func TestJSON(t *testing.T) {
	cases := []struct {
		name string
		err  *apierr.Error
		want string
	}{
		{"minimal", apierr.BadRequest("bad", "msg"), `{"code":"bad","message":"msg"}`},
		{"field", apierr.BadRequest("bad", "msg").WithField("steps[0].url"), `{"code":"bad","message":"msg","field":"steps[0].url"}`},
		{"details", apierr.BadRequest("bad", "msg").WithDetails([]int{1, 2}), `{"code":"bad","message":"msg","details":[1,2]}`},
		{"cause and status are hidden", apierr.Internal(errors.New("secret")), `{"code":"internal","message":"internal error"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(c.err)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("JSON = %s, want %s", b, c.want)
			}
		})
	}
	if http.StatusText(apierr.Unavailable(nil).Status) != "Service Unavailable" {
		t.Error("Unavailable status")
	}
}
