package envelope_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

func sample() *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{
		Id: envelope.NewID(), Project: "dev", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created",
		User: "u1", Payload: []byte(`{"email":"a@b.c","n":12345678901234567890}`),
		ReceivedAt: timestamppb.New(time.Unix(1700000000, 0)),
	}
}

func TestRoundTrip(t *testing.T) {
	ev := sample()
	pb, err := envelope.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	js, err := envelope.MarshalJSON(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ct string
		data     []byte
	}{
		{"protobuf", envelope.ContentTypeProto, pb},
		{"json", envelope.ContentTypeJSON, js},
		{"json sniffed", "", js},
		{"json with params", "application/json; charset=utf-8", js},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := envelope.Decode(tc.data, tc.ct)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, ev) {
				t.Fatalf("got %v, want %v", got, ev)
			}
		})
	}
}

func TestDecodeJSONPayloadForms(t *testing.T) {
	for _, tc := range []struct {
		name, in, payload string
	}{
		{"object", `{"kind":"APP_EVENT","payload":{"a":1}}`, `{"a":1}`},
		{"array", `{"kind":"APP_EVENT","payload":[1,2]}`, `[1,2]`},
		{"number", `{"kind":"APP_EVENT","payload":7}`, `7`},
		{"base64 string", `{"kind":"APP_EVENT","payload":"eyJhIjoxfQ=="}`, `{"a":1}`},
		{"absent", `{"kind":"APP_EVENT"}`, ``},
		{"null", `{"kind":"APP_EVENT","payload":null}`, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := envelope.DecodeJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Payload) != tc.payload {
				t.Fatalf("payload %q, want %q", ev.Payload, tc.payload)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, ct, in string }{
		{"not json", "application/json", `{not json`},
		{"unknown field", "application/json", `{"kind":"APP_EVENT","bogus":1}`},
		{"bad kind", "application/json", `{"kind":"NOPE"}`},
		{"base64 not json", "application/json", `{"payload":"aGVsbG8="}`},
		{"garbage protobuf", envelope.ContentTypeProto, "\xff\xff\xff"},
		{"unsupported type", "text/plain", `hello`},
		{"no type, not json", "", `hello`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := envelope.Decode([]byte(tc.in), tc.ct)
			if !errors.Is(err, envelope.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDerivedIDIsStable(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	a, b := envelope.DerivedID(ts, "x", "y"), envelope.DerivedID(ts, "x", "y")
	if a != b || a == envelope.DerivedID(ts, "x", "z") || a == envelope.DerivedID(ts, "xy") {
		t.Fatalf("derived ids: %s %s", a, b)
	}
}

// FuzzDecode drives the envelope decoder with arbitrary bytes in every
// accepted format: it must never panic, and whatever it accepts must carry
// a valid JSON payload and survive a protobuf round trip.
func FuzzDecode(f *testing.F) {
	pb, _ := envelope.Marshal(sample())
	js, _ := envelope.MarshalJSON(sample())
	f.Add(pb, 0)
	f.Add(js, 1)
	f.Add(js, 2)
	f.Add([]byte(`{"kind":"APP_EVENT","payload":{"a":[1,{"b":null}]}}`), 1)
	f.Add([]byte(`{"payload":"e30="}`), 2)
	cts := []string{envelope.ContentTypeProto, envelope.ContentTypeJSON, ""}
	f.Fuzz(func(t *testing.T, data []byte, ct int) {
		if ct < 0 {
			ct = -ct
		}
		ev, err := envelope.Decode(data, cts[ct%len(cts)])
		if err != nil {
			if !errors.Is(err, envelope.ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		if cts[ct%len(cts)] != envelope.ContentTypeProto && len(ev.Payload) > 0 && !json.Valid(ev.Payload) {
			t.Fatalf("accepted invalid JSON payload %q", ev.Payload)
		}
		b, err := envelope.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := envelope.Decode(b, envelope.ContentTypeProto); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
