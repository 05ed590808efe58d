package directory

import (
	"strings"

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

// RecordKey is the primary record key of user u of project p.
func RecordKey(p, u string) string { return userKey(p, u) }
