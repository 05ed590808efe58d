package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
)

// key is a secret decoded for the spec's scheme.
type key struct {
	sym    []byte
	ed     ed25519.PublicKey
	edPriv ed25519.PrivateKey
	ec     *ecdsa.PublicKey
	rsa    *rsa.PublicKey
}

func (v *SpecVerifier) key(s Secret) (key, error) {
	switch v.spec.Scheme {
	case "hmac", "hash", "jwt":
		b, err := symKey(s.Value, v.spec.SecretEncoding)
		if err != nil || len(b) == 0 {
			return key{}, errors.New("secret is not valid for its encoding")
		}
		return key{sym: b}, nil
	case "ed25519":
		pub, priv, err := parseEd25519(s.Value)
		return key{ed: pub, edPriv: priv}, err
	case "ecdsa", "rsa":
		pub, err := parsePublicKey(s.Value)
		if err != nil {
			return key{}, err
		}
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			if v.spec.Scheme == "ecdsa" {
				return key{ec: p}, nil
			}
		case *rsa.PublicKey:
			if v.spec.Scheme == "rsa" {
				return key{rsa: p}, nil
			}
		}
		return key{}, errors.New("public key type does not match the scheme")
	}
	return key{}, errors.New("scheme has no keys")
}

// parseEd25519 accepts the forms providers show: Standard Webhooks "whpk_"
// (public) and "whsk_" (secret; 32-byte seed or 64-byte seed‖public — the
// spec does not say which, so both), raw base64 of either, and hex (Discord).
func parseEd25519(v string) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	v = strings.TrimSpace(v)
	var b []byte
	var err error
	switch {
	case strings.HasPrefix(v, "whpk_"), strings.HasPrefix(v, "whsk_"):
		b, err = base64.StdEncoding.DecodeString(v[5:])
	default:
		if len(v) == 64 || len(v) == 128 {
			if hb, herr := hex.DecodeString(v); herr == nil {
				b = hb
				break
			}
		}
		b, err = base64.StdEncoding.DecodeString(v)
	}
	if err != nil {
		return nil, nil, errors.New("ed25519 key is not base64 or hex")
	}
	switch len(b) {
	case ed25519.PublicKeySize:
		if strings.HasPrefix(v, "whsk_") {
			priv := ed25519.NewKeyFromSeed(b)
			return priv.Public().(ed25519.PublicKey), priv, nil
		}
		return ed25519.PublicKey(b), nil, nil
	case ed25519.PrivateKeySize:
		priv := ed25519.NewKeyFromSeed(b[:32])
		return priv.Public().(ed25519.PublicKey), priv, nil
	}
	return nil, nil, errors.New("ed25519 key has the wrong length")
}

// parsePublicKey reads a PEM block or base64 DER (SubjectPublicKeyInfo; the
// form SendGrid's dashboard shows).
func parsePublicKey(v string) (crypto.PublicKey, error) {
	v = strings.TrimSpace(v)
	var der []byte
	if blk, _ := pem.Decode([]byte(v)); blk != nil {
		der = blk.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("public key is neither PEM nor base64 DER")
		}
		der = b
	}
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		return pub, nil
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub, nil
	}
	return nil, errors.New("public key cannot be parsed")
}

func (v *SpecVerifier) verifyAsym(k key, msg, sig []byte) bool {
	switch v.spec.Scheme {
	case "ed25519":
		return k.ed != nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, msg, sig)
	case "ecdsa":
		if k.ec == nil {
			return false
		}
		return ecdsa.VerifyASN1(k.ec, digest(v.spec.Algorithm, msg), sig)
	case "rsa":
		if k.rsa == nil {
			return false
		}
		h := cryptoHash(v.spec.Algorithm)
		return rsa.VerifyPKCS1v15(k.rsa, h, digest(v.spec.Algorithm, msg), sig) == nil
	}
	return false
}

func digest(alg string, msg []byte) []byte {
	switch alg {
	case "sha1":
		s := sha1.Sum(msg)
		return s[:]
	case "sha512":
		s := sha512.Sum512(msg)
		return s[:]
	default:
		s := sha256.Sum256(msg)
		return s[:]
	}
}

func cryptoHash(alg string) crypto.Hash {
	switch alg {
	case "sha1":
		return crypto.SHA1
	case "sha512":
		return crypto.SHA512
	default:
		return crypto.SHA256
	}
}
