package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// MaxItems bounds how many events one delivery may split into. Providers
// batch far fewer (HubSpot 100, Graph 1,000 is not reached in practice);
// a delivery over it is refused as a whole rather than stored in part.
const MaxItems = 1000

// Delivery is a verified request, as the routing expressions see it.
type Delivery struct {
	Header      http.Header
	Query       url.Values
	ContentType string
	Body        []byte
}

// Item is one provider event of a delivery.
type Item struct {
	// Type is the provider event type (UnknownEvent when it could not be
	// read), ID the provider event id (or "sha256:<hex>" of the payload),
	// AccountID the tenant ("" when the manifest or the item has none).
	Type, ID, AccountID string
	// UserID is the connected user an API Resource's item names
	// (webhook.userId; "" when it has none).
	UserID string
	// HashedID reports that ID is the payload hash fallback.
	HashedID bool
	// Payload is the item as JSON: the raw body when the delivery is one
	// JSON event, so the workflow sees the provider's bytes.
	Payload []byte
	// Problems says which expression failed, for the decision record.
	Problems []string
}

// TooManyItemsError is a delivery that splits into more than MaxItems.
type TooManyItemsError struct{ N int }

func (e *TooManyItemsError) Error() string {
	return fmt.Sprintf("the delivery splits into %d events, more than %d", e.N, MaxItems)
}

// Extract turns a verified delivery into its events. An expression that
// fails for an item never drops the item: its type becomes UnknownEvent,
// its id the payload hash, and the failure is in Item.Problems.
func (w *Webhook) Extract(d Delivery) ([]Item, error) {
	body, raw := parseBody(d.ContentType, d.Body)
	x := &exprEnv{fastEnv: fastEnv{body: body, item: body, header: d.Header, query: d.Query}}
	var elems []any
	whole := true
	if w.c.split != nil {
		v, err := w.c.split.Eval(x.vm())
		list, ok := v.([]any)
		switch {
		case err != nil || (!ok && v != nil):
			// Not a list: keep the delivery as one event rather than lose it.
		case len(list) > MaxItems:
			return nil, &TooManyItemsError{N: len(list)}
		default:
			elems, whole = list, false
		}
	}
	if whole {
		elems = []any{body}
	}
	out := make([]Item, 0, len(elems))
	for _, el := range elems {
		it := Item{}
		if whole && raw {
			it.Payload = d.Body
		} else if b, err := json.Marshal(el); err == nil {
			it.Payload = b
		} else {
			it.Payload, _ = json.Marshal(fmt.Sprint(el))
		}
		x.setItem(el)
		f := &w.c.fast
		it.Type = w.eval(w.c.eventType, f.eventType, x, "eventType", &it)
		if it.Type == "" {
			it.Type = UnknownEvent
		}
		it.AccountID = w.eval(w.c.accountID, f.accountID, x, "accountId", &it)
		it.UserID = w.eval(w.userID, f.userID, x, "userId", &it)
		it.ID = w.eval(w.c.eventID, f.eventID, x, "eventId", &it)
		if it.ID == "" || len(it.ID) > 512 {
			sum := sha256.Sum256(it.Payload)
			it.ID, it.HashedID = "sha256:"+hex.EncodeToString(sum[:]), true
		}
		out = append(out, it)
	}
	return out, nil
}

// eval is e's value for the item as a string: its fast form's when it has
// one that can answer (fastexpr.go), else the program's.
func (w *Webhook) eval(e *template.Expr, f *fastExpr, x *exprEnv, name string, it *Item) string {
	if e == nil {
		return ""
	}
	var v any
	ok := false
	if f != nil {
		v, ok = f.eval(&x.fastEnv)
	}
	if !ok {
		var err error
		if v, err = e.Eval(x.vm()); err != nil {
			it.Problems = append(it.Problems, name+": "+err.Error())
			return ""
		}
	}
	s := template.Format(v)
	if len(s) > 512 {
		it.Problems = append(it.Problems, name+": longer than 512 bytes")
		return ""
	}
	return s
}

// exprEnv is one item's variables: as they are for the fast forms, and as
// the programs' env (VarBody, VarHeaders, VarQuery, VarItem), built only
// when a program runs.
type exprEnv struct {
	fastEnv
	headerMap, queryMap map[string]any // first values, once built
	env                 map[string]any
}

func (x *exprEnv) vm() map[string]any {
	if x.env == nil {
		if x.headerMap == nil {
			x.headerMap, x.queryMap = firstValues(x.header, true), firstValues(x.query, false)
		}
		x.env = map[string]any{VarBody: x.body, VarHeaders: x.headerMap, VarQuery: x.queryMap, VarItem: x.item}
	}
	return x.env
}

func (x *exprEnv) setItem(item any) { x.item, x.env = item, nil }

// parseBody reads the body as JSON, as form parameters, or as text; raw
// reports that the body is one JSON value (so its bytes are the payload).
func parseBody(contentType string, b []byte) (v any, raw bool) {
	if mayBeForm(contentType) {
		mt, _, _ := mime.ParseMediaType(contentType)
		if mt == formType {
			if q, err := url.ParseQuery(string(b)); err == nil {
				m := make(map[string]any, len(q))
				for k, vs := range q {
					if len(vs) > 0 {
						m[k] = vs[0]
					}
				}
				return m, false
			}
		}
	}
	if v, ok := parseJSONBody(b); ok {
		return v, true
	}
	return decodeBody(b)
}

const formType = "application/x-www-form-urlencoded"

// mayBeForm is false for a content type that cannot parse as formType,
// sparing mime.ParseMediaType on every JSON delivery: that one lower-cases
// the type, which, for an ASCII content type, must then contain it.
func mayBeForm(ct string) bool {
	for i := 0; i < len(ct); i++ {
		if ct[i] >= utf8.RuneSelf {
			return true
		}
	}
	const sub = "x-www-form-urlencoded"
	for i := 0; i+len(sub) <= len(ct); i++ {
		if lowerIs(ct[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// decodeBody is parseBody's JSON decoding with encoding/json, for the
// bodies parseJSONBody leaves to it (and its reference in the tests).
func decodeBody(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// Numbers as json.Number, then int64 where they are integers: a 64-bit
	// provider id (Twitch, Discord) must not be rounded to a float64.
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err == nil && !dec.More() {
		return numbers(out), true
	}
	return string(b), false
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

func firstValues(h map[string][]string, lower bool) map[string]any {
	out := make(map[string]any, len(h))
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if lower {
			k = strings.ToLower(k)
		}
		out[k] = vs[0]
	}
	return out
}
