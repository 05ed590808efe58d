package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files written by LoadOrCreateSigningKey inside its directory.
const (
	SigningKeyFile    = "signing-key.pem"
	SigningPubKeyFile = "signing-key.pub.pem"
)

// signingKeyBits is the size of generated keys: the smallest size still
// considered sound, and verification cost grows with it on the hot path.
const signingKeyBits = 2048

// KeyID returns a short stable identifier for pub: the first 16 hex chars of
// the SHA-256 of its PKIX DER encoding. Tokens carry it as kid and operators
// see it in logs, so it must not depend on how the PEM was formatted.
// It returns "" for a nil or unencodable key.
func KeyID(pub *rsa.PublicKey) string {
	if pub == nil || pub.N == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// ParsePublicKeyPEM parses the first PEM block of data as an RSA public key,
// either PKIX ("PUBLIC KEY", what openssl and most tools emit) or PKCS#1
// ("RSA PUBLIC KEY").
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: parse public key: no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: parse public key: %w", err)
		}
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("auth: parse public key: got %T, want RSA", k)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: parse public key: %w", err)
		}
		return pub, nil
	default:
		return nil, fmt.Errorf("auth: parse public key: unsupported PEM type %q", block.Type)
	}
}

// EncodePublicKeyPEM returns pub as a PKIX "PUBLIC KEY" PEM block. It panics
// on a nil or malformed key: that is a programming error, and an empty string
// written to a key file would fail far from the cause.
func EncodePublicKeyPEM(pub *rsa.PublicKey) string {
	if pub == nil || pub.N == nil {
		panic("auth: encode public key: nil key")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only unrepresentable keys fail; a valid *rsa.PublicKey never does.
		panic(fmt.Sprintf("auth: encode public key: %v", err))
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// ParsePrivateKeyPEM parses the first PEM block of data as an RSA private
// key, either PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
// Encrypted PEM is not supported.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: parse private key: no PEM block found")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: parse private key: %w", err)
		}
		priv, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth: parse private key: got %T, want RSA", k)
		}
		return priv, nil
	case "RSA PRIVATE KEY":
		priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: parse private key: %w", err)
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("auth: parse private key: unsupported PEM type %q", block.Type)
	}
}

// EncodePrivateKeyPEM returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodePrivateKeyPEM(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("auth: encode private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// LoadOrCreateSigningKey returns the signing key stored in dir, generating
// and persisting a new RSA-2048 key on first use (created is then true). The
// private key is written 0600 in a 0700 dir; the public half is written next
// to it, 0644, so it can be handed to verifiers.
//
// Creation is race-free: if two processes start on an empty dir at once,
// both end up with the same key, because the key file only ever appears
// whole and is never replaced once it exists.
func LoadOrCreateSigningKey(dir string) (*rsa.PrivateKey, bool, error) {
	keyPath := filepath.Join(dir, SigningKeyFile)
	key, err := readSigningKey(keyPath)
	switch {
	case err == nil:
		return key, false, ensurePublicKeyFile(dir, key)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("auth: create key dir: %w", err)
	}
	key, err = rsa.GenerateKey(rand.Reader, signingKeyBits)
	if err != nil {
		return nil, false, fmt.Errorf("auth: generate signing key: %w", err)
	}
	pemText, err := EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, false, err
	}
	won, err := createExclusive(dir, keyPath, []byte(pemText))
	if err != nil {
		return nil, false, fmt.Errorf("auth: write signing key: %w", err)
	}
	if !won {
		// Someone else created it between our read and write; theirs wins.
		key, err = readSigningKey(keyPath)
		if err != nil {
			return nil, false, err
		}
		return key, false, ensurePublicKeyFile(dir, key)
	}
	return key, true, ensurePublicKeyFile(dir, key)
}

func readSigningKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read signing key: %w", err)
	}
	key, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// createExclusive makes path hold data, 0600, unless path already exists
// (won is then false). The data goes to a temp file first and is hard-linked
// into place, so readers never see a partial key and an existing key is never
// overwritten.
func createExclusive(dir, path string, data []byte) (won bool, err error) {
	tmp, err := writeTemp(dir, data, 0o600)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	// Some filesystems have no hard links; fall back to an O_EXCL create,
	// which still never overwrites but may leave a torn file on a crash.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

// ensurePublicKeyFile (re)writes the public half if it is missing, e.g. after
// an operator deleted it or a crash between the two writes. It is derived
// data, so replacing it is always safe.
func ensurePublicKeyFile(dir string, key *rsa.PrivateKey) error {
	pubPath := filepath.Join(dir, SigningPubKeyFile)
	want := EncodePublicKeyPEM(&key.PublicKey)
	if have, err := os.ReadFile(pubPath); err == nil && string(have) == want {
		return nil
	}
	tmp, err := writeTemp(dir, []byte(want), 0o644)
	if err != nil {
		return fmt.Errorf("auth: write public key: %w", err)
	}
	if err := os.Rename(tmp, pubPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("auth: write public key: %w", err)
	}
	return nil
}

// writeTemp writes data to a new temp file in dir with mode perm and returns
// its path. The file is synced so a later link/rename cannot expose an empty
// file after a crash.
func writeTemp(dir string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".signing-key-*.tmp")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	// CreateTemp uses 0600; Chmod (unlike the open mode) ignores the umask,
	// so the public key really ends up world-readable.
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}
