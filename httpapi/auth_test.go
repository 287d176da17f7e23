package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/httpapi"
)

// TestAPIKeys: a Bearer key from the list names the principal "key:" and
// the first 12 hex digits of its SHA-256, the same as KeyPrincipal; a
// missing credential and an unknown key are told apart.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	auth := httpapi.APIKeys("alice-key", "", "bob-key")
	sum := sha256.Sum256([]byte("alice-key"))
	alice := "key:" + hex.EncodeToString(sum[:])[:12]
	require.Equal(t, alice, httpapi.KeyPrincipal("alice-key"))
	require.Equal(t, alice, httpapi.KeyPrincipal(" alice-key "), "spaces around a key do not count")
	require.NotEqual(t, alice, httpapi.KeyPrincipal("bob-key"))
	for _, c := range []struct {
		header    string
		principal string
		err       error
	}{
		{"Bearer alice-key", alice, nil},
		{"bearer alice-key", alice, nil},
		{"Bearer  alice-key ", alice, nil},
		{"Bearer bob-key", httpapi.KeyPrincipal("bob-key"), nil},
		{"", "", httpapi.ErrNoCredentials},
		{"Bearer", "", httpapi.ErrNoCredentials},
		{"Bearer ", "", httpapi.ErrNoCredentials},
		{"Basic alice-key", "", httpapi.ErrNoCredentials},
		{"Bearer carol-key", "", httpapi.ErrUnknownKey},
		{"Bearer  ", "", httpapi.ErrUnknownKey},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		p, err := auth.Authenticate(r)
		require.ErrorIs(t, err, c.err, "%q", c.header)
		if c.err == nil {
			require.NoError(t, err, "%q", c.header)
		}
		require.Equal(t, c.principal, p, "%q", c.header)
	}
}

// TestAuthenticate_HTTP: without a valid credential every API route is
// 401 UNAUTHORIZED with a Bearer challenge; the message says what was
// wrong; a custom Authenticator names the principal.
func TestAuthenticate_HTTP(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.AuthenticatorFunc(func(r *http.Request) (string, error) {
		switch r.Header.Get("X-User") {
		case "":
			return "", httpapi.ErrNoCredentials
		case "mallory":
			return "", errors.New("mallory is banned")
		}
		return "user:" + r.Header.Get("X-User"), nil
	})}, nil)
	res := tb.must(t, http.StatusUnauthorized, "POST", "/jobs", docRequest)
	require.Equal(t, "UNAUTHORIZED", res.err["code"])
	require.Equal(t, "a valid API key is required: send Authorization: Bearer <key>", res.err["message"])
	require.Equal(t, `Bearer realm="batch"`, res.header.Get("WWW-Authenticate"))
	res = tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "", "X-User", "mallory")
	require.Equal(t, "mallory is banned", res.err["message"])

	id := tb.submit(t, docRequest, "X-User", "ann")
	res = tb.must(t, http.StatusOK, "GET", "/jobs/"+id, "", "X-User", "ann")
	require.Equal(t, id, res.data["job_id"])
	tb.must(t, http.StatusNotFound, "GET", "/jobs/"+id, "", "X-User", "ben")
}

// TestFailedAuthLimit: past RateLimits.FailedAuth wrong keys, an address
// gets 429 for every request, a right key included, until the window
// frees up; requests without credentials do not count; the limit holds
// with rate limits disabled.
func TestFailedAuthLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Now: clock.Now, Authenticator: httpapi.APIKeys("good"),
		RateLimits: httpapi.RateLimits{FailedAuth: httpapi.Limit{Requests: 3, Per: time.Minute}}}, nil)
	for range 5 {
		tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "")
	}
	for i := range 2 {
		tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "", bearer(fmt.Sprint("guess", i))...)
	}
	tb.must(t, http.StatusOK, "GET", "/jobs", "", bearer("good")...)
	tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "", bearer("guess2")...)
	res := tb.must(t, http.StatusTooManyRequests, "GET", "/jobs", "", bearer("guess3")...)
	require.Equal(t, "RATE_LIMITED", res.err["code"])
	require.Equal(t, "60", res.header.Get("Retry-After"))
	tb.must(t, http.StatusTooManyRequests, "GET", "/jobs", "", bearer("good")...)
	clock.Advance(time.Minute)
	tb.must(t, http.StatusOK, "GET", "/jobs", "", bearer("good")...)
}

// TestFailedAuthLimit_Off: a negative FailedAuth.Requests turns the limit
// off.
func TestFailedAuthLimit_Off(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("good"),
		RateLimits: httpapi.RateLimits{FailedAuth: httpapi.Limit{Requests: -1}}}, nil)
	for range 15 {
		tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "", bearer("guess")...)
	}
	tb.must(t, http.StatusOK, "GET", "/jobs", "", bearer("good")...)
}
