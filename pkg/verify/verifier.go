package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Verifier checks one delivery against a source's active secrets.
type Verifier interface {
	// Verify returns nil when the request is authentic and fresh, or an error
	// carrying a Code (see CodeOf). It never panics, whatever the input.
	Verify(r Request, secrets []Secret) error
}

// Options configures New. The zero value is ready to use.
type Options struct {
	// Now is the clock for timestamp windows and secret expiry; time.Now when nil.
	Now func() time.Time
}

// Result tells which secret matched, so operators can retire old ones safely.
type Result struct {
	SecretID  string
	Timestamp time.Time // zero when the scheme has none
	// secret is the matched secret itself; the Zoom handshake answers with it,
	// and IDs are optional so they cannot be used to find it again.
	secret Secret
}

// SpecVerifier is the compiled form of a Spec; it implements Verifier and
// answers handshakes. It is immutable and safe for concurrent use.
type SpecVerifier struct {
	spec    Spec
	now     func() time.Time
	newHash func() hash.Hash
	tmpl    []segment
}

var _ Verifier = (*SpecVerifier)(nil)

const defaultTolerance = 5 * time.Minute

// New compiles a spec. Unknown presets, schemes, algorithms or encodings are
// ErrUnknownScheme; malformed templates are ErrInvalidSpec. Both mean the
// source must fail closed.
func New(spec Spec, opts Options) (*SpecVerifier, error) {
	s, err := resolve(spec)
	if err != nil {
		return nil, err
	}
	v := &SpecVerifier{spec: s, now: opts.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if v.spec.Scheme == "" {
		v.spec.Scheme = "hmac"
	}
	switch s.Algorithm {
	case "", "sha256":
		v.newHash = sha256.New
	case "sha1":
		v.newHash = sha1.New
	case "sha512":
		v.newHash = sha512.New
	default:
		return nil, newErr(ErrUnknownScheme, "unknown algorithm %q", s.Algorithm)
	}
	switch s.Encoding {
	case "", "hex", "base64", "base64url":
	default:
		return nil, newErr(ErrUnknownScheme, "unknown encoding %q", s.Encoding)
	}
	switch s.SecretEncoding {
	case "", "raw", "base64", "hex", "whsec":
	default:
		return nil, newErr(ErrUnknownScheme, "unknown secret encoding %q", s.SecretEncoding)
	}
	switch s.Format {
	case "", "kv", "list":
	default:
		return nil, newErr(ErrUnknownScheme, "unknown signature format %q", s.Format)
	}
	content := s.Content
	if content == "" {
		content = "{body}"
	}
	if v.tmpl, err = compileTemplate(content); err != nil {
		return nil, err
	}
	switch v.spec.Scheme {
	case "hmac", "ed25519", "ecdsa", "rsa":
		if usesKind(v.tmpl, "secret") {
			return nil, newErr(ErrInvalidSpec, "{secret} belongs in the content of the hash scheme only")
		}
		if s.Header == "" && s.Field == "" {
			return nil, newErr(ErrInvalidSpec, "scheme %s needs a signature header or field", v.spec.Scheme)
		}
	case "hash":
		if !usesKind(v.tmpl, "secret") {
			return nil, newErr(ErrInvalidSpec, "the hash scheme needs {secret} in its content, or it proves nothing")
		}
		if s.Header == "" {
			return nil, newErr(ErrInvalidSpec, "scheme hash needs a signature header")
		}
	case "token":
		if s.Header == "" && s.Field == "" && s.Query == "" {
			return nil, newErr(ErrInvalidSpec, "scheme token needs a header, query or field")
		}
	case "basic", "bearer":
	case "jwt":
		if s.Algorithm == "sha1" {
			return nil, newErr(ErrUnknownScheme, "jwt supports sha256 and sha512 (HS256/HS512)")
		}
	default:
		return nil, newErr(ErrUnknownScheme, "unknown scheme %q", v.spec.Scheme)
	}
	if t := s.Timestamp; t != nil {
		switch t.Unit {
		case "", "s", "ms", "rfc3339", "auto":
		default:
			return nil, newErr(ErrUnknownScheme, "unknown timestamp unit %q", t.Unit)
		}
		if t.Header == "" && t.Field == "" && !(s.Format == "kv" && s.TimestampKey != "") {
			return nil, newErr(ErrInvalidSpec, "timestamp needs a header, a field or a kv timestampKey")
		}
	}
	if usesKind(v.tmpl, "timestamp") && s.Timestamp == nil {
		return nil, newErr(ErrInvalidSpec, "content uses {timestamp} but no timestamp is configured")
	}
	if s.Handshake != nil {
		if err := validateHandshake(*s.Handshake); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Spec returns the effective (preset-resolved) spec.
func (v *SpecVerifier) Spec() Spec { return v.spec }

// Verify implements Verifier.
func (v *SpecVerifier) Verify(r Request, secrets []Secret) error {
	_, err := v.Check(r, secrets)
	return err
}

// Check verifies and also reports which secret matched.
func (v *SpecVerifier) Check(r Request, secrets []Secret) (res Result, err error) {
	// Defence in depth: every path below is written not to panic, but a
	// verifier that crashed the receiver would be an outage, so convert.
	defer func() {
		if p := recover(); p != nil {
			res, err = Result{}, newErr(ErrBadSignature, "verification failed on malformed input")
		}
	}()
	if r.Header == nil {
		r.Header = map[string][]string{}
	}
	now := v.now()
	active := activeSecrets(secrets, now, "")
	if len(active) == 0 {
		return Result{}, newErr(ErrNoSecret, "no active secret configured for this source")
	}
	switch v.spec.Scheme {
	case "token", "basic", "bearer":
		return v.checkToken(r, active)
	case "jwt":
		return v.checkJWT(r, active, now)
	}
	body := newBodyView(r.Body)
	sigs, tsRaw, err := v.extract(r, body)
	if err != nil {
		return Result{}, err
	}
	var ts time.Time
	if v.spec.Timestamp != nil {
		if tsRaw == "" {
			return Result{}, newErr(ErrMissingSignature, "signed timestamp is missing")
		}
		if ts, err = parseTimestamp(tsRaw, v.spec.Timestamp.Unit); err != nil {
			return Result{}, wrapErr(ErrTimestampOutOfRange, err, "signed timestamp is malformed")
		}
	}
	if p := v.spec.BodyHashParam; p != "" {
		if want := r.query().Get(p); want != "" {
			sum := sha256.Sum256(r.Body)
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(want))) != 1 {
				return Result{}, newErr(ErrBadSignature, "body does not match its %s parameter", p)
			}
		}
	}
	contents, err := v.contents(r, body, tsRaw)
	if err != nil {
		return Result{}, err
	}
	matched, ok, err := v.match(sigs, contents, active)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, newErr(ErrBadSignature, "no signature matches an active secret")
	}
	// The window is checked after the signature, so an unauthenticated caller
	// learns nothing from the timestamp error, and a replayed authentic
	// delivery is still refused.
	if v.spec.Timestamp != nil {
		if err := v.checkWindow(ts, now); err != nil {
			return Result{}, err
		}
	}
	return Result{SecretID: matched.ID, Timestamp: ts, secret: matched}, nil
}

func (v *SpecVerifier) checkWindow(ts, now time.Time) error {
	past := time.Duration(v.spec.Timestamp.Tolerance)
	if past == 0 {
		past = defaultTolerance
	}
	future := time.Duration(v.spec.Timestamp.FutureTolerance)
	if future == 0 {
		future = past
	}
	if now.Sub(ts) > past {
		return newErr(ErrTimestampOutOfRange, "signed timestamp is older than %s", past)
	}
	if ts.Sub(now) > future {
		return newErr(ErrTimestampOutOfRange, "signed timestamp is more than %s in the future", future)
	}
	return nil
}

func parseTimestamp(raw, unit string) (time.Time, error) {
	raw = strings.TrimSpace(raw)
	switch unit {
	case "rfc3339":
		return time.Parse(time.RFC3339Nano, raw)
	case "auto":
		// For providers that document the header but not its format: Unix
		// seconds or RFC 3339, whichever parses.
		if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
			return t, nil
		}
		return parseTimestamp(raw, "s")
	case "ms":
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		return time.UnixMilli(n), nil
	default:
		// Some senders (Mailgun JSON) send seconds as a float-looking string.
		if i := strings.IndexByte(raw, '.'); i > 0 {
			raw = raw[:i]
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		if n > 1<<40 || n < -(1<<40) { // far outside any plausible clock; avoid overflow
			return time.Time{}, strconv.ErrRange
		}
		return time.Unix(n, 0), nil
	}
}

// extract collects the signature candidates and the raw timestamp.
func (v *SpecVerifier) extract(r Request, body *bodyView) (sigs []string, ts string, err error) {
	s := v.spec
	var raw []string
	switch {
	case s.Header != "":
		raw = headerValues(r, s.Header)
	case s.Field != "":
		raw = append(raw, body.strings(s.Field)...)
	}
	if t := s.Timestamp; t != nil && !(s.Format == "kv" && s.TimestampKey != "") {
		if t.Header != "" {
			ts, _ = r.header(t.Header)
		} else if t.Field != "" {
			if vals := body.strings(t.Field); len(vals) > 0 {
				ts = vals[0]
			}
		}
	}
	if len(raw) == 0 {
		return nil, "", newErr(ErrMissingSignature, "signature %s is missing", v.where())
	}
	for _, h := range raw {
		if len(h) > maxSignatureHeader {
			return nil, "", newErr(ErrBadSignature, "signature %s is too long", v.where())
		}
		switch s.Format {
		case "kv":
			sep := s.Separator
			if sep == "" {
				sep = ","
			}
			for _, item := range strings.Split(h, sep) {
				k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
				if !ok {
					continue
				}
				switch k {
				case s.TimestampKey:
					if ts == "" {
						ts = val
					}
				case s.SignatureKey:
					sigs = append(sigs, val)
				}
			}
		case "list":
			sep := s.Separator
			if sep == "" {
				sep = " "
			}
			for _, item := range strings.Split(h, sep) {
				ver, sig, ok := strings.Cut(strings.TrimSpace(item), ",")
				if ok && ver == s.SignatureKey {
					sigs = append(sigs, sig)
				}
			}
		default:
			sig := strings.TrimSpace(h)
			if s.Prefix != "" {
				var ok bool
				if sig, ok = strings.CutPrefix(sig, s.Prefix); !ok {
					// A different prefix (e.g. sha1= where sha256= is required)
					// is a signature we refuse, not a missing one.
					return nil, "", newErr(ErrBadSignature, "signature %s lacks the %q prefix", v.where(), s.Prefix)
				}
			}
			sigs = append(sigs, sig)
		}
		if len(sigs) > maxSignatures {
			sigs = sigs[:maxSignatures]
			break
		}
	}
	if len(sigs) == 0 {
		return nil, "", newErr(ErrMissingSignature, "signature %s has no %q entry", v.where(), s.SignatureKey)
	}
	return sigs, ts, nil
}

func (v *SpecVerifier) where() string {
	if v.spec.Header != "" {
		return "header " + v.spec.Header
	}
	return "field " + v.spec.Field
}

// headerValues returns the values of the first present alternative, or of
// every header with the prefix when the name ends in "*".
func headerValues(r Request, names string) []string {
	if p, ok := strings.CutSuffix(names, "*"); ok {
		var keys []string
		for k := range r.Header {
			if len(k) >= len(p) && strings.EqualFold(k[:len(p)], p) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, r.Header[k]...)
		}
		return out
	}
	for _, n := range strings.Split(names, "|") {
		if vs := r.Header.Values(n); len(vs) > 0 {
			return vs
		}
	}
	return nil
}

// contents renders the signed content, once per URL variant. The {secret}
// placeholder (hash scheme) is left as a marker and filled per secret.
func (v *SpecVerifier) contents(r Request, body *bodyView, ts string) ([][]segmentValue, error) {
	urls := []string{r.URL}
	if v.spec.URLPortVariants && usesKind(v.tmpl, "url") {
		urls = urlPortVariants(r.URL)
	}
	var form string
	if usesKind(v.tmpl, "form") {
		// Without a body hash parameter the body is parsed as form whatever
		// its Content-Type (as twilio-go does), so a body the sender did not
		// send as parameters still changes the signed content and can never
		// ride along unauthenticated.
		hashParam := v.spec.BodyHashParam != "" && r.query().Get(v.spec.BodyHashParam) != ""
		if !hashParam && len(r.Body) > 0 {
			vals, err := url.ParseQuery(string(r.Body))
			if err != nil {
				return nil, wrapErr(ErrBadSignature, err, "form body cannot be parsed")
			}
			form = sortedForm(vals)
		}
	}
	out := make([][]segmentValue, 0, len(urls))
	for _, u := range urls {
		var vals []segmentValue
		for _, seg := range v.tmpl {
			switch seg.kind {
			case "lit":
				vals = append(vals, segmentValue{b: []byte(seg.arg)})
			case "body":
				vals = append(vals, segmentValue{b: r.Body})
			case "timestamp":
				vals = append(vals, segmentValue{b: []byte(ts)})
			case "method":
				vals = append(vals, segmentValue{b: []byte(r.Method)})
			case "url":
				vals = append(vals, segmentValue{b: []byte(u)})
			case "url_hubspot":
				vals = append(vals, segmentValue{b: []byte(hubspotDecode(u))})
			case "form":
				vals = append(vals, segmentValue{b: []byte(form)})
			case "secret":
				vals = append(vals, segmentValue{secret: true})
			case "header":
				h, ok := r.header(seg.arg)
				if !ok {
					return nil, newErr(ErrMissingSignature, "signed header %s is missing", seg.arg)
				}
				vals = append(vals, segmentValue{b: []byte(h)})
			case "field":
				fs := body.strings(seg.arg)
				if len(fs) == 0 {
					return nil, newErr(ErrMissingSignature, "signed field %s is missing", seg.arg)
				}
				vals = append(vals, segmentValue{b: []byte(fs[0])})
			}
		}
		out = append(out, vals)
	}
	return out, nil
}

type segmentValue struct {
	b      []byte
	secret bool
}

func render(vals []segmentValue, secret []byte) []byte {
	n := 0
	for _, s := range vals {
		n += len(s.b)
	}
	out := make([]byte, 0, n+len(secret))
	for _, s := range vals {
		if s.secret {
			out = append(out, secret...)
		} else {
			out = append(out, s.b...)
		}
	}
	return out
}

func sortedForm(vals url.Values) string {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vs := append([]string(nil), vals[k]...)
		sort.Strings(vs)
		for _, val := range vs {
			b.WriteString(k)
			b.WriteString(val)
		}
	}
	return b.String()
}

// urlPortVariants returns the URL as given plus, like twilio-go, the same
// URL with the scheme's default port added when it has no port, or with its
// port removed when it has one (Twilio's signing is inconsistent about it).
func urlPortVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return out
	}
	alt := *u
	switch {
	case u.Port() != "":
		alt.Host = u.Hostname()
		if strings.Contains(alt.Host, ":") { // IPv6 literal
			alt.Host = "[" + alt.Host + "]"
		}
	case u.Scheme == "https":
		alt.Host = u.Host + ":443"
	case u.Scheme == "http":
		alt.Host = u.Host + ":80"
	default:
		return out
	}
	return append(out, alt.String())
}

// hubspotDecode decodes only the escapes HubSpot's v3 signature decodes
// before signing (its SDKs: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B).
func hubspotDecode(u string) string {
	r := strings.NewReplacer(
		"%3A", ":", "%3a", ":", "%2F", "/", "%2f", "/", "%3F", "?", "%3f", "?",
		"%40", "@", "%21", "!", "%24", "$", "%27", "'", "%28", "(", "%29", ")",
		"%2A", "*", "%2a", "*", "%2C", ",", "%2c", ",", "%3B", ";", "%3b", ";",
	)
	return r.Replace(u)
}

// match tries every signature against every active secret and content variant.
// All comparisons are constant-time; the loop does not stop early on a
// partial match, only after a full one.
func (v *SpecVerifier) match(sigs []string, contents [][]segmentValue, secrets []Secret) (Secret, bool, error) {
	decoded := make([][]byte, 0, len(sigs))
	for _, s := range sigs {
		if b, ok := decodeSig(s, v.spec.Encoding); ok {
			decoded = append(decoded, b)
		}
	}
	if len(decoded) == 0 {
		return Secret{}, false, newErr(ErrBadSignature, "signature is not valid %s", encName(v.spec.Encoding))
	}
	usable := 0
	for _, sec := range secrets {
		key, err := v.key(sec)
		if err != nil {
			continue // a malformed secret never matches; others may
		}
		usable++
		for _, c := range contents {
			switch v.spec.Scheme {
			case "hmac":
				m := hmac.New(v.newHash, key.sym)
				m.Write(render(c, nil))
				mac := m.Sum(nil)
				for _, d := range decoded {
					if hmac.Equal(mac, d) {
						return sec, true, nil
					}
				}
			case "hash":
				h := v.newHash()
				h.Write(render(c, key.sym))
				sum := h.Sum(nil)
				for _, d := range decoded {
					if subtle.ConstantTimeCompare(sum, d) == 1 {
						return sec, true, nil
					}
				}
			default:
				msg := render(c, nil)
				for _, d := range decoded {
					if v.verifyAsym(key, msg, d) {
						return sec, true, nil
					}
				}
			}
		}
	}
	if usable == 0 {
		return Secret{}, false, newErr(ErrNoSecret, "no configured secret is well-formed for scheme %s", v.spec.Scheme)
	}
	return Secret{}, false, nil
}

func encName(e string) string {
	if e == "" {
		return "hex"
	}
	return e
}

func decodeSig(s, enc string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	switch enc {
	case "base64":
		if b, err := base64.StdEncoding.DecodeString(s); err == nil {
			return b, true
		}
		b, err := base64.RawStdEncoding.DecodeString(s)
		return b, err == nil
	case "base64url":
		if b, err := base64.URLEncoding.DecodeString(s); err == nil {
			return b, true
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		return b, err == nil
	default:
		b, err := hex.DecodeString(s)
		return b, err == nil
	}
}

func encodeSig(b []byte, enc string) string {
	switch enc {
	case "base64":
		return base64.StdEncoding.EncodeToString(b)
	case "base64url":
		return base64.URLEncoding.EncodeToString(b)
	default:
		return hex.EncodeToString(b)
	}
}

// symKey decodes a secret's value into HMAC key bytes.
func symKey(value, enc string) ([]byte, error) {
	switch enc {
	case "base64":
		return base64.StdEncoding.DecodeString(value)
	case "hex":
		return hex.DecodeString(value)
	case "whsec":
		v := strings.TrimPrefix(value, "whsec_")
		if b, err := base64.StdEncoding.DecodeString(v); err == nil {
			return b, nil
		}
		return base64.RawStdEncoding.DecodeString(v)
	default:
		return []byte(value), nil
	}
}
