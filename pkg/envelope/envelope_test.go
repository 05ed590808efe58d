package envelope_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
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

// TestMarshalJSONMatchesProtojson checks the hand-written JSON rendering
// against protojson itself (the oracle), field by field, for an event with
// every field set; only payload differs by design (a JSON value, not base64).
func TestMarshalJSONMatchesProtojson(t *testing.T) {
	for _, nanos := range []int32{0, 123000000, 123456000, 123456789} {
		ev := &sbv1.TriggerEvent{
			Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Project: "p", Kind: sbv1.Kind_REQUEST, Name: "n", User: "u",
			Credential: "c", Integration: "i", Payload: []byte(`{"a":[1,2]}`),
			Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{Method: "POST", Headers: map[string]*sbv1.Values{"x-a": {Values: []string{"1", "2"}}},
				Query: map[string]*sbv1.Values{"q": {Values: []string{"v"}}}, Body: []byte("raw\x00body"), ContentType: "text/plain"}},
			OccurredAt:     &timestamppb.Timestamp{Seconds: 1700000000, Nanos: nanos},
			ReceivedAt:     &timestamppb.Timestamp{Seconds: 1700000001},
			IdempotencyKey: "k", Reply: "_INBOX.x", Trace: "00-abc", Workflow: "w", ReplayOf: "run_x", Hops: 3,
		}
		got, err := envelope.MarshalJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		noPayload := proto.Clone(ev).(*sbv1.TriggerEvent)
		noPayload.Payload = nil
		sameAsProtojson(t, got, noPayload, map[string]any{"a": []any{1.0, 2.0}})
		back, err := envelope.DecodeJSON(got)
		if err != nil || !proto.Equal(back, ev) {
			t.Fatalf("round trip: %v\n%v\n%v", err, back, ev)
		}
	}
}

// Every kind's detail renders as protojson renders it and decodes back.
func TestMarshalJSONDetails(t *testing.T) {
	for name, set := range map[string]func(*sbv1.TriggerEvent){
		"schedule": func(ev *sbv1.TriggerEvent) {
			ev.Detail = &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{Workflow: "w", Zone: "Europe/Berlin",
				NominalTime: &timestamppb.Timestamp{Seconds: 1700000000}, Shard: 3, Shards: 64}}
		},
		"provider": func(ev *sbv1.TriggerEvent) {
			ev.Detail = &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{EventType: "contact.creation",
				EventId: "e1", ProviderAccountId: "acct", Source: "webhook"}}
		},
		"lifecycle": func(ev *sbv1.TriggerEvent) {
			ev.Detail = &sbv1.TriggerEvent_Lifecycle{Lifecycle: &sbv1.LifecycleTransition{Event: "credential.invalid", Revision: "k@7"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ev := &sbv1.TriggerEvent{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Project: "p", Kind: sbv1.Kind_SCHEDULE, Hops: 1}
			set(ev)
			got, err := envelope.MarshalJSON(ev)
			if err != nil {
				t.Fatal(err)
			}
			sameAsProtojson(t, got, ev, nil)
			back, err := envelope.DecodeJSON(got)
			if err != nil || !proto.Equal(back, ev) {
				t.Fatalf("round trip: %v\n%v\n%v", err, back, ev)
			}
		})
	}
}

// sameAsProtojson checks that got is, as JSON, what protojson renders for ev
// — with payload, if given, as the plain JSON value MarshalJSON writes
// where protojson would write base64.
func sameAsProtojson(t *testing.T, got []byte, ev *sbv1.TriggerEvent, payload any) {
	t.Helper()
	ref, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ref, &w); err != nil {
		t.Fatal(err)
	}
	if payload != nil {
		w["payload"] = payload
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("\n got %s\nwant %s", got, ref)
	}
}

// TestRequestBodyJSON: a request body that is a JSON object or array is
// shown as JSON (run history, decision records), anything else as base64;
// DecodeJSON reads both back to the same body, which replays start from.
func TestRequestBodyJSON(t *testing.T) {
	for _, c := range []struct {
		name, body string
		shownAs    string // the "body" field as MarshalJSON writes it
	}{
		{"object", `{"item":"pen","qty":4}`, `{"item":"pen","qty":4}`},
		{"array", `[1,2]`, `[1,2]`},
		{"JSON string", `"pen"`, `"InBlbiI="`},
		{"text", `item=pen`, `"aXRlbT1wZW4="`},
		{"invalid JSON", `{"item"`, `"eyJpdGVtIg=="`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := &sbv1.TriggerEvent{Id: envelope.NewID(), Project: "dev", Kind: sbv1.Kind_REQUEST, Workflow: "quote",
				Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{Method: "POST", Body: []byte(c.body), ContentType: "application/json"}}}
			b, err := envelope.MarshalJSON(ev)
			if err != nil {
				t.Fatal(err)
			}
			var shown struct {
				Request struct {
					Body json.RawMessage `json:"body"`
				} `json:"request"`
			}
			if err := json.Unmarshal(b, &shown); err != nil {
				t.Fatal(err)
			}
			if string(shown.Request.Body) != c.shownAs {
				t.Fatalf("body shown as %s, want %s", shown.Request.Body, c.shownAs)
			}
			back, err := envelope.DecodeJSON(b)
			if err != nil {
				t.Fatalf("DecodeJSON(%s): %v", b, err)
			}
			if got := string(back.GetRequest().GetBody()); got != c.body {
				t.Fatalf("body read back as %q, want %q", got, c.body)
			}
		})
	}
}
