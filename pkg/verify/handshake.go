package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

// Response is what the receiver sends back for a handshake. Body is exactly
// the provider's value, with a text/plain or JSON content type and nosniff,
// so the endpoint cannot be used to reflect markup at a browser.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// StoreSecret, when non-empty, is a secret the provider just issued (Asana's
	// X-Hook-Secret) that the receiver must store on the pending subscription's
	// credential before answering; later deliveries are verified with it.
	StoreSecret string
}

// Handshake kinds.
const (
	HandshakeSlack    = "slack_url_verification"
	HandshakeAsana    = "asana_hook_secret"
	HandshakeGraph    = "graph_validation_token"
	HandshakeZoom     = "zoom_url_validation"
	HandshakeDropbox  = "dropbox_challenge"
	HandshakeMeta     = "meta_challenge"
	HandshakeTwitch   = "twitch_challenge"
	HandshakeMonday   = "monday_challenge"
	HandshakeGoogle   = "google_sync"
	HandshakeHeadOK   = "head_ok"
	HandshakeCustom   = "custom"
	maxHandshakeValue = 4 << 10
)

func validateHandshake(h HandshakeSpec) error {
	switch h.Type {
	case HandshakeSlack, HandshakeAsana, HandshakeGraph, HandshakeZoom, HandshakeDropbox,
		HandshakeMeta, HandshakeTwitch, HandshakeMonday, HandshakeGoogle, HandshakeHeadOK:
		return nil
	case HandshakeCustom:
		if h.Method == "" && h.Query == "" && h.Header == "" && h.Field == "" {
			return newErr(ErrInvalidSpec, "custom handshake needs a method, query, header or field to match")
		}
		if h.Status != 0 && (h.Status < 200 || h.Status > 299) {
			return newErr(ErrInvalidSpec, "custom handshake status must be 2xx")
		}
		return nil
	}
	return newErr(ErrUnknownScheme, "unknown handshake type %q", h.Type)
}

// Handshake answers a provider's endpoint check when the request is one.
// handled=false means "not a handshake: verify and process it as an event".
// handled=true with err=nil: send resp. handled=true with err: the request
// looked like a handshake but failed verification; answer err's HTTPStatus.
// A source without a handshake is never handled (a Slack-looking challenge
// sent to a GitHub source is verified as an ordinary delivery and refused).
func Handshake(spec Spec, r Request, secrets []Secret) (resp *Response, handled bool, err error) {
	v, err := New(spec, Options{})
	if err != nil {
		return nil, false, err
	}
	return v.Handshake(r, secrets)
}

// Handshake is the compiled form of the package-level Handshake.
func (v *SpecVerifier) Handshake(r Request, secrets []Secret) (resp *Response, handled bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, handled, err = nil, true, newErr(ErrBadSignature, "handshake failed on malformed input")
		}
	}()
	h := v.spec.Handshake
	if h == nil {
		return nil, false, nil
	}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	body := newBodyView(r.Body)
	field := func(p string) string {
		if s := body.strings(p); len(s) > 0 {
			return s[0]
		}
		return ""
	}
	switch h.Type {
	case HandshakeSlack:
		// Slack signs url_verification like any event; answer only once verified.
		if r.Method != http.MethodPost || field("type") != "url_verification" {
			return nil, false, nil
		}
		if err := v.Verify(r, secrets); err != nil {
			return nil, true, err
		}
		return plain(field("challenge"))
	case HandshakeAsana:
		// The first contact carries the secret itself, so there is nothing to
		// verify it with; the receiver must accept it only for a subscription
		// it is creating right now (per-credential URL, pending state).
		sec := r.Header.Get("X-Hook-Secret")
		if sec == "" {
			return nil, false, nil
		}
		if len(sec) > maxHandshakeValue {
			return nil, true, newErr(ErrBadSignature, "X-Hook-Secret is too long")
		}
		resp := &Response{Status: http.StatusOK, Header: http.Header{}, StoreSecret: sec}
		resp.Header.Set("X-Hook-Secret", sec)
		return resp, true, nil
	case HandshakeGraph:
		tok := r.query().Get("validationToken")
		if tok == "" {
			return nil, false, nil
		}
		return plain(tok)
	case HandshakeDropbox:
		ch := r.query().Get("challenge")
		if r.Method != http.MethodGet || ch == "" {
			return nil, false, nil
		}
		return plain(ch)
	case HandshakeMeta:
		q := r.query()
		if r.Method != http.MethodGet || q.Get("hub.mode") != "subscribe" {
			return nil, false, nil
		}
		toks := activeSecrets(secrets, v.now(), UseVerifyToken)
		if len(toks) == 0 {
			return nil, true, newErr(ErrNoSecret, "no verify token configured for this source")
		}
		got := q.Get("hub.verify_token")
		if got == "" {
			return nil, true, newErr(ErrMissingSignature, "hub.verify_token is missing")
		}
		for _, t := range toks {
			if tokenEqual(got, t.Value) {
				return plain(q.Get("hub.challenge"))
			}
		}
		return nil, true, newErr(ErrBadSignature, "hub.verify_token does not match")
	case HandshakeTwitch:
		if r.Header.Get("Twitch-Eventsub-Message-Type") != "webhook_callback_verification" {
			return nil, false, nil
		}
		if err := v.Verify(r, secrets); err != nil {
			return nil, true, err
		}
		return plain(field("challenge"))
	case HandshakeZoom:
		if field("event") != "endpoint.url_validation" {
			return nil, false, nil
		}
		res, err := v.Check(r, secrets)
		if err != nil {
			return nil, true, err
		}
		plainToken := field("payload.plainToken")
		if plainToken == "" || len(plainToken) > maxHandshakeValue {
			return nil, true, newErr(ErrBadSignature, "payload.plainToken is missing")
		}
		// Answer with the secret that verified the request, so the response is
		// right during a rotation too.
		secret := res.secret.Value
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(plainToken))
		return jsonResp(map[string]string{"plainToken": plainToken, "encryptedToken": hex.EncodeToString(m.Sum(nil))})
	case HandshakeMonday:
		ch := field("challenge")
		if r.Method != http.MethodPost || ch == "" {
			return nil, false, nil
		}
		if len(ch) > maxHandshakeValue {
			return nil, true, newErr(ErrBadSignature, "challenge value is too long")
		}
		return jsonResp(map[string]string{"challenge": ch})
	case HandshakeGoogle:
		// The first notification of a Drive/Calendar channel announces it; it
		// still carries the channel token, so verify, acknowledge, start nothing.
		if r.Header.Get("X-Goog-Resource-State") != "sync" {
			return nil, false, nil
		}
		if err := v.Verify(r, secrets); err != nil {
			return nil, true, err
		}
		return &Response{Status: http.StatusOK, Header: http.Header{}}, true, nil
	case HandshakeHeadOK:
		// Intercom probes a URL with HEAD when it is saved.
		if r.Method != http.MethodHead {
			return nil, false, nil
		}
		return &Response{Status: http.StatusOK, Header: http.Header{}}, true, nil
	case HandshakeCustom:
		return v.customHandshake(*h, r, secrets, body)
	}
	return nil, true, newErr(ErrUnknownScheme, "unknown handshake type %q", h.Type)
}

func (v *SpecVerifier) customHandshake(h HandshakeSpec, r Request, secrets []Secret, body *bodyView) (*Response, bool, error) {
	q := r.query()
	if h.Method != "" && !strings.EqualFold(h.Method, r.Method) {
		return nil, false, nil
	}
	if h.Query != "" && q.Get(h.Query) == "" {
		return nil, false, nil
	}
	if h.Header != "" {
		hv := r.Header.Get(h.Header)
		if hv == "" || (h.HeaderValue != "" && hv != h.HeaderValue) {
			return nil, false, nil
		}
	}
	if h.Field != "" {
		fs := body.strings(h.Field)
		if len(fs) == 0 || (h.FieldValue != "" && fs[0] != h.FieldValue) {
			return nil, false, nil
		}
	}
	if h.Verify {
		if err := v.Verify(r, secrets); err != nil {
			return nil, true, err
		}
	}
	// Placeholders are {query:x}, {header:x} and {field:x}; any other brace is
	// literal, so a JSON body like {"type":1} needs no escaping.
	var out strings.Builder
	rest := h.Body
	for {
		i := strings.Index(rest, "{")
		if i < 0 {
			out.WriteString(rest)
			break
		}
		name, after, closed := strings.Cut(rest[i+1:], "}")
		kind, arg, _ := strings.Cut(name, ":")
		if !closed || (kind != "query" && kind != "header" && kind != "field") || arg == "" {
			out.WriteString(rest[:i+1])
			rest = rest[i+1:]
			continue
		}
		out.WriteString(rest[:i])
		rest = after
		var val string
		switch kind {
		case "query":
			val = q.Get(arg)
		case "header":
			val = r.Header.Get(arg)
		case "field":
			if fs := body.strings(arg); len(fs) > 0 {
				val = fs[0]
			}
		}
		if len(val) > maxHandshakeValue {
			return nil, true, newErr(ErrBadSignature, "handshake value is too long")
		}
		out.WriteString(val)
	}
	status := h.Status
	if status == 0 {
		status = http.StatusOK
	}
	ct := h.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	resp := &Response{Status: status, Header: http.Header{}, Body: []byte(out.String())}
	resp.Header.Set("Content-Type", ct)
	resp.Header.Set("X-Content-Type-Options", "nosniff")
	return resp, true, nil
}

func plain(s string) (*Response, bool, error) {
	if s == "" {
		return nil, true, newErr(ErrMissingSignature, "challenge value is missing")
	}
	if len(s) > maxHandshakeValue {
		return nil, true, newErr(ErrBadSignature, "challenge value is too long")
	}
	resp := &Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte(s)}
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set("X-Content-Type-Options", "nosniff")
	return resp, true, nil
}

func jsonResp(v any) (*Response, bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, true, wrapErr(ErrBadSignature, err, "cannot encode handshake answer")
	}
	resp := &Response{Status: http.StatusOK, Header: http.Header{}, Body: b}
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("X-Content-Type-Options", "nosniff")
	return resp, true, nil
}
