package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

// twoOwners opens two stores on one fresh schema, as two processes would.
func twoOwners(t *testing.T) (a, b *pgstore.Store) {
	t.Helper()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	stores := make([]*pgstore.Store, 2)
	for i := range stores {
		s, err := pgstore.Open(t.Context(), url, &pgstore.Options{Schema: schema, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores[0], stores[1]
}

// expire ages the lease named name as if its holder had stopped renewing it.
func expire(t *testing.T, s *pgstore.Store, name string) {
	t.Helper()
	_, err := s.Pool().Exec(t.Context(), "UPDATE "+s.Schema()+".batch_leases SET expires_at = now() - interval '1 hour' WHERE name = $1", name)
	require.NoError(t, err)
}

// holds reports whether s's transactions find lease name held under token.
func holds(t *testing.T, s *pgstore.Store, name string, token uint64) bool {
	t.Helper()
	var held bool
	require.NoError(t, s.Update(func(tx batch.Tx) error {
		var err error
		held, err = tx.(batch.LeaseTx).HoldsLease(name, token)
		return err
	}))
	return held
}

// claim claims lease name for s and returns its token, 0 when another
// holds it.
func claim(t *testing.T, s *pgstore.Store, name string) uint64 {
	t.Helper()
	token, ok, err := s.Claim(t.Context(), name)
	require.NoError(t, err)
	require.Equal(t, ok, token != 0)
	return token
}

// TestLeaseTokens checks the fencing tokens: a lease keeps its token while
// one owner holds (and renews) it, and gets a new one each time it changes
// hands; a transaction finds it held only under the current token.
func TestLeaseTokens(t *testing.T) {
	t.Parallel()
	a, b := twoOwners(t)
	t1 := claim(t, a, "r")
	require.NotZero(t, t1)
	require.Equal(t, t1, claim(t, a, "r"), "the holder's claim renews the lease under its token")
	require.Zero(t, claim(t, b, "r"), "held by another")
	require.True(t, holds(t, a, "r", t1))

	// a's lease runs out unused: still a's, under its token.
	expire(t, a, "r")
	require.True(t, holds(t, a, "r", t1), "an expired lease nobody took is still held")

	t2 := claim(t, b, "r")
	require.NotZero(t, t2, "an expired lease is taken over")
	require.NotEqual(t, t1, t2)
	require.False(t, holds(t, a, "r", t1), "the old holder's token is refused")
	require.True(t, holds(t, b, "r", t2))

	// Released and taken by the first owner again: a third token.
	require.NoError(t, b.Release(t.Context(), "r"))
	require.False(t, holds(t, b, "r", t2), "a released lease is held by nobody")
	t3 := claim(t, a, "r")
	require.NotZero(t, t3)
	require.NotEqual(t, t1, t3)
	require.NotEqual(t, t2, t3)
	require.False(t, holds(t, a, "r", t1), "a token of an earlier hold of the same owner is refused")
}

// TestLeaseCheckHoldsOffTakeover checks that a transaction that found a
// lease held keeps it from changing hands until it commits: a claim of the
// expired lease waits for the commit and then sees what it wrote.
func TestLeaseCheckHoldsOffTakeover(t *testing.T) {
	t.Parallel()
	a, b := twoOwners(t)
	ctx := t.Context()
	token := claim(t, a, "r")
	expire(t, a, "r")
	claimed := make(chan uint64)
	// Inside the transaction only assert (a failed require would leave it
	// open, holding the lock the claim waits on).
	var waited bool
	require.NoError(t, a.Update(func(tx batch.Tx) error {
		held, err := tx.(batch.LeaseTx).HoldsLease("r", token)
		if !assert.NoError(t, err) || !assert.True(t, held) {
			return err
		}
		go func() {
			t2, ok, err := b.Claim(ctx, "r")
			if err != nil || !ok {
				t2 = 0
			}
			claimed <- t2
		}()
		// The claim waits on the lease row this transaction locked.
		waited = assert.Eventually(t, func() bool {
			var waiting int
			err := b.Pool().QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0",
				b.Schema()).Scan(&waiting)
			return err == nil && waiting > 0
		}, 10*time.Second, time.Millisecond, "the takeover waits for the commit")
		return tx.Put("outcomes", []byte("r"), []byte("stored under the lease"))
	}))
	require.True(t, waited)
	t2 := <-claimed
	require.NotZero(t, t2, "the takeover succeeds after the commit")
	require.NotEqual(t, token, t2)
	require.NoError(t, b.View(func(tx batch.Tx) error {
		require.Equal(t, []byte("stored under the lease"), tx.Get("outcomes", []byte("r")), "the new holder sees the commit")
		return nil
	}))
}
