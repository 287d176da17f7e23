package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Outbox keys order deliveries by due time and read back; a key that is
// not one is refused.
func TestOutboxKey(t *testing.T) {
	t.Parallel()
	due := time.Unix(1_700_000_000, 123)
	k := outboxKey(due, "webhook7", 42)
	at, hook, seq, ok := parseOutboxKey(k)
	require.True(t, ok)
	require.True(t, at.Equal(due))
	require.Equal(t, "webhook7", hook)
	require.Equal(t, uint64(42), seq)
	require.Negative(t, bytes.Compare(outboxKey(due, "webhook9", 99), outboxKey(due.Add(time.Nanosecond), "webhook1", 1)), "earlier first, whatever the webhook")
	for _, bad := range [][]byte{nil, k[:10], append(bytes.Clone(k[:8]), "webhook7xxxxxxxxx"...), append(bytes.Clone(k), 0)} {
		_, _, _, ok := parseOutboxKey(bad)
		require.False(t, ok, "%q", bad)
	}
}

// send POSTs the payload signed the Standard Webhooks way, with the
// severity header when there is one; a non-2xx answer is an error that
// keeps the status.
func TestSend(t *testing.T) {
	t.Parallel()
	type got struct {
		header http.Header
		body   []byte
	}
	reqs := make(chan got, 2)
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- got{r.Header.Clone(), b}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	e, err := New(NewMemoryStore(), &Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	defer e.Close(context.Background())
	secret, err := newSecret()
	require.NoError(t, err)
	hook := &Webhook{URL: srv.URL, Secret: secret}
	d := &Delivery{ID: "dlv1", Payload: json.RawMessage(`{"type":"batch_event"}`), Severity: "high"}
	client := e.webhookClient()
	code, err := e.send(client, hook, d)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	r := <-reqs
	require.Equal(t, `{"type":"batch_event"}`, string(r.body))
	require.Equal(t, "dlv1", r.header.Get("webhook-id"))
	require.Equal(t, "high", r.header.Get("X-Severity"))
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	want, err := Sign(secret, "dlv1", ts, r.body)
	require.NoError(t, err)
	require.Equal(t, want, r.header.Get("webhook-signature"))

	status = http.StatusServiceUnavailable
	code, err = e.send(client, hook, &Delivery{ID: "dlv2", Payload: json.RawMessage(`{}`)})
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Empty(t, (<-reqs).header.Get("X-Severity"), "no severity, no header")
}

// The delivery client refuses private addresses unless they are allowed,
// and never follows a redirect.
func TestWebhookClient(t *testing.T) {
	t.Parallel()
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
	}))
	defer srv.Close()
	for _, allow := range []bool{false, true} {
		e, err := New(NewMemoryStore(), &Options{AllowPrivateWebhooks: allow})
		require.NoError(t, err)
		res, err := e.webhookClient().Get(srv.URL)
		if !allow {
			require.True(t, errors.Is(err, errPrivateAddress), "%v", err)
		} else {
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusFound, res.StatusCode, "the redirect is the answer")
		}
		require.NoError(t, e.Close(context.Background()))
	}
	require.Equal(t, 1, hits, "only the allowed client reached the loopback receiver")
}

// deleteMatching deletes what match picks and says how many; a match
// error is the answer.
func TestDeleteMatching(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	require.NoError(t, s.Update(func(tx Tx) error {
		for i := range uint64(6) {
			if err := tx.Put("b", u64key(i), []byte(strconv.FormatUint(i%2, 10))); err != nil {
				return err
			}
		}
		return nil
	}))
	odd := func(_, v []byte) (bool, error) { return string(v) == "1", nil }
	boom := errors.New("boom")
	require.ErrorIs(t, s.Update(func(tx Tx) error {
		_, err := deleteMatching(tx, "b", func(k, v []byte) (bool, error) {
			if beUint64(k) == 4 {
				return false, boom
			}
			return true, nil
		})
		return err
	}), boom)
	var n int
	require.NoError(t, s.Update(func(tx Tx) (err error) { n, err = deleteMatching(tx, "b", odd); return err }))
	require.Equal(t, 3, n)
	var left []string
	require.NoError(t, s.View(func(tx Tx) error {
		return tx.Scan("b", nil, func(_, v []byte) bool { left = append(left, string(v)); return true })
	}))
	require.Equal(t, []string{"0", "0", "0"}, left)
}

// Cleanup finds a schedule's notification deliveries and a webhook's by
// the ids their keys give, and keeps the unsettled ones.
func TestCleanupDeliveries_SchedulesAndWebhooks(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	settled := e.now().Add(-48 * time.Hour).UTC()
	require.NoError(t, e.store.Update(func(tx Tx) error {
		if err := putObject(tx, bucketSchedules, 7, &Schedule{ID: "schedule7"}); err != nil {
			return err
		}
		if err := putObject(tx, bucketWebhooks, 3, &Webhook{ID: "webhook3"}); err != nil {
			return err
		}
		for _, id := range []string{"schedule7", "webhook3"} {
			if err := putObject(tx, deliveriesBucket(id), 1, &Delivery{ID: "d1", Status: DeliveryDelivered, SettledAt: &settled}); err != nil {
				return err
			}
			if err := putObject(tx, deliveriesBucket(id), 2, &Delivery{ID: "d2", Status: DeliveryPending}); err != nil {
				return err
			}
		}
		return nil
	}))
	n, err := e.cleanupDeliveries(t.Context(), e.now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the settled delivery of each")
	for _, id := range []string{"schedule7", "webhook3"} {
		page, err := viewPage[*Delivery](e.store, deliveriesBucket(id), nil)
		require.NoError(t, err)
		require.Len(t, page.Items, 1, id)
		require.Equal(t, "d2", page.Items[0].ID, id)
	}
}
