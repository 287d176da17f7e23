package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hit counts a rate-limited request under key at now unless n requests
// under key already fall in (now-per, now], so that API servers on one
// database share their rate limits (it implements httpapi.RateStore). A
// transaction advisory lock per key makes concurrent hits exact.
func (s *Store) Hit(ctx context.Context, key string, now time.Time, per time.Duration, n int) (allowed bool, count int, oldest time.Time, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(s.schema, "rate\x00"+key)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.rateSweep, key, now.Add(-per)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, s.q.rateCount, key, now).Scan(&count, &oldest); err != nil {
			return err
		}
		if count >= n {
			return nil
		}
		if _, err := tx.Exec(ctx, s.q.rateHit, key, now); err != nil {
			return err
		}
		allowed = true
		count++
		return nil
	})
	if err != nil {
		return false, 0, time.Time{}, fmt.Errorf("pgstore: rate limit: %w", err)
	}
	return allowed, count, oldest, nil
}
