package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/secrets"
)

// storedValue is a value as sb_secrets holds it: sealed with the Box
// (bound to associated data naming what it is, so a sealed value cannot be
// moved elsewhere), or plain JSON when no Box is configured.
type storedValue[T any] struct {
	Sealed []byte `json:"sealed,omitempty"`
	Plain  T      `json:"plain,omitempty"`
}

// sealValue returns the stored form of v, sealed to ad when box is set.
func sealValue[T any](box *secrets.Box, v T, ad []byte) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	st := storedValue[T]{Plain: v}
	if box != nil {
		if st.Sealed, err = box.Seal(plain, ad); err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		var zero T
		st.Plain = zero
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// openValue returns the value whose stored form is raw, sealed to ad;
// what names it in errors. A sealed value without box, or one box cannot
// open, is ErrSecretUnavailable.
func openValue[T any](box *secrets.Box, raw, ad []byte, what string) (T, error) {
	var zero T
	var st storedValue[T]
	if err := json.Unmarshal(raw, &st); err != nil {
		return zero, fmt.Errorf("directory: %s: unreadable: %w", what, err)
	}
	if len(st.Sealed) == 0 {
		return st.Plain, nil
	}
	if box == nil {
		return zero, fmt.Errorf("%w: %s is sealed and no SWITCHBOARD_SECRET_KEY is configured", ErrSecretUnavailable, what)
	}
	plain, err := box.Open(st.Sealed, ad)
	if err != nil {
		return zero, fmt.Errorf("%w: %s: %v", ErrSecretUnavailable, what, err)
	}
	var v T
	if err := json.Unmarshal(plain, &v); err != nil {
		return zero, fmt.Errorf("directory: %s: decode: %w", what, err)
	}
	return v, nil
}

// secretAD binds a credential's secret to project, user, credential and
// version, so it cannot be moved to another credential or replayed as
// another version.
func secretAD(p, u, c, ver string) []byte {
	return []byte(p + "\x00" + u + "\x00" + c + "\x00" + ver)
}

// sealSecret returns the stored form of secret as version ver of
// credential c, and its subject in sb_secrets.
func (d *Directory) sealSecret(p, u, c, ver string, secret map[string]any) (string, []byte, error) {
	b, err := sealValue(d.box, secret, secretAD(p, u, c, ver))
	if err != nil {
		return "", nil, fmt.Errorf("directory: secret: %w", err)
	}
	return d.sec.pre + secretPrefix(p, u, c) + "." + ver, b, nil
}

// deleteSecrets removes secret versions no record names (best effort: a
// leftover version is unreadable garbage, never returned for a credential).
func (d *Directory) deleteSecrets(ctx context.Context, p, u string, vs []pendingSecret) {
	for _, v := range vs {
		// A stream purge leaves no marker behind, unlike a KV purge.
		if err := d.sec.stream.Purge(ctx, jetstream.WithPurgeSubject(d.sec.pre+secretPrefix(p, u, v.cred)+"."+v.version)); err != nil {
			d.logger.Warn("directory: unreferenced secret version not removed", "project", p, "credential", v.cred, "err", err)
		}
	}
}

// ErrSecretUnavailable is returned for a stored secret this process cannot
// open: sealed without a configured key, or with another key.
var ErrSecretUnavailable = errors.New("directory: secret cannot be opened")

// Secret returns credential c's secret (nil when it has none), or
// ErrNotFound for an unknown credential. It is the only way to read a
// secret; nothing caches it.
func (d *Directory) Secret(ctx context.Context, p, u, c string) (map[string]any, error) {
	for attempt := 0; attempt < 2; attempt++ {
		dc, err := d.load(ctx, p, u, true)
		if err != nil {
			return nil, notFoundIfInvalid(err)
		}
		cr, ver := dc.credential(c)
		if cr == nil {
			return nil, ErrNotFound
		}
		if ver == "" {
			return nil, nil
		}
		e, err := d.secKV.Get(ctx, secretPrefix(p, u, c)+"."+ver)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			// A cached record may name a version a newer write replaced:
			// read the record itself once more.
			d.cache.drop(userKey(p, u))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("directory: read secret: %w", err)
		}
		return d.openSecret(p, u, c, ver, e.Value())
	}
	return nil, fmt.Errorf("directory: credential %s/%s names a secret that is not stored", u, c)
}

func (d *Directory) openSecret(p, u, c, ver string, raw []byte) (map[string]any, error) {
	return openValue[map[string]any](d.box, raw, secretAD(p, u, c, ver), fmt.Sprintf("credential %s/%s", u, c))
}
