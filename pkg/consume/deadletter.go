package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter stores a message that will not be retried, with the reason,
// somewhere it can be inspected and replayed. It is called before the
// message is terminated; if it returns an error the message is not
// terminated but redelivered later, and DeadLetter is called again, so it
// must be idempotent (DeadLetterTo dedupes by stream sequence). ctx bounds
// the call and is not cancelled by Stop.
type DeadLetter func(ctx context.Context, m jetstream.Msg, reason error) error

// Headers set on a dead-lettered copy.
const (
	// HeaderDeadReason is the error text that got the message dead-lettered,
	// at most MaxReasonBytes, on one line.
	HeaderDeadReason = "Sb-Dead-Reason"
	// HeaderDeadSubject is the subject the message was consumed from.
	HeaderDeadSubject = "Sb-Dead-Subject"
	// HeaderDeadStream and HeaderDeadSequence say where the original is
	// (it stays there in a limits stream; a work-queue stream deletes it
	// on Term).
	HeaderDeadStream   = "Sb-Dead-Stream"
	HeaderDeadSequence = "Sb-Dead-Sequence"
	// HeaderDeadDeliveries is how often the message had been delivered.
	HeaderDeadDeliveries = "Sb-Dead-Deliveries"
	// HeaderDeadTruncated is set when the copy could not carry the
	// original data and headers because they would exceed the size limit
	// of the connection or the dead-letter stream; the original is then
	// only referenced by stream and sequence.
	HeaderDeadTruncated = "Sb-Dead-Truncated"
)

// MaxReasonBytes bounds HeaderDeadReason: headers count against max_payload,
// and a reason (a panic with its stack, an upstream error body) has no
// natural bound.
const MaxReasonBytes = 1024

// DeadLetterTo returns a DeadLetter that publishes a copy of the message
// (data and headers) to subject(m) on js and waits for the stream's ack.
// The copy carries the Sb-Dead-* headers; the original's Nats-* headers
// are dropped, because they are instructions to the server (an expected
// last sequence, a TTL, a schedule) that would make the copy fail or
// behave differently. Its Nats-Msg-Id is derived from the original's
// stream, consumer and sequence, so a repeated attempt after a failure is
// deduplicated by the dead-letter stream. If the copy is too large it is
// published again without the original data and headers.
func DeadLetterTo(js jetstream.JetStream, subject func(jetstream.Msg) string) DeadLetter {
	return func(ctx context.Context, m jetstream.Msg, reason error) error {
		subj := subject(m)
		if subj == "" {
			return errors.New("consume: dead letter: no subject for " + m.Subject())
		}
		dm := nats.NewMsg(subj)
		for k, vs := range m.Headers() {
			if len(k) >= 5 && strings.EqualFold(k[:5], "nats-") {
				continue
			}
			dm.Header[k] = append([]string(nil), vs...)
		}
		dm.Data = m.Data()
		meta := deadMeta(m, reason)
		for k, v := range meta {
			dm.Header.Set(k, v)
		}
		var popts []jetstream.PublishOpt
		if id := deadMsgID(m); id != "" {
			popts = append(popts, jetstream.WithMsgID(id))
		}
		_, err := js.PublishMsg(ctx, dm, popts...)
		if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			small := nats.NewMsg(subj)
			for k, v := range meta {
				small.Header.Set(k, v)
			}
			small.Header.Set(HeaderDeadTruncated, fmt.Sprintf("data (%d bytes) and headers dropped: %v", len(m.Data()), err))
			_, err = js.PublishMsg(ctx, small, popts...)
		}
		if err != nil {
			return fmt.Errorf("consume: dead letter to %s: %w", subj, err)
		}
		return nil
	}
}

func deadMeta(m jetstream.Msg, reason error) map[string]string {
	h := map[string]string{
		HeaderDeadReason:  headerValue(reason.Error(), MaxReasonBytes),
		HeaderDeadSubject: m.Subject(),
	}
	if md, err := m.Metadata(); err == nil {
		h[HeaderDeadStream] = md.Stream
		h[HeaderDeadSequence] = strconv.FormatUint(md.Sequence.Stream, 10)
		h[HeaderDeadDeliveries] = strconv.FormatUint(md.NumDelivered, 10)
	}
	return h
}

// deadMsgID names the dead letter after the original's position. The
// consumer is part of it because two consumers of one stream may each
// dead-letter the same message for their own reasons.
func deadMsgID(m jetstream.Msg) string {
	md, err := m.Metadata()
	if err != nil {
		return ""
	}
	return "dead:" + md.Stream + ":" + md.Consumer + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
}

// headerValue makes s safe as a NATS header value: one line (a CR or LF
// would end the header, and a panic text is full of them), valid UTF-8, at
// most limit bytes.
func headerValue(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	const ellipsis = "…"
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
