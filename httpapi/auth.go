package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
)

// Authenticator names the principal behind a request, or returns an error
// for a missing or unknown credential (answered with 401). Implementations
// must be safe for concurrent use.
type Authenticator interface {
	Authenticate(r *http.Request) (principal string, err error)
}

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(r *http.Request) (string, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (string, error) { return f(r) }

// Errors of the built-in authenticator.
var (
	ErrNoCredentials = errors.New("httpapi: no credentials")
	ErrUnknownKey    = errors.New("httpapi: unknown API key")
)

// APIKeys returns an [Authenticator] that accepts "Authorization: Bearer
// <key>" for any of keys. The principal is "key:" and the first 12 hex
// digits of the key's SHA-256, so keys never appear in stored data or logs.
// Keys are compared in constant time.
func APIKeys(keys ...string) Authenticator {
	sums := make([][32]byte, 0, len(keys))
	for _, k := range keys {
		if k != "" {
			sums = append(sums, sha256.Sum256([]byte(k)))
		}
	}
	return AuthenticatorFunc(func(r *http.Request) (string, error) {
		auth := r.Header.Get("Authorization")
		scheme, key, ok := strings.Cut(auth, " ")
		if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
			return "", ErrNoCredentials
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
		found := 0
		for _, s := range sums {
			found |= subtle.ConstantTimeCompare(sum[:], s[:])
		}
		if found == 0 {
			return "", ErrUnknownKey
		}
		return principalOf(sum), nil
	})
}

// KeyPrincipal returns the principal [APIKeys] names for key, for example to
// list the administrators in [Options].Admin.
func KeyPrincipal(key string) string {
	return principalOf(sha256.Sum256([]byte(strings.TrimSpace(key))))
}

func principalOf(sum [32]byte) string { return "key:" + hex.EncodeToString(sum[:6]) }

// remoteHost is the host part of a RemoteAddr.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
