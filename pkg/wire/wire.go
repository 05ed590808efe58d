// Package wire declares, once, what every Switchboard producer and consumer
// must agree on about a NATS message: the header names, the size budgets
// derived from the server's max_payload, and which publish errors are
// permanent (dead-letter the message) rather than transient (retry later).
//
// It depends on nothing of Switchboard's, so any package — including the
// ones whose constants it mirrors (envelope, runs, the router) — can import it.
package wire

import "github.com/nats-io/nats.go"

// Header names Switchboard puts on NATS messages.
//
// nats.Header is case-sensitive (unlike http.Header): always use these
// constants, never a differently cased literal.
const (
	// HeaderContentType says how the body is encoded (ContentTypeProto or
	// ContentTypeJSON). Trigger messages without it are sniffed.
	HeaderContentType = "Content-Type"
	// HeaderMsgID is JetStream's dedupe id; a trigger's is its event id, a
	// run's its run id. Republishing with the same id inside the stream's
	// duplicate window stores nothing new.
	HeaderMsgID = nats.MsgIdHdr
	// HeaderCatalogRevision carries the catalog revision the publisher had
	// seen, so a consumer can wait until its own copy is at least as new.
	HeaderCatalogRevision = "Sb-Catalog-Rev"
	// HeaderHops is the depth of a trigger in an emit chain: absent or 0 for a
	// trigger from outside, parent+1 for one a workflow emitted. The router
	// stops a chain at a configured depth, so a workflow that emits the event
	// it is triggered by cannot loop forever.
	HeaderHops = "Sb-Hops"
	// HeaderTraceparent and HeaderTracestate carry W3C trace context. They
	// are lower-case because the W3C propagator reads and writes them so and
	// nats.Header does not fold case.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"

	// Run messages (RUNS) carry the trigger envelope as their body; these say
	// which run of it the message is.
	HeaderRunID      = "Sb-Run-Id"
	HeaderWorkflow   = "Sb-Workflow"
	HeaderUser       = "Sb-User"
	HeaderCredential = "Sb-Credential"

	// HeaderDeadReason says why a message was dead-lettered (free text,
	// bounded by Budgets.HeaderValue; see HeaderText), HeaderDeadSubject
	// where it came from.
	HeaderDeadReason  = "Sb-Dead-Reason"
	HeaderDeadSubject = "Sb-Dead-Subject"

	// HeaderRecord tells the two kinds of RUN_EVENTS records apart; its
	// values are RecordRun and RecordDecision.
	HeaderRecord = "Sb-Record"
)

// Values of HeaderContentType and HeaderRecord.
const (
	ContentTypeProto = "application/protobuf"
	ContentTypeJSON  = "application/json"

	RecordRun      = "run"
	RecordDecision = "decision"
)
