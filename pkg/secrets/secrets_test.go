package secrets_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/secrets"
)

func box(t *testing.T) (*secrets.Box, []byte) {
	t.Helper()
	ks, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := secrets.ParseKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return b, k
}

func TestSealOpen(t *testing.T) {
	b, key := box(t)
	pt, ad := []byte(`{"accessToken":"tok-123"}`), []byte("p/u/c")
	sealed, err := b.Seal(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("tok-123")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	got, err := b.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %q %v", got, err)
	}
	// Independent oracle: the standard library's GCM with the documented
	// layout (version byte, 12-byte nonce, ciphertext+tag) opens it too.
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	if ref, err := gcm.Open(nil, sealed[1:13], sealed[13:], ad); err != nil || !bytes.Equal(ref, pt) {
		t.Fatalf("layout differs from version|nonce|ciphertext: %v", err)
	}
	again, _ := b.Seal(pt, ad)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are identical (nonce reuse)")
	}

	other, _ := box(t)
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		b      *secrets.Box
		sealed []byte
		ad     []byte
	}{
		"wrong associated data": {b, sealed, []byte("p/u/other")},
		"wrong key":             {other, sealed, ad},
		"tampered":              {b, tampered, ad},
		"truncated":             {b, sealed[:10], ad},
		"empty":                 {b, nil, ad},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.b.Open(tc.sealed, tc.ad); !errors.Is(err, secrets.ErrOpen) {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := secrets.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if _, err := secrets.New(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

// FuzzOpen: arbitrary bytes never panic and never open.
func FuzzOpen(f *testing.F) {
	k := bytes.Repeat([]byte{7}, secrets.KeySize)
	b, _ := secrets.New(k)
	s, _ := b.Seal([]byte("x"), nil)
	f.Add(s)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Equal(data, s) {
			return
		}
		if _, err := b.Open(data, nil); err == nil {
			t.Fatalf("opened forged value %x", data)
		}
	})
}
