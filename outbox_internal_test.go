package batch

import (
	"context"
	"errors"
	"fmt"
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
	// Store a delivery without waking the sender, then fail its read.
	var key []byte
	require.NoError(t, e.update(func(w *wtx) error {
		if err := e.storeDelivery(w.Tx, hook.ID, Event{Type: EventJobCreated, At: e.now()}, []byte(`{}`), "", ""); err != nil {
			return err
		}
		return w.Scan(bucketOutbox, nil, func(k, _ []byte) bool { key = append([]byte(nil), k...); return false })
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

// A write that fails in a group commit is answered with its error; the
// writes that shared its transaction are committed without it.
func TestCommitter_FailedWriteLeavesTheOthers(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	boom := errors.New("refused")
	c := e.committer
	fail := &write{done: make(chan struct{}), fn: func(w *wtx) error {
		if err := w.Put("test", []byte("bad"), []byte("1")); err != nil {
			return err
		}
		return boom
	}}
	ok := &write{done: make(chan struct{}), fn: func(w *wtx) error {
		if err := w.Put("test", []byte("good"), []byte("1")); err != nil {
			return err
		}
		return w.event(Event{Type: EventTemplateCreated, ObjectID: "template1"})
	}}
	c.mu.Lock()
	c.writes = append(c.writes, fail, ok)
	c.mu.Unlock()
	signal(c.wake)
	<-fail.done
	<-ok.done
	require.ErrorIs(t, fail.err, boom)
	require.NoError(t, ok.err)
	require.NoError(t, e.store.View(func(tx Tx) error {
		require.Nil(t, tx.Get("test", []byte("bad")))
		require.NotNil(t, tx.Get("test", []byte("good")))
		return nil
	}))
	page, err := e.AuditEvents(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 1, "the event of the committed write, once")
}
