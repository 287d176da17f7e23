package pgstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchworks/batch"
)

var _ batch.Notifier = (*Store)(nil)

// notifyChannel is the LISTEN/NOTIFY channel of the stores of schema: a
// hash of the schema's name, so that it is a plain identifier well within
// PostgreSQL's 63 bytes whatever the schema is called, and the stores of
// other schemas on the same database do not hear it.
func notifyChannel(schema string) string {
	h := fnv.New64a()
	h.Write([]byte("batch\x00" + schema + "\x00notify"))
	return fmt.Sprintf("batch_notify_%016x", h.Sum64())
}

// Notify wakes the other stores of the same schema, in this process or
// others, through PostgreSQL's NOTIFY: their [Store.Notifications] receive
// a value. It implements [batch.Notifier].
func (s *Store) Notify(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", s.channel, s.owner); err != nil {
		return fmt.Errorf("pgstore: notify: %w", err)
	}
	return nil
}

// Notifications receives a value when another store of the same schema
// called [Store.Notify], and when the store's listening connection was
// connected again after a failure (a notification may have been missed
// meanwhile). It buffers one value; the store's own notifications are
// not delivered. The channel is never closed. It implements
// [batch.Notifier].
func (s *Store) Notifications() <-chan struct{} { return s.notified }

// Backoff of the listening connection after a failure.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// listen connects the listening connection and LISTENs on the schema's
// channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		s.closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func (s *Store) closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// listenLoop delivers the notifications of the schema's channel until
// Close, connecting again with a backoff when the connection fails. conn
// is the connection Open made, or nil when it could not.
func (s *Store) listenLoop(conn *pgx.Conn) {
	defer close(s.listenDone)
	wait := listenRetryMin
	for {
		if conn == nil {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, listenRetryMax)
			var err error
			if conn, err = s.listen(s.ctx); err != nil {
				continue
			}
			// Whatever was notified while no connection listened is lost:
			// have the engine look.
			s.signal()
		}
		n, err := conn.WaitForNotification(s.ctx)
		if err != nil {
			s.closeConn(conn)
			conn = nil
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		wait = listenRetryMin
		if n.Payload != s.owner {
			s.signal()
		}
	}
}

// signal delivers a notification unless one is waiting already.
func (s *Store) signal() {
	select {
	case s.notified <- struct{}{}:
	default:
	}
}
