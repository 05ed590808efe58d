package access

import (
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// MaxIDLen bounds user and credential ids taken from requests: the one id
// limit of the wire (wire.MaxIDLen), so an id accepted here fits every
// subject, KV key and record it ends up in.
const MaxIDLen = wire.MaxIDLen

// ID checks a user or credential id taken from a header or body: ids end up
// in protobuf strings, KV keys and logs, so they must be valid UTF-8 and
// bounded. An empty value is allowed (it means "not given").
func ID(field, v string) error {
	if len(v) > MaxIDLen {
		return apierr.BadRequest("invalid_id", "the %s id is longer than %d bytes", field, MaxIDLen).WithField(field)
	}
	if !utf8.ValidString(v) {
		return apierr.BadRequest("invalid_id", "the %s id is not valid UTF-8", field).WithField(field)
	}
	return nil
}

// RequireID is ID for an id that must be given (a path segment).
func RequireID(field, v string) error {
	if v == "" {
		return apierr.BadRequest("invalid_id", "the %s id must not be empty", field).WithField(field)
	}
	return ID(field, v)
}
