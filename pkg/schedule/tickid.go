package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// MaxTickIDLen bounds a tick id: 63-byte project and workflow ids, the
// longest IANA name (32 bytes) and a 20-byte time fit well within it.
const MaxTickIDLen = 200

// TickID is the Nats-Msg-Id of one tick of one workflow in one zone:
// "<project>/<workflow>@<zone>@<nominal time, RFC 3339 UTC>", e.g.
// "acme/nightly@Europe/Berlin@2026-03-29T07:00:00Z". Every replica derives
// the same id for the same tick, so JetStream keeps one. An id that would be
// longer than MaxTickIDLen or hold bytes a header cannot carry is replaced
// by "~<hash>@<time>": still deterministic and unique, still bounded.
func TickID(project, workflow, zone string, nominal time.Time) string {
	ts := nominal.UTC().Format(time.RFC3339Nano)
	id := project + "/" + workflow + "@" + zone + "@" + ts
	if len(id) <= MaxTickIDLen && printableASCII(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "~" + hex.EncodeToString(sum[:16]) + "@" + ts
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
