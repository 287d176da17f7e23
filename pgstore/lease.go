package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchworks/batch"
)

var _ batch.Claimer = (*Store)(nil)

// DefaultLeaseTTL is how long a lease outlives its last renewal.
const DefaultLeaseTTL = 10 * time.Second

// newOwner names this process in the leases table: host, pid and a random
// suffix, so two stores opened by one process are two owners.
func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner returns the name this store's process holds leases under.
func (s *Store) Owner() string { return s.owner }

// Claim takes or renews the lease named name. It implements
// [batch.Claimer].
func (s *Store) Claim(ctx context.Context, name string) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, s.q.claim, name, s.owner, s.ttl.Milliseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgstore: claim %s: %w", name, err)
	}
	return true, nil
}

// Renew extends every lease this store holds and returns their names. It
// implements [batch.Claimer].
func (s *Store) Renew(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, s.q.renew, s.owner, s.ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("pgstore: renew: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: renew: %w", err)
	}
	held := make(map[string]bool, len(names))
	for _, n := range names {
		held[n] = true
	}
	return held, nil
}

// Release gives up the lease named name if this store holds it. It
// implements [batch.Claimer].
func (s *Store) Release(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, s.q.release, name, s.owner); err != nil {
		return fmt.Errorf("pgstore: release %s: %w", name, err)
	}
	return nil
}
