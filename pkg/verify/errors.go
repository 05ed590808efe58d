package verify

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, snake_case reason a delivery was refused. The receiver
// maps it to an HTTP status (see HTTPStatus) and records it in the decision
// log; it is safe to log because it never carries secret material.
//
// Code is itself an error so callers can write errors.Is(err, verify.ErrBadSignature)
// without the package holding mutable sentinel variables.
type Code string

// The codes a Verifier or Handshake returns.
const (
	// ErrMissingSignature: the header, field or token the scheme needs is absent.
	ErrMissingSignature Code = "missing_signature"
	// ErrBadSignature: a signature was present but none matched any active secret,
	// or it could not be decoded.
	ErrBadSignature Code = "bad_signature"
	// ErrTimestampOutOfRange: the signed timestamp is missing, malformed, too old
	// or too far in the future (replay protection works both ways).
	ErrTimestampOutOfRange Code = "timestamp_out_of_range"
	// ErrNoSecret: no usable (unexpired, well-formed) secret is configured for the
	// source. Fail closed: the receiver answers 503 so the provider retries after
	// an operator fixes the configuration, and never accepts unsigned data.
	ErrNoSecret Code = "no_secret"
	// ErrUnknownScheme: the spec names a preset, scheme, algorithm or encoding this
	// package does not know. Also fail closed (503).
	ErrUnknownScheme Code = "unknown_scheme"
	// ErrInvalidSpec: the spec is structurally wrong (e.g. a bad template).
	// Returned by ParseSpec and New; apply should reject such a manifest.
	ErrInvalidSpec Code = "invalid_spec"
	// ErrUnsupported: the operation is not possible for this scheme (e.g. signing
	// a scheme whose signature lives inside the body).
	ErrUnsupported Code = "unsupported"
)

func (c Code) Error() string { return string(c) }

// HTTPStatus is the answer the receiver gives for a refused delivery. Signature
// problems are the sender's (401); configuration problems are ours (503), so a
// provider that retries on 5xx will redeliver once the operator fixed it.
func (c Code) HTTPStatus() int {
	switch c {
	case ErrMissingSignature, ErrBadSignature, ErrTimestampOutOfRange:
		return http.StatusUnauthorized
	case ErrNoSecret, ErrUnknownScheme, ErrInvalidSpec:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

// Error is a refusal with its stable Code and a human message. The message
// names headers and settings but never includes signature values, computed
// MACs or secrets, so it may be logged verbatim.
type Error struct {
	Code    Code
	Message string
	// Err is an underlying cause (e.g. a decode error), also free of secrets.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadSignature) work on wrapped *Error values.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

func newErr(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

func wrapErr(c Code, err error, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf extracts the Code from an error returned by this package; "" for nil
// and for errors that did not come from here.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	return ""
}
