// Package apierr defines the errors Switchboard's HTTP APIs return: a stable
// snake_case code, a human sentence, an optional field path, and the HTTP
// status that goes with them. Handlers return *Error (possibly wrapped); one
// error handler in httpx renders {"error":{"code","message","field"}}.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Details carries structured extras, e.g. per-document apply errors.
	Details any `json:"details,omitempty"`
	// Err is the cause, logged but never shown to the client.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// StatusCode lets echo and other frameworks read the status.
func (e *Error) StatusCode() int { return e.Status }

// New builds an error with a formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithField sets the field path.
func (e *Error) WithField(f string) *Error { e.Field = f; return e }

// WithDetails attaches structured details.
func (e *Error) WithDetails(d any) *Error { e.Details = d; return e }

// Wrap records the cause.
func (e *Error) Wrap(err error) *Error { e.Err = err; return e }

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Common constructors.

func BadRequest(code, format string, args ...any) *Error {
	return New(http.StatusBadRequest, code, format, args...)
}

func Unauthorized(format string, args ...any) *Error {
	return New(http.StatusUnauthorized, "unauthorized", format, args...)
}

func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "forbidden", format, args...)
}

func NotFound(code, format string, args ...any) *Error {
	return New(http.StatusNotFound, code, format, args...)
}

func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

func Unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "the event store is not available; retry later", Err: err}
}
