package pgtest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// Schema names are fresh, valid, unquoted PostgreSQL identifiers.
func TestSchema(t *testing.T) {
	t.Parallel()
	ident := regexp.MustCompile(`^t_[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		s := Schema(t)
		require.Regexp(t, ident, s)
		require.False(t, seen[s], "a fresh name each time")
		seen[s] = true
	}
}

// findBin finds the directory of initdb (and pg_ctl), or says how to get
// a server.
func TestFindBin(t *testing.T) {
	t.Parallel()
	dir, err := findBin()
	if err != nil {
		require.ErrorContains(t, err, EnvURL)
		return
	}
	_, err = os.Stat(filepath.Join(dir, "initdb"))
	require.NoError(t, err)
}

// With EnvURL set, URL hands out that server and starts no cluster of its
// own, so Stop has nothing to do. The server is chosen once, on the first
// call: a later change of the environment does not move the tests already
// using it. (Starting the throwaway cluster is exercised by the store tests
// that use it.)
func TestURL_FromEnvironment(t *testing.T) {
	const want = "host=/nowhere user=test dbname=test"
	t.Setenv(EnvURL, want)
	require.Equal(t, want, URL(t))
	t.Setenv(EnvURL, "host=/elsewhere user=other dbname=other")
	require.Equal(t, want, URL(t), "the same server for every test, whatever the environment says later")
	require.Empty(t, dataDir, "no cluster started")
	Stop()
}
