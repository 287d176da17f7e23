package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// failingViews is a store whose reads fail while fail is set.
type failingViews struct {
	Store
	fail atomic.Bool
}

func (s *failingViews) View(fn func(Tx) error) error {
	if s.fail.Load() {
		return errors.New("disk read error")
	}
	return s.Store.View(fn)
}

// A delivery whose stored state cannot be read is retried, never dropped.
func TestWebhook_ReadErrorRetriesDelivery(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	fs := &failingViews{Store: NewMemoryStore()}
	e, err := New(fs, &Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	defer e.Close(context.Background())
	hook, err := e.CreateWebhook(t.Context(), &Webhook{URL: srv.URL})
	require.NoError(t, err)
	// Store a delivery due in an hour, so that the engine's own sender
	// leaves it alone, then attempt it here with its read failing.
	var key []byte
	require.NoError(t, e.update(func(w *wtx) error {
		if err := e.storeDelivery(w.Tx, hook.ID, Event{Type: EventJobCreated, At: e.now()}, []byte(`{}`), "", ""); err != nil {
			return err
		}
		var due []byte
		if err := w.Scan(bucketOutbox, nil, func(k, _ []byte) bool { due = append([]byte(nil), k...); return false }); err != nil {
			return err
		}
		_, _, seq, _ := parseOutboxKey(due)
		key = outboxKey(e.now().Add(time.Hour), hook.ID, seq)
		if err := w.Delete(bucketOutbox, due); err != nil {
			return err
		}
		return w.Put(bucketOutbox, key, []byte(hook.ID))
	}))
	fs.fail.Store(true)
	e.deliver(e.webhookClient(), string(key), hook.ID, 1)
	fs.fail.Store(false)
	var entries int
	require.NoError(t, e.store.View(func(tx Tx) error {
		return tx.Scan(bucketOutbox, nil, func(k, v []byte) bool { entries++; return true })
	}))
	require.Equal(t, 1, entries, "the delivery stays in the outbox, due again later")
	page, err := e.WebhookDeliveries(t.Context(), hook.ID, nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, DeliveryPending, page.Items[0].Status)
}

// Cleanup pages through every webhook, not only the first thousand.
func TestWebhook_CleanupPagesThroughEveryWebhook(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), &Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	defer e.Close(context.Background())
	const hooks = 1005
	settled := e.now().Add(-48 * time.Hour).UTC()
	require.NoError(t, e.store.Update(func(tx Tx) error {
		for i := 1; i <= hooks; i++ {
			id := fmt.Sprintf("webhook%d", i)
			if err := putObject(tx, bucketWebhooks, uint64(i), &Webhook{ID: id, URL: "http://127.0.0.1:1"}); err != nil {
				return err
			}
			if err := putObject(tx, deliveriesBucket(id), 1, &Delivery{ID: "d", WebhookID: id, Status: DeliveryDelivered, SettledAt: &settled}); err != nil {
				return err
			}
		}
		return nil
	}))
	st, err := e.Cleanup(t.Context(), e.now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(hooks), st.Deliveries)
}

// bucketLen counts the keys of a bucket.
func bucketLen(t *testing.T, s Store, bucket string) int {
	t.Helper()
	var n int
	require.NoError(t, s.View(func(tx Tx) error {
		return tx.Scan(bucket, nil, func(_, _ []byte) bool { n++; return true })
	}))
	return n
}

// An event is written with the change that causes it and reported only
// once that change commits: a write that fails leaves no audit entry and
// calls no subscriber; a committed one is seen by subscribers, which read
// the change already stored.
func TestOutbox_EventsReportedOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	var seen []EventType
	var storedWhenSeen []bool
	defer e.Subscribe(func(ev Event) {
		seen = append(seen, ev.Type)
		_ = e.store.View(func(tx Tx) error {
			storedWhenSeen = append(storedWhenSeen, tx.Get("test", []byte(ev.ObjectID)) != nil)
			return nil
		})
	})()
	audit := bucketLen(t, e.store, bucketAuditLog)
	boom := errors.New("refused")
	err = e.update(func(w *wtx) error {
		if err := w.Put("test", []byte("t1"), []byte("1")); err != nil {
			return err
		}
		return errors.Join(w.event(Event{Type: EventTemplateCreated, ObjectID: "t1"}), boom)
	})
	require.ErrorIs(t, err, boom)
	require.Empty(t, seen, "no event for a change that did not happen")
	require.Equal(t, audit, bucketLen(t, e.store, bucketAuditLog))

	require.NoError(t, e.update(func(w *wtx) error {
		for _, id := range []string{"t2", "t3"} {
			if err := w.Put("test", []byte(id), []byte("1")); err != nil {
				return err
			}
			if err := w.event(Event{Type: EventTemplateCreated, ObjectID: id}); err != nil {
				return err
			}
		}
		return w.event(Event{Type: EventTemplateDeleted, ObjectID: "t3"})
	}))
	require.Equal(t, []EventType{EventTemplateCreated, EventTemplateCreated, EventTemplateDeleted}, seen, "in order")
	require.Equal(t, []bool{true, true, true}, storedWhenSeen, "subscribers read the committed state")
	require.Equal(t, audit+3, bucketLen(t, e.store, bucketAuditLog))
}

// A job event stores a delivery (and its outbox entry) in its own
// transaction for each webhook that wants it, and the sender posts it
// after commit; with no webhook that wants it, nothing is written.
func TestOutbox_DeliveriesWrittenWithTheChange(t *testing.T) {
	t.Parallel()
	posted := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posted <- b
	}))
	defer srv.Close()
	e, err := New(NewMemoryStore(), &Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	defer e.Close(context.Background())

	require.NoError(t, e.update(func(w *wtx) error {
		return w.event(Event{Type: EventJobCreated, JobID: "batch_none"})
	}))
	require.Zero(t, bucketLen(t, e.store, bucketOutbox), "no webhook: no delivery")

	_, err = e.CreateWebhook(t.Context(), &Webhook{URL: srv.URL, Events: []EventType{EventJobCompleted}})
	require.NoError(t, err)
	require.NoError(t, e.update(func(w *wtx) error {
		return w.event(Event{Type: EventJobCreated, JobID: "batch_unwanted"})
	}))
	require.Zero(t, bucketLen(t, e.store, bucketOutbox), "an event the webhook does not want: no delivery")

	var inTx int
	require.NoError(t, e.update(func(w *wtx) error {
		if err := w.event(Event{Type: EventJobCompleted, JobID: "batch_done"}); err != nil {
			return err
		}
		return w.Scan(bucketOutbox, nil, func(_, _ []byte) bool { inTx++; return true })
	}))
	require.Equal(t, 1, inTx, "the outbox entry is part of the change's transaction")
	select {
	case b := <-posted:
		require.Contains(t, string(b), "batch_done")
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery was not sent")
	}
	require.Eventually(t, func() bool { return bucketLen(t, e.store, bucketOutbox) == 0 }, 10*time.Second, time.Millisecond,
		"a delivered entry leaves the outbox")
}
