package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTooLarge is matched (errors.Is) by every error of a record, value or
// header over its budget, whether Switchboard or the server found it.
var ErrTooLarge = errors.New("too large")

// ErrUnencodable is matched by an error of a value that cannot be encoded
// (invalid UTF-8 in a protobuf string, a JSON value with a NaN).
var ErrUnencodable = errors.New("cannot be encoded")

// ErrInvalid is matched by an error of a message that breaks a rule of its
// kind (a trigger event without project or id, a header a caller may not
// set): sending it again cannot succeed, so Permanent reports it.
var ErrInvalid = errors.New("invalid message")

// TooLargeError is a record, value or header over its budget. It matches
// ErrTooLarge, and Permanent reports it as permanent.
type TooLargeError struct {
	// What names the thing measured, e.g. "trigger event 01J… on sb.trigger.p.app_event.u1".
	What string
	// Size and Limit are in bytes.
	Size, Limit int
}

// TooLarge returns a *TooLargeError.
func TooLarge(what string, size, limit int) error {
	return &TooLargeError{What: what, Size: size, Limit: limit}
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, over the limit of %d bytes", e.What, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Unencodable wraps an encoding error so that it matches ErrUnencodable and
// Permanent reports it as permanent. A nil err stays nil.
func Unencodable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnencodable, err)
}

// Permanent reports whether publishing the same message again can never
// succeed, so the caller must dead-letter it (or answer 4xx/5xx for good)
// instead of retrying — a message redelivered forever for its size is the
// failure this exists to prevent.
//
// Permanent: the message or a header is too large (nats.ErrMaxPayload, the
// JetStream API errors 10054 "message size exceeds maximum allowed" — the
// stream's MaxMsgSize or the server's max_payload —, 10097 "header size
// exceeds maximum allowed of 64k", and 10077 with the store's "message too
// large"), ErrTooLarge, ErrUnencodable, ErrInvalid, ErrBadHeader, a
// malformed message (bad subject, invalid header name, headers unsupported)
// and JetStream rejections of the message as built: a bad request, a sealed stream, a wrong expected stream,
// last sequence or last msg id, an invalid or disabled per-message TTL, and
// the counter, schedule and batch-publish options misused.
//
// Everything else is transient, on purpose: timeouts (nats.ErrTimeout,
// context deadlines), no responders (nats.ErrNoResponders,
// jetstream.ErrNoStreamResponse — a stream leader being elected), a closed,
// draining or reconnecting connection, JetStream temporarily unavailable
// (10008), a cluster that cannot handle the request or a stream offline
// during a leader change (10009, 10118), too many requests (10167), a
// duplicate still in process (10158), insufficient resources (10023). An
// unknown error is transient too: retrying it is bounded by the consumer's
// MaxDeliver, while calling it permanent could drop a good message.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if permanentClientErr(err) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return permanentCode(int(apiErr.ErrorCode), apiErr.Description)
	}
	// The legacy JetStreamContext API has its own error type.
	var legacy *nats.APIError
	if errors.As(err, &legacy) {
		return permanentCode(int(legacy.ErrorCode), legacy.Description)
	}
	return false
}

// permanentClientErr reports the client-side errors about the message itself.
func permanentClientErr(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnencodable) ||
		errors.Is(err, ErrInvalid) || errors.Is(err, ErrBadHeader) ||
		errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrBadHeaderMsg) || errors.Is(err, nats.ErrHeadersNotSupported) ||
		errors.Is(err, nats.ErrInvalidMsg) || errors.Is(err, jetstream.ErrInvalidSubject) ||
		errors.Is(err, jetstream.ErrInvalidOption) || errors.Is(err, jetstream.ErrAsyncPublishReplySubjectSet)
}

// JetStream API error codes (nats-server errors.json) that reject the
// message as built.
const (
	codeBadRequest              = 10003
	codeStreamNotMatch          = 10060
	codeWrongLastMsgID          = 10070
	codeWrongLastSequence       = 10071
	codeStreamMessageTooLarge   = 10054
	codeStoreFailed             = 10077
	codeHeaderTooLarge          = 10097
	codeStreamSealed            = 10109
	codeWrongLastSeqConstant    = 10164
	codeMsgTTLInvalid           = 10165
	codeMsgTTLDisabled          = 10166
	codeExpectedLastSeqInvalid  = 10193
	codeSourceHeaderNotAllowed  = 10227
	codeCounterFirst            = 10168 // 10168-10172: message counters
	codeCounterLast             = 10172
	codeAtomicFirst             = 10174 // 10174-10177, 10179: atomic publish
	codeAtomicLast              = 10179
	codeAtomicBatchFirst        = 10199 // 10199-10201: atomic publish batch
	codeAtomicBatchLast         = 10201
	codeSchedulesFirst          = 10188 // 10188-10192: message schedules
	codeSchedulesLast           = 10192
	codeSchedulesSource         = 10203
	codeSchedulesScheduler      = 10212
	codeSchedulesTimeZone       = 10223
	codeBatchPublishFirst       = 10205 // 10205-10208: batch publish
	codeBatchPublishLast        = 10208
	storeMsgTooLargeDescription = "message too large"
)

func permanentCode(code int, description string) bool {
	switch code {
	case codeBadRequest, codeStreamNotMatch, codeWrongLastMsgID, codeWrongLastSequence,
		codeStreamMessageTooLarge, codeHeaderTooLarge, codeStreamSealed, codeWrongLastSeqConstant,
		codeMsgTTLInvalid, codeMsgTTLDisabled, codeExpectedLastSeqInvalid, codeSourceHeaderNotAllowed,
		codeSchedulesSource, codeSchedulesScheduler, codeSchedulesTimeZone:
		return true
	case codeStoreFailed:
		// 10077 is also a full disk or a failed write, which pass; only the
		// store refusing the message's size does not.
		return strings.Contains(description, storeMsgTooLargeDescription)
	}
	in := func(lo, hi int) bool { return code >= lo && code <= hi }
	return in(codeCounterFirst, codeCounterLast) || in(codeAtomicFirst, codeAtomicLast) ||
		in(codeAtomicBatchFirst, codeAtomicBatchLast) || in(codeSchedulesFirst, codeSchedulesLast) ||
		in(codeBatchPublishFirst, codeBatchPublishLast)
}
