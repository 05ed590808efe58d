// Package envelope encodes and decodes the trigger event envelope
// (proto/switchboard/v1/envelope.proto) on the wire.
//
// Publishers inside Switchboard send protobuf with the header
// Content-Type: application/protobuf. Any NATS client may instead publish
// JSON (protojson field names, Content-Type: application/json or no header at
// all); in that form "payload" may be written as a plain JSON value instead of
// base64, which is what a person typing `nats pub` expects.
package envelope

import (
	"crypto/sha256"
	"time"

	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/oklog/ulid/v2"
	"strings"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Header names and content types used on trigger messages.
const (
	HeaderContentType = "Content-Type"
	ContentTypeProto  = "application/protobuf"
	ContentTypeJSON   = "application/json"
	// HeaderCatalogRevision carries the catalog revision the publisher had
	// seen, so a consumer can wait until its own copy is at least as new.
	HeaderCatalogRevision = "Sb-Catalog-Rev"
)

// ErrMalformed is wrapped by every decoding error caused by the message itself.
var ErrMalformed = errors.New("malformed envelope")

// Marshal encodes ev as protobuf.
func Marshal(ev *sbv1.TriggerEvent) ([]byte, error) {
	b, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("envelope: marshal: %w", err)
	}
	return b, nil
}

// NewMsg builds a NATS message carrying ev as protobuf on subject.
func NewMsg(subject string, ev *sbv1.TriggerEvent) (*nats.Msg, error) {
	b, err := Marshal(ev)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderContentType, ContentTypeProto)
	m.Data = b
	return m, nil
}

// Decode decodes data according to contentType: protobuf for
// application/protobuf, JSON for application/json. With no content type the
// format is sniffed: a body starting with '{' is JSON.
func Decode(data []byte, contentType string) (*sbv1.TriggerEvent, error) {
	ct := strings.ToLower(strings.TrimSpace(contentType))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	switch {
	case ct == ContentTypeProto || ct == "application/x-protobuf":
		ev := &sbv1.TriggerEvent{}
		if err := proto.Unmarshal(data, ev); err != nil {
			return nil, fmt.Errorf("%w: protobuf: %v", ErrMalformed, err)
		}
		return ev, nil
	case ct == ContentTypeJSON, ct == "" && looksJSON(data):
		return DecodeJSON(data)
	case ct == "":
		return nil, fmt.Errorf("%w: no Content-Type and the body is not JSON", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported Content-Type %q", ErrMalformed, contentType)
	}
}

func looksJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// DecodeJSON decodes the protojson form, accepting a plain JSON value for payload.
func DecodeJSON(data []byte) (*sbv1.TriggerEvent, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrMalformed, err)
	}
	if raw, ok := fields["payload"]; ok {
		t := bytes.TrimSpace(raw)
		// A JSON string stays as it is: protojson reads it as base64, as the
		// proto3 JSON mapping defines for bytes. Anything else is the payload itself.
		if len(t) > 0 && t[0] != '"' && !bytes.Equal(t, []byte("null")) {
			enc, _ := json.Marshal(base64.StdEncoding.EncodeToString(t))
			fields["payload"] = enc
			var err error
			if data, err = json.Marshal(fields); err != nil {
				return nil, fmt.Errorf("%w: json: %v", ErrMalformed, err)
			}
		}
	}
	if raw, ok := fields["request"]; ok {
		// A request body shown as JSON (bodyJSON) goes back to base64 for
		// protojson.
		var req map[string]json.RawMessage
		if json.Unmarshal(raw, &req) == nil && jsonContainer(req["body"]) {
			req["body"], _ = json.Marshal(base64.StdEncoding.EncodeToString(req["body"]))
			var err error
			if fields["request"], err = json.Marshal(req); err != nil {
				return nil, fmt.Errorf("%w: json: %v", ErrMalformed, err)
			}
			if data, err = json.Marshal(fields); err != nil {
				return nil, fmt.Errorf("%w: json: %v", ErrMalformed, err)
			}
		}
	}
	ev := &sbv1.TriggerEvent{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(ev.Payload) > 0 && !json.Valid(ev.Payload) {
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrMalformed)
	}
	return ev, nil
}

// MarshalJSON renders ev in the protojson form DecodeJSON accepts, with
// payload shown as a JSON value, for APIs, logs and decision records.
//
// It writes the fields directly instead of going through protojson: the
// router renders every routed event this way, and the generic path (clone,
// protojson, re-decode to splice the payload in) cost several times more.
func MarshalJSON(ev *sbv1.TriggerEvent) ([]byte, error) {
	var err error
	j := jsonEvent{
		ID: ev.Id, Project: ev.Project, Name: ev.Name, User: ev.User, Credential: ev.Credential,
		Integration: ev.Integration, IdempotencyKey: ev.IdempotencyKey, Reply: ev.Reply, Trace: ev.Trace,
		Workflow: ev.Workflow, ReplayOf: ev.ReplayOf, Hops: ev.Hops,
		OccurredAt: timestamp(ev.OccurredAt), ReceivedAt: timestamp(ev.ReceivedAt),
	}
	if ev.Kind != sbv1.Kind_KIND_UNSPECIFIED {
		j.Kind = ev.Kind.String()
	}
	switch {
	case len(ev.Payload) == 0:
	case json.Valid(ev.Payload):
		j.Payload = json.RawMessage(ev.Payload)
	default:
		// Not JSON (only possible from a hand-made protobuf): keep the
		// proto3 JSON mapping of bytes, base64.
		b, _ := json.Marshal(ev.Payload)
		j.Payload = b
	}
	switch d := ev.Detail.(type) {
	case *sbv1.TriggerEvent_Request:
		r := d.Request
		j.Request = &jsonRequest{Method: r.Method, Headers: valuesJSON(r.Headers), Query: valuesJSON(r.Query),
			Body: bodyJSON(r.Body), ContentType: r.ContentType}
	case *sbv1.TriggerEvent_Schedule:
		if j.Schedule, err = protojson.Marshal(d.Schedule); err != nil {
			return nil, fmt.Errorf("envelope: marshal json: %w", err)
		}
	case *sbv1.TriggerEvent_Provider:
		if j.Provider, err = protojson.Marshal(d.Provider); err != nil {
			return nil, fmt.Errorf("envelope: marshal json: %w", err)
		}
	case *sbv1.TriggerEvent_Lifecycle:
		if j.Lifecycle, err = protojson.Marshal(d.Lifecycle); err != nil {
			return nil, fmt.Errorf("envelope: marshal json: %w", err)
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("envelope: marshal json: %w", err)
	}
	return b, nil
}

// jsonEvent mirrors TriggerEvent with protojson's field names and omission
// rules (zero values are left out).
type jsonEvent struct {
	ID             string          `json:"id,omitempty"`
	Project        string          `json:"project,omitempty"`
	Kind           string          `json:"kind,omitempty"`
	Name           string          `json:"name,omitempty"`
	User           string          `json:"user,omitempty"`
	Credential     string          `json:"credential,omitempty"`
	Integration    string          `json:"integration,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Request        *jsonRequest    `json:"request,omitempty"`
	OccurredAt     string          `json:"occurredAt,omitempty"`
	ReceivedAt     string          `json:"receivedAt,omitempty"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	Reply          string          `json:"reply,omitempty"`
	Trace          string          `json:"trace,omitempty"`
	Workflow       string          `json:"workflow,omitempty"`
	ReplayOf       string          `json:"replayOf,omitempty"`
	Hops           uint32          `json:"hops,omitempty"`
	// The rarer details go through protojson: they are small and not on
	// the hot path.
	Schedule  json.RawMessage `json:"schedule,omitempty"`
	Provider  json.RawMessage `json:"provider,omitempty"`
	Lifecycle json.RawMessage `json:"lifecycle,omitempty"`
}

type jsonRequest struct {
	Method      string                `json:"method,omitempty"`
	Headers     map[string]jsonValues `json:"headers,omitempty"`
	Query       map[string]jsonValues `json:"query,omitempty"`
	Body        json.RawMessage       `json:"body,omitempty"`
	ContentType string                `json:"contentType,omitempty"`
}

// bodyJSON shows a request body that is a JSON object or array as that
// JSON, so run history and decision records are readable; any other body
// keeps the proto3 JSON mapping of bytes (a base64 string). Only objects
// and arrays: a JSON string body would read back as base64, and
// DecodeJSON must turn every rendering back into the same bytes (replays
// start from it).
func bodyJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if jsonContainer(b) {
		return b
	}
	enc, _ := json.Marshal(b)
	return enc
}

// jsonContainer reports whether b is a valid JSON object or array.
func jsonContainer(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(b)
}

type jsonValues struct {
	Values []string `json:"values,omitempty"`
}

func valuesJSON(m map[string]*sbv1.Values) map[string]jsonValues {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]jsonValues, len(m))
	for k, v := range m {
		out[k] = jsonValues{Values: v.GetValues()}
	}
	return out
}

// timestamp renders t as protojson does: RFC 3339 in UTC with 0, 3, 6 or 9
// fractional digits.
func timestamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	ts := time.Unix(t.GetSeconds(), int64(t.GetNanos())).UTC()
	out := ts.Format("2006-01-02T15:04:05")
	switch n := t.GetNanos(); {
	case n == 0:
	case n%1_000_000 == 0:
		out += fmt.Sprintf(".%03d", n/1_000_000)
	case n%1_000 == 0:
		out += fmt.Sprintf(".%06d", n/1_000)
	default:
		out += fmt.Sprintf(".%09d", n)
	}
	return out + "Z"
}

// NewID returns a fresh ULID for a trigger event.
func NewID() string { return ulid.Make().String() }

// DerivedID returns a ULID whose time part is t and whose entropy is a hash
// of parts: the same inputs always give the same id, so an event created
// again after a crash (an emit step, a hand-published envelope) dedupes.
func DerivedID(t time.Time, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	_ = id.SetEntropy(h.Sum(nil)[:10])
	return id.String()
}
