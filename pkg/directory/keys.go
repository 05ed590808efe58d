package directory

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"
	_ "time/tzdata" // zone names validate the same on every machine, scratch images included
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Size budgets. A stock nats-server accepts messages of at most 1 MB; every
// record stays far below, and input over a budget is refused with a
// *ValidationError naming the field instead of failing at publish time.
const (
	// MaxIDBytes bounds project, user, credential and provider account ids,
	// so every key stays a short valid subject: the wire's one id limit.
	MaxIDBytes = wire.MaxIDLen
	// MaxMetadataBytes bounds a user's metadata (JSON-encoded).
	MaxMetadataBytes = 16 << 10
	// MaxSettingsBytes bounds one credential's settings (JSON-encoded).
	MaxSettingsBytes = 16 << 10
	// MaxSecretBytes bounds one credential's secret (JSON-encoded).
	MaxSecretBytes = 16 << 10
	// MaxCredentialsPerUser bounds the credentials of one user.
	MaxCredentialsPerUser = 64
	// MaxWorkflowOverrides bounds the per-workflow overrides of one user or credential.
	MaxWorkflowOverrides = 512
	// MaxRecordBytes bounds a user's primary record (user + credentials).
	MaxRecordBytes = 256 << 10
	// MaxZoneBytes bounds a time zone name taken from metadata.
	MaxZoneBytes = 64
)

// Shards is the fixed number of enrollment shards; a user's shard is
// ShardOf(user). Several routers can split one fan-out by shard.
const Shards = 64

// MetadataTimezone is the user metadata key holding the user's IANA time zone.
const MetadataTimezone = "timezone"

// ErrNotFound is returned for a missing user or credential.
var ErrNotFound = errors.New("directory: not found")

// ValidationError is input the directory refuses: a bad id, a value over
// its size budget. Field names the input ("user", "credentials[0].settings").
type ValidationError struct {
	Field   string
	Code    string // invalid_id, invalid_field, too_large
	Message string
}

func (e *ValidationError) Error() string { return "directory: " + e.Field + ": " + e.Message }

func invalid(field, code, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
}

// checkID validates a free-form id: non-empty UTF-8 of at most MaxIDBytes.
func checkID(field, v string) error {
	switch {
	case v == "":
		return invalid(field, "invalid_id", "the %s id must not be empty", field)
	case len(v) > MaxIDBytes:
		return invalid(field, "invalid_id", "the %s id is longer than %d bytes", field, MaxIDBytes)
	case !utf8.ValidString(v):
		return invalid(field, "invalid_id", "the %s id is not valid UTF-8", field)
	}
	return nil
}

// checkSize refuses a JSON value over max bytes.
func checkSize(field string, v any, max int) error {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return invalid(field, "invalid_field", "%s cannot be encoded as JSON: %v", field, err)
	}
	if len(b) > max {
		return invalid(field, "too_large", "%s is %d bytes, over the limit of %d", field, len(b), max)
	}
	return nil
}

// Key layout of the sb_directory bucket (docs/directory.md). Every free-form
// id goes through subjects.Token, so any id of at most MaxIDBytes makes a
// valid key of bounded length; the empty string becomes "=".
const (
	prefixUser       = "u" // u.<p>.<U>                     primary record: user + credentials
	prefixAccount    = "a" // a.<p>.<I>.<A>.<U>.<C>         credentials by provider account id
	prefixToken      = "t" // t.<token>                     credential by webhook token
	prefixEnrollment = "e" // e.<p>.<I>.<Z>.<SS>.<bb>.<U>.<C> enrollment by integration, zone, shard, sub-shard
	prefixZone       = "z" // z.<p>.<I>.<Z>                 zones in use (never removed)
	prefixSecret     = "s" // s.<p>.<U>.<C>.<ver>           in sb_secrets: one secret version
)

func tok(s string) string { return subjects.Token(s) }

func userKey(p, u string) string { return prefixUser + "." + tok(p) + "." + tok(u) }

func accountPrefix(p, integration, account string) string {
	return prefixAccount + "." + tok(p) + "." + tok(integration) + "." + tok(account)
}

func accountKey(p, integration, account, u, c string) string {
	return accountPrefix(p, integration, account) + "." + tok(u) + "." + tok(c)
}

func tokenKey(token string) string { return prefixToken + "." + token }

func enrollmentPrefix(p, integration, zone string, shard int) string {
	return prefixEnrollment + "." + tok(p) + "." + tok(integration) + "." + tok(zone) + "." + shardToken(shard)
}

// subShards splits each shard's keys so that one multi_last read of a
// sub-shard matches far fewer than the server's maxMultiLast keys: at 16M
// entries in one (project, integration, zone) a sub-shard holds ~1,000.
const subShards = 256

func enrollmentSub(p, integration, zone string, shard, sub int) string {
	const hex = "0123456789abcdef"
	return enrollmentPrefix(p, integration, zone, shard) + "." + string([]byte{hex[sub>>4], hex[sub&15]})
}

func enrollmentKey(p, integration, zone, u, c string) string {
	h := userHash(u)
	return enrollmentSub(p, integration, zone, int(h%Shards), int(h/Shards%subShards)) + "." + tok(u) + "." + tok(c)
}

func zonePrefix(p, integration string) string {
	return prefixZone + "." + tok(p) + "." + tok(integration)
}

func zoneKey(p, integration, zone string) string { return zonePrefix(p, integration) + "." + tok(zone) }

func secretPrefix(p, u, c string) string {
	return prefixSecret + "." + tok(p) + "." + tok(u) + "." + tok(c)
}

func shardToken(shard int) string {
	if shard < 10 {
		return "0" + strconv.Itoa(shard)
	}
	return strconv.Itoa(shard)
}

// ShardOf is the enrollment shard of user u: a stable hash of the id.
func ShardOf(u string) int { return int(userHash(u) % Shards) }

func userHash(u string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(u))
	return h.Sum32()
}

// zones validates time zone names and remembers the valid ones (there are
// a few hundred), so a million users do not load the zone database a
// million times. Invalid names are not remembered: they cost one failed
// lookup each and cannot grow the map.
type zones struct {
	mu    sync.RWMutex
	valid map[string]bool
}

const maxRememberedZones = 4096

// of returns user u's enrollment zone: metadata["timezone"] when it names
// an IANA zone, else "" (the workflow's fallback zone).
func (z *zones) of(u *User) string {
	if u == nil {
		return ""
	}
	name, _ := u.Metadata[MetadataTimezone].(string)
	if name == "" || len(name) > MaxZoneBytes || name == "Local" {
		return ""
	}
	z.mu.RLock()
	ok := z.valid[name]
	z.mu.RUnlock()
	if ok {
		return name
	}
	if _, err := time.LoadLocation(name); err != nil {
		return ""
	}
	z.mu.Lock()
	if z.valid == nil || len(z.valid) >= maxRememberedZones {
		z.valid = map[string]bool{}
	}
	z.valid[name] = true
	z.mu.Unlock()
	return name
}

// validIntegration reports whether s can be a credential's integration.
func validIntegration(s string) bool { return workflow.ValidID(s) }
