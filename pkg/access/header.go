package access

import (
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

// MaxIDLen bounds user and credential ids taken from requests.
const MaxIDLen = 200

// ID checks a user or credential id taken from a header or body: ids end up
// in protobuf strings, KV keys and logs, so they must be valid UTF-8 and
// bounded. An empty value is allowed (it means "not given").
func ID(field, v string) error {
	if len(v) > MaxIDLen {
		return apierr.BadRequest("invalid_field", "%s is longer than %d bytes", field, MaxIDLen).WithField(field)
	}
	if !utf8.ValidString(v) {
		return apierr.BadRequest("invalid_field", "%s is not valid UTF-8", field).WithField(field)
	}
	return nil
}
