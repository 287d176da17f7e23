package pgstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

var _ httpapi.RateStore = (*pgstore.Store)(nil)

// TestRateLimitsAcrossServers runs two API servers on one database with a
// limit of 3 job creations per hour: the fourth creation is refused
// whichever server gets it.
func TestRateLimitsAcrossServers(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	var servers []*httptest.Server
	for range 2 {
		s, err := pgstore.Open(t.Context(), url, &pgstore.Options{Schema: schema, MaxConns: 4})
		require.NoError(t, err)
		e, err := batch.New(s, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		h := httpapi.New(e, &httpapi.Options{RateStore: s, RateLimits: httpapi.RateLimits{JobCreation: httpapi.Limit{Requests: 3, Per: time.Hour}}})
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		servers = append(servers, srv)
	}
	post := func(srv *httptest.Server) *http.Response {
		res, err := http.Post(srv.URL+httpapi.Prefix+"/jobs", "application/json",
			strings.NewReader(`{"batch": {"operations": [{"type": "export", "resource": "fields"}]}}`))
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	for i, want := range []int{201, 201, 201, 429, 429} {
		res := post(servers[i%2])
		require.Equal(t, want, res.StatusCode, "creation %d", i+1)
		if want == 429 {
			require.NotEmpty(t, res.Header.Get("Retry-After"))
		} else {
			require.Equal(t, []string{"2", "1", "0"}[i], res.Header.Get("X-RateLimit-Remaining"))
		}
	}
}
