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
	env := map[string]any{
		VarBody:    body,
		VarHeaders: firstValues(d.Header, true),
		VarQuery:   firstValues(d.Query, false),
	}
	var elems []any
	whole := true
	if w.c.split != nil {
		v, err := w.c.split.Eval(withItem(env, body))
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
		ienv := withItem(env, el)
		it.Type = w.eval(w.c.eventType, ienv, "eventType", &it)
		if it.Type == "" {
			it.Type = UnknownEvent
		}
		it.AccountID = w.eval(w.c.accountID, ienv, "accountId", &it)
		it.UserID = w.eval(w.userID, ienv, "userId", &it)
		it.ID = w.eval(w.c.eventID, ienv, "eventId", &it)
		if it.ID == "" || len(it.ID) > 512 {
			sum := sha256.Sum256(it.Payload)
			it.ID, it.HashedID = "sha256:"+hex.EncodeToString(sum[:]), true
		}
		out = append(out, it)
	}
	return out, nil
}

func (w *Webhook) eval(e *template.Expr, env map[string]any, name string, it *Item) string {
	if e == nil {
		return ""
	}
	v, err := e.Eval(env)
	if err != nil {
		it.Problems = append(it.Problems, name+": "+err.Error())
		return ""
	}
	s := template.Format(v)
	if len(s) > 512 {
		it.Problems = append(it.Problems, name+": longer than 512 bytes")
		return ""
	}
	return s
}

func withItem(env map[string]any, item any) map[string]any {
	out := make(map[string]any, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[VarItem] = item
	return out
}

// parseBody reads the body as JSON, as form parameters, or as text; raw
// reports that the body is one JSON value (so its bytes are the payload).
func parseBody(contentType string, b []byte) (v any, raw bool) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
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
