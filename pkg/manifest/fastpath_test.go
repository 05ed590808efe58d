package manifest

import (
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// The fast JSON parser and the fast expressions only ever answer as
// encoding/json and the expression VM would: these compare them, on
// samples and fuzzed input.

var jsonSeeds = []string{
	`{"id":"evt_1","type":"invoice.paid","account":"acct_1","data":{"object":{"amount":4200,"f":1.5,"big":12345678901234567890,"neg":-0,"e":1e400}}}`,
	`[1,2,[3,{"a":null,"b":true,"c":false}]]`, `"just a string"`, `12`, `-0.5e-3`, `{"a":1,"a":2}`,
	`{"k\u00e9y":"v\/al\ud83d\ude00\ud800"}`, "{\"bad\xffutf8\":\"\xc3\xa9\xed\xa0\x80\"}", ` {} `, `{}}`, `{} ]`, `12x`,
	`01`, `1.`, `[1,]`, `{"a":}`, ``, `   `, `nul`, `truex`, "\"ctl\x01\"", `{"a":"b"`, `[[[[[[[[[[]]]]]]]]]]`,
}

func FuzzParseJSONBody(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseJSONBody(b)
		if !ok {
			return // encoding/json decides
		}
		want, raw := decodeBody(b)
		if !raw || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %#v, encoding/json %#v (raw %v)", b, got, want, raw)
		}
	})
}

func FuzzMayBeForm(f *testing.F) {
	for _, s := range []string{"application/json", "application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded; charset=utf-8", "x-www-form-urlencoded", "application/x-www-form-urlencoded\u212a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if mt, _, _ := mime.ParseMediaType(ct); mt == formType && !mayBeForm(ct) {
			t.Fatalf("%q is %s, yet mayBeForm says no", ct, mt)
		}
	})
}

// vmOnly is w with no fast forms: every expression runs on the VM.
func vmOnly(w *Webhook) *Webhook {
	c := *w
	c.c.fast = routingExprs{}
	return &c
}

func sameItems(t *testing.T, what string, w *Webhook, d Delivery) {
	t.Helper()
	fast, ferr := w.Extract(d)
	slow, serr := vmOnly(w).Extract(d)
	if !reflect.DeepEqual(fast, slow) || (ferr == nil) != (serr == nil) {
		t.Fatalf("%s: %q\nfast %+v %v\nvm   %+v %v", what, d.Body, fast, ferr, slow, serr)
	}
}

// TestFastExprs: each shape the fast forms take, over bodies where every
// step can go wrong, answers as the VM does (or leaves it to the VM).
func TestFastExprs(t *testing.T) {
	exprs := []string{
		`body.id`, `body.account ?? ""`, `body.a.b`, `body.a?.b`, `body.a?.b.c ?? "x"`, `body["event-data"]?.id ?? body.signature?.token ?? ""`,
		`string(body.id ?? "")`, `string(body.a?.b ?? "")`, `item.id`, `headers["svix-id"] ?? headers["webhook-id"]`, `headers["Svix-Id"]`,
		`headers["svix-id"].x`, `headers["svix-id"]?.x ?? "n"`, `query.q ?? "none"`, `body.type ?? body.status ?? "unknown"`, `body`, `"lit"`,
	}
	bodies := []string{
		`{"id":"e1","account":"a","a":{"b":"c"},"event-data":{"id":7},"signature":{"token":"t"}}`,
		`{"id":42,"a":null}`, `{"id":true,"a":{"b":{"c":1}}}`, `{"id":1.5,"a":"str"}`, `{"id":null,"a":[1]}`, `{"id":{"x":1},"a":{}}`,
		`[1,2]`, `"text"`, `12`, `{}`, `not json`,
	}
	headers := []http.Header{
		nil, {"Svix-Id": {"s1"}}, {"Webhook-Id": {"w1"}}, {"svix-id": {"raw"}}, {"Svix-Id": {}}, {"X-Other": {"o"}},
	}
	for _, src := range exprs {
		e, err := template.CompileExprEnv(src, VarBody, VarHeaders, VarQuery, VarItem)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		w := &Webhook{}
		w.c.eventType, w.c.eventID, w.c.accountID = e, e, e
		w.compileFast()
		for _, b := range bodies {
			for _, h := range headers {
				for _, q := range []url.Values{nil, {"q": {"v"}}, {"q": {}}} {
					sameItems(t, src, w, Delivery{Header: h, Query: q, ContentType: "application/json", Body: []byte(b)})
				}
			}
		}
	}
	// The shapes meant to be fast are.
	for _, src := range []string{`body.id`, `body.account ?? ""`, `string(body.installation?.id ?? body.organization?.id ?? "")`, `headers["svix-id"] ?? headers["webhook-id"]`} {
		e, _ := template.CompileExprEnv(src, VarBody, VarHeaders, VarQuery, VarItem)
		if newFastExpr(e) == nil {
			t.Errorf("%s has no fast form", src)
		}
	}
}

// FuzzFastBuiltins: every built-in manifest extracts the same items with
// and without the fast forms.
func FuzzFastBuiltins(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s, "application/json", "x")
	}
	f.Add(`{"type":"a","id":"b","account":"c"}`, "application/json", "")
	ids, err := BuiltinIDs()
	if err != nil {
		f.Fatal(err)
	}
	var hooks []*Webhook
	for _, id := range ids {
		if m, _ := Builtin(id); m.Webhook != nil {
			hooks = append(hooks, m.Webhook)
		}
	}
	f.Fuzz(func(t *testing.T, body, ctype, hv string) {
		h := http.Header{"Webhook-Id": {hv}, "Svix-Id": {hv}, "X-Goog-Channel-Id": {hv}, "X-Gitlab-Event-Uuid": {hv}, "Content-Type": {ctype}}
		for _, w := range hooks {
			sameItems(t, "built-in", w, Delivery{Header: h, Query: url.Values{"q": {hv}}, ContentType: ctype, Body: []byte(body)})
		}
	})
}
