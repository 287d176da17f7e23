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

var (
	_ batch.Claimer = (*Store)(nil)
	_ batch.LeaseTx = (*storeTx)(nil)
)

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

// Claim takes or renews the lease named name and returns its fencing
// token, which changes whenever the lease changes hands. It implements
// [batch.Claimer].
func (s *Store) Claim(ctx context.Context, name string) (uint64, bool, error) {
	var token int64
	err := s.pool.QueryRow(ctx, s.q.claim, name, s.owner, s.ttl.Milliseconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("pgstore: claim %s: %w", name, err)
	}
	return uint64(token), true, nil
}

// HoldsLease reports whether the lease named name is still held under
// token, and keeps it from changing hands until the transaction ends. It
// implements [batch.LeaseTx].
func (t *storeTx) HoldsLease(name string, token uint64) (bool, error) {
	if err := t.flush(); err != nil {
		return false, err
	}
	var one int
	err := t.tx.QueryRow(t.ctx, t.q.holds, name, int64(token)).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgstore: lease %s: %w", name, err)
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
