package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// storedSecret is a secret as sb_secrets holds it under s.<p>.<U>.<C>.<ver>:
// sealed with the Box (bound to project, user, credential and version, so
// a sealed value cannot be moved to another credential or replayed as
// another version), or plain JSON when no Box is configured.
type storedSecret struct {
	Sealed []byte         `json:"sealed,omitempty"`
	Plain  map[string]any `json:"plain,omitempty"`
}

func secretAD(p, u, c, ver string) []byte {
	return []byte(p + "\x00" + u + "\x00" + c + "\x00" + ver)
}

// sealSecret returns the stored form of secret as version ver of
// credential c, and its subject in sb_secrets.
func (d *Directory) sealSecret(p, u, c, ver string, secret map[string]any) (string, []byte, error) {
	plain, err := json.Marshal(secret)
	if err != nil {
		return "", nil, fmt.Errorf("directory: encode secret: %w", err)
	}
	st := storedSecret{Plain: secret}
	if d.box != nil {
		if st.Sealed, err = d.box.Seal(plain, secretAD(p, u, c, ver)); err != nil {
			return "", nil, fmt.Errorf("directory: seal secret: %w", err)
		}
		st.Plain = nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", nil, fmt.Errorf("directory: encode secret: %w", err)
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
	var st storedSecret
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("directory: credential %s/%s: unreadable secret: %w", u, c, err)
	}
	if len(st.Sealed) == 0 {
		return st.Plain, nil
	}
	if d.box == nil {
		return nil, fmt.Errorf("%w: credential %s/%s is sealed and no SWITCHBOARD_SECRET_KEY is configured", ErrSecretUnavailable, u, c)
	}
	plain, err := d.box.Open(st.Sealed, secretAD(p, u, c, ver))
	if err != nil {
		return nil, fmt.Errorf("%w: credential %s/%s: %v", ErrSecretUnavailable, u, c, err)
	}
	var out map[string]any
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("directory: credential %s/%s: decode secret: %w", u, c, err)
	}
	return out, nil
}
