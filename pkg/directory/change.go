package directory

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// Reading the bucket's change stream. The connection-lifecycle role derives
// lifecycle events from the stored user records themselves (a durable
// consumer on the KV stream, so a crash between a write and its event
// cannot lose the event); these helpers keep it from depending on the
// record's encoding.

// UserRecordSubjects is the subject filter, on the bucket's KV stream
// (StreamName), of every primary user record: the changes lifecycle events
// are derived from.
const UserRecordSubjects = "$KV." + subjects.BucketDirectory + "." + prefixUser + ".>"

// StreamName is the directory bucket's JetStream stream.
const StreamName = "KV_" + subjects.BucketDirectory

// StoredUser is one decoded primary record: the user and each of its
// credentials (without secrets) with the version of its stored secret.
type StoredUser struct {
	User        *User
	Credentials map[string]*StoredCredential
}

// StoredCredential is a credential as stored: SecretVersion changes with
// every new secret (a reconnect, a refreshed OAuth token).
type StoredCredential struct {
	*Credential
	SecretVersion string
}

// DecodeUserRecord decodes the value of a primary record key.
func DecodeUserRecord(raw []byte) (*StoredUser, error) {
	rec, err := decodeRecord(raw)
	if err != nil {
		return nil, err
	}
	u := rec.User
	out := &StoredUser{User: &u, Credentials: make(map[string]*StoredCredential, len(rec.Creds))}
	for id, sc := range rec.Creds {
		c := sc.Credential
		c.Secret, c.HasSecret = nil, sc.SecretVersion != ""
		out.Credentials[id] = &StoredCredential{Credential: &c, SecretVersion: sc.SecretVersion}
	}
	return out, nil
}

// UserRecordKey returns the primary record key within a change's subject
// ("u.<p>.<U>"), and false for any other key of the bucket.
func UserRecordKey(subject string) (string, bool) {
	key, ok := strings.CutPrefix(subject, "$KV."+subjects.BucketDirectory+".")
	if !ok || !strings.HasPrefix(key, prefixUser+".") || strings.Count(key, ".") != 2 {
		return "", false
	}
	return key, true
}

// Change is one revision of a user's primary record read from the change
// stream.
type Change struct {
	Key  string    // "u.<p>.<U>", the tokens as stored
	Rev  uint64    // the stream sequence: the record's revision
	At   time.Time // when the server stored it
	Next *StoredUser
	// Next is nil when the revision deleted or purged the record.
}

// DecodeChange reads one message of the change stream. ok is false for a
// key that is not a primary user record (index keys share the stream);
// an error is a message that will never decode (no metadata, a corrupt
// record), for the consumer to treat as permanent.
func DecodeChange(m jetstream.Msg) (c Change, ok bool, err error) {
	key, ok := UserRecordKey(m.Subject())
	if !ok {
		return Change{}, false, nil
	}
	md, err := m.Metadata()
	if err != nil {
		return Change{}, true, fmt.Errorf("change of %s without metadata: %w", key, err)
	}
	c = Change{Key: key, Rev: md.Sequence.Stream, At: md.Timestamp}
	if m.Headers().Get(kvOpHeader) == "" && len(m.Data()) > 0 {
		if c.Next, err = DecodeUserRecord(m.Data()); err != nil {
			return Change{}, true, fmt.Errorf("%s@%d: %w", key, c.Rev, err)
		}
	}
	return c, true, nil
}

// RecordKey is the primary record key of user u of project p.
func RecordKey(p, u string) string { return userKey(p, u) }
