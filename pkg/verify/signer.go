package verify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signer signs a request the way a spec's provider would. It backs the
// `switchboard webhooks sign` helper and tests; the verifier never uses it,
// so a bug here cannot make verification accept anything.
type Signer interface {
	// Sign sets the signature header (and the timestamp header, when the
	// scheme has one) on r, signing r.Body at time at with secret. Headers
	// that the content template reads (e.g. webhook-id) must already be set.
	Sign(r *Request, secret Secret, at time.Time) error
}

// NewSigner returns a Signer for hmac, hash and ed25519 specs whose signature
// travels in a header. Other schemes are ErrUnsupported: public-key schemes
// other than Ed25519 sign with the provider's private key, which we never
// hold, and token schemes have nothing to compute.
func NewSigner(spec Spec, opts Options) (Signer, error) {
	v, err := New(spec, opts)
	if err != nil {
		return nil, err
	}
	switch v.spec.Scheme {
	case "hmac", "hash", "ed25519":
	default:
		return nil, newErr(ErrUnsupported, "scheme %s has no signer", v.spec.Scheme)
	}
	if v.spec.Header == "" {
		return nil, newErr(ErrUnsupported, "the signature of this spec travels in the body; sign the body yourself")
	}
	if t := v.spec.Timestamp; t != nil && t.Header == "" && !(v.spec.Format == "kv" && v.spec.TimestampKey != "") && t.Field == "" {
		return nil, newErr(ErrUnsupported, "timestamp location is not signable")
	}
	return v, nil
}

// Sign implements Signer.
func (v *SpecVerifier) Sign(r *Request, secret Secret, at time.Time) error {
	if r.Header == nil {
		r.Header = http.Header{}
	}
	s := v.spec
	var ts string
	if t := s.Timestamp; t != nil {
		switch t.Unit {
		case "ms":
			ts = strconv.FormatInt(at.UnixMilli(), 10)
		case "rfc3339":
			ts = at.UTC().Format(time.RFC3339Nano)
		default:
			ts = strconv.FormatInt(at.Unix(), 10)
		}
		if t.Field != "" {
			// The timestamp is inside the body the caller built; sign what is there.
			if fs := newBodyView(r.Body).strings(t.Field); len(fs) > 0 {
				ts = fs[0]
			}
		} else if !(s.Format == "kv" && s.TimestampKey != "") {
			r.Header.Set(firstAlt(t.Header), ts)
		}
	}
	k, err := v.key(secret)
	if err != nil {
		return wrapErr(ErrNoSecret, err, "secret cannot be used for signing")
	}
	contents, err := v.contents(*r, newBodyView(r.Body), ts)
	if err != nil {
		return err
	}
	c := contents[0]
	var sig []byte
	switch s.Scheme {
	case "hmac":
		m := hmac.New(v.newHash, k.sym)
		m.Write(render(c, nil))
		sig = m.Sum(nil)
	case "hash":
		h := v.newHash()
		h.Write(render(c, k.sym))
		sig = h.Sum(nil)
	case "ed25519":
		if k.edPriv == nil {
			return newErr(ErrNoSecret, "ed25519 signing needs a private key (whsk_… or a 64-byte key)")
		}
		sig = ed25519.Sign(k.edPriv, render(c, nil))
	}
	enc := encodeSig(sig, s.Encoding)
	var val string
	switch s.Format {
	case "kv":
		sep := s.Separator
		if sep == "" {
			sep = ","
		}
		if s.TimestampKey != "" {
			val = s.TimestampKey + "=" + ts + sep
		}
		val += s.SignatureKey + "=" + enc
	case "list":
		val = s.SignatureKey + "," + enc
	default:
		val = s.Prefix + enc
	}
	h := firstAlt(s.Header)
	if p, ok := strings.CutSuffix(h, "*"); ok {
		h = p + "1"
	}
	r.Header.Set(h, val)
	return nil
}

func firstAlt(names string) string {
	n, _, _ := strings.Cut(names, "|")
	return n
}
