package wire

import "github.com/nats-io/nats.go"

// Fixed bounds that the budgets are computed from. They are constants, not
// configuration: a producer and a consumer of the same record must agree on
// them without talking to each other.
const (
	// DefaultMaxPayload is a stock nats-server's max_payload (1 MB), used when
	// the real value is not known yet (a connection still being retried).
	DefaultMaxPayload = 1 << 20
	// MaxHeaderHeadroom is the most of max_payload kept for headers. Ours
	// are a few hundred bytes; a dead letter copies the original headers and
	// adds a reason, and JetStream refuses headers over 64 KiB in any case.
	MaxHeaderHeadroom = 16 << 10
	// MaxInline is the ceiling of Budgets.Inline.
	MaxInline = 64 << 10
	// MaxPreview is the ceiling of Budgets.Preview.
	MaxPreview = 512
	// MaxHeaderValue is the ceiling of Budgets.HeaderValue.
	MaxHeaderValue = 1 << 10

	// MaxIDLen bounds every id that reaches a subject, a KV key or a
	// decision candidate: workflow, user and credential ids.
	MaxIDLen = 200
	// MaxCandidateMessage bounds a decision candidate's free-text message
	// (cut it with Prefix); the page size below relies on it.
	MaxCandidateMessage = 256

	// jsonEscape is the worst growth of a string in encoding/json: a
	// control character, '<', '>', '&' or an invalid byte becomes a
	// six-byte \uXXXX escape.
	jsonEscape = 6
	// candidateFixed covers a candidate's keys, quotes and separators and
	// its plain-ASCII fields (outcome ≤ 16, run id ≤ 64, reason ≤ 64 bytes;
	// a schedule run's zone ≤ 64, zone reason ≤ 64, start time ≤ 48 and the
	// run it waits for ≤ 64, with their keys).
	candidateFixed = 128 + 16 + 64 + 64 + 64 + 64 + 48 + 64 + 64
	// CandidateMaxJSON is the largest JSON encoding of one decision
	// candidate: three ids and a message, each escaped at worst.
	CandidateMaxJSON = candidateFixed + jsonEscape*(3*MaxIDLen+MaxCandidateMessage)
	// decisionFixed covers a decision record's fields other than its
	// candidates and its trigger: ids, names, timestamps, an error.
	decisionFixed = 16 << 10
)

// Budgets are the size limits of what Switchboard publishes, derived from the
// server's max_payload. Every producer checks its record against them before
// publishing, so a record that cannot fit fails once, permanently, with a
// message naming its size — instead of a publish that fails for size on
// every redelivery.
//
// The zero value is not usable; build one with BudgetsFor or FromConn.
type Budgets struct {
	// MaxPayload is the server's max_payload the rest is derived from.
	MaxPayload int
	// Headers is the room kept for a message's headers: MaxPayload minus
	// Headers is what a body may use.
	Headers int
	// Record is the largest record body (protobuf envelope, JSON snapshot,
	// decision page) a producer publishes. Headers come on top.
	Record int
	// Inline is the largest single value — a step's input or output, a
	// request or response body — kept inline in a record; a larger one goes
	// to the blob store (pkg/blob) and the record keeps a reference. It is at
	// most Record/8 so that a run snapshot holding the trigger and several
	// such values still fits in Record; a snapshot writer must still check
	// the total and spill more values when a run has many steps.
	Inline int
	// Preview is how many bytes of a spilled value the record keeps next to
	// the reference, so the run history shows what the value began with.
	Preview int
	// DecisionPage is how many candidates one decision record page holds:
	// a page of DecisionPage candidates of CandidateMaxJSON bytes each, the
	// decision's own fields and a trigger of up to Inline bytes fit in Record.
	// A fan-out to more candidates is written as several pages.
	DecisionPage int
	// HeaderValue is the longest free-text header value (a dead-letter
	// reason). Several such headers fit in Headers, and a dead letter, which
	// copies every header of the original, still fits.
	HeaderValue int
}

// BudgetsFor derives the budgets from a server's max_payload. maxPayload <= 0
// (unknown) means DefaultMaxPayload. Servers below 64 KiB are not supported:
// the budgets are computed, but a decision page of one candidate may not fit.
func BudgetsFor(maxPayload int64) Budgets {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	mp := int(maxPayload)
	b := Budgets{MaxPayload: mp}
	b.Headers = min(MaxHeaderHeadroom, mp/8)
	b.Record = mp - b.Headers
	b.Inline = min(MaxInline, b.Record/8)
	b.Preview = min(MaxPreview, b.Inline/8)
	b.HeaderValue = min(MaxHeaderValue, b.Headers/8)
	b.DecisionPage = max(1, (b.Record-b.Inline-decisionFixed)/CandidateMaxJSON)
	return b
}

// FromConn derives the budgets from the max_payload the server announced to
// nc. A connection that has not reached a server yet (RetryOnFailedConnect)
// reports 0, which gives the stock 1 MB budgets: call FromConn again after
// connecting if the server may be configured differently.
func FromConn(nc *nats.Conn) Budgets {
	return BudgetsFor(nc.MaxPayload())
}
