package batch_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// receiver is a real webhook endpoint on loopback that records what it gets.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status atomic.Int32 // answer; 0 means 200
	hang   chan struct{}
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if rc.hang != nil {
			select {
			case <-rc.hang:
			case <-r.Context().Done():
			}
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), body})
		rc.mu.Unlock()
		if s := rc.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	t.Cleanup(func() {
		if rc.hang != nil {
			close(rc.hang)
		}
		rc.srv.Close()
	})
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// verify checks a delivery's Standard Webhooks signature with secret,
// computed here independently of the engine.
func verify(t *testing.T, secret string, r received) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.header.Get("webhook-id") + "." + r.header.Get("webhook-timestamp") + "."))
	mac.Write(r.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	require.Equal(t, want, r.header.Get("webhook-signature"))
}

func TestWebhook_SignedDeliveries(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", &batch.Options{AllowPrivateWebhooks: true})
	tb.seedFields(t, 20)
	rc := newReceiver(t)
	ctx := batch.WithPrincipal(t.Context(), "alice")
	hook, err := tb.e.CreateWebhook(ctx, &batch.Webhook{URL: rc.srv.URL + "/hook", Events: []batch.EventType{batch.EventJobCreated, batch.EventJobCompleted}})
	require.NoError(t, err)
	require.Regexp(t, `^webhook\d+$`, hook.ID)
	require.True(t, strings.HasPrefix(hook.Secret, "whsec_"))

	// Bob's webhook never hears of Alice's jobs.
	bobs := newReceiver(t)
	bob := batch.WithPrincipal(t.Context(), "bob")
	bobsHook, err := tb.e.CreateWebhook(bob, &batch.Webhook{URL: bobs.srv.URL})
	require.NoError(t, err)

	job, err := tb.e.Submit(ctx, docBatch(t), nil)
	require.NoError(t, err)
	tb.wait(t, job.ID)
	require.Eventually(t, func() bool { return len(rc.received()) == 2 }, 10*time.Second, 5*time.Millisecond)
	var types []string
	for _, r := range rc.received() {
		verify(t, hook.Secret, r)
		require.NotEmpty(t, r.header.Get("webhook-id"))
		var p struct {
			Type      string `json:"type"`
			Timestamp string `json:"timestamp"`
			Event     struct {
				Type    string         `json:"type"`
				JobID   string         `json:"job_id"`
				Details map[string]any `json:"details"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(r.body, &p))
		require.Equal(t, "batch_event", p.Type)
		_, err := time.Parse(time.RFC3339Nano, p.Timestamp)
		require.NoError(t, err)
		require.Equal(t, job.ID, p.Event.JobID)
		types = append(types, p.Event.Type)
		if p.Event.Type == "job_completed" {
			require.Equal(t, 5.0, p.Event.Details["total_operations"])
			require.Equal(t, 5.0, p.Event.Details["succeeded"])
			require.Equal(t, 0.0, p.Event.Details["failed"])
			require.NotEmpty(t, p.Event.Details["duration"])
		}
	}
	require.ElementsMatch(t, []string{"job_created", "job_completed"}, types)

	var page *batch.DeliveryPage
	require.Eventually(t, func() bool {
		page, err = tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && len(page.Items) == 2 && page.Items[0].Status == batch.DeliveryDelivered && page.Items[1].Status == batch.DeliveryDelivered
	}, 10*time.Second, time.Millisecond, "the receiver's answers are recorded")
	for _, d := range page.Items {
		require.Equal(t, batch.DeliveryDelivered, d.Status)
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, 200, d.LastStatusCode)
	}
	// A delivery is stored in the transaction of its event: had Bob's
	// webhook wanted Alice's events, its deliveries would be there by now.
	bobsPage, err := tb.e.WebhookDeliveries(bob, bobsHook.ID, nil)
	require.NoError(t, err)
	require.Empty(t, bobsPage.Items)
	require.Empty(t, bobs.received())

	_, err = tb.e.WebhookDeliveries(t.Context(), "webhook999", nil)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = tb.e.WebhookDeliveries(t.Context(), "webhook999", &batch.PageOptions{Cursor: "x"})
	require.ErrorIs(t, err, batch.ErrNotFound, "an unknown webhook wins over a bad cursor")
	_, err = tb.e.WebhookDeliveries(t.Context(), hook.ID, &batch.PageOptions{Cursor: "x"})
	require.Equal(t, batch.CodeInvalidBatch, batch.CodeOf(err))
}

func TestWebhook_RetriesWithBackoff(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{AllowPrivateWebhooks: true, WebhookRetryDelay: 10 * time.Millisecond, WebhookAttempts: 3})
	rc := newReceiver(t)
	rc.status.Store(500)
	hook, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: rc.srv.URL, Events: []batch.EventType{batch.EventJobCreated}})
	require.NoError(t, err)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	tb.submit(t, opBatch("noop", 1, batch.BatchOptions{}))
	require.Eventually(t, func() bool { return len(rc.received()) == 2 }, 10*time.Second, time.Millisecond)
	rc.status.Store(0) // the receiver recovers: the third try gets through
	require.Eventually(t, func() bool {
		page, err := tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && len(page.Items) == 1 && page.Items[0].Status == batch.DeliveryDelivered
	}, 10*time.Second, time.Millisecond)
	page, _ := tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
	require.Equal(t, 3, page.Items[0].Attempts)
	got := rc.received()
	require.Len(t, got, 3)
	require.Equal(t, got[0].header.Get("webhook-id"), got[2].header.Get("webhook-id"), "a retry keeps the message id")

	// A receiver that never recovers: the delivery fails after 3 tries.
	rc.status.Store(503)
	tb.submit(t, opBatch("noop", 1, batch.BatchOptions{}))
	require.Eventually(t, func() bool {
		page, err := tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && len(page.Items) == 2 && page.Items[1].Status == batch.DeliveryFailed
	}, 10*time.Second, time.Millisecond)
	page, _ = tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
	require.Equal(t, 3, page.Items[1].Attempts)
	require.Equal(t, 503, page.Items[1].LastStatusCode)
}

func TestWebhook_DeliveryAfterRestart(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/hooks.db"
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rc := newReceiver(t)
	rc.status.Store(503)
	opts := &batch.Options{AllowPrivateWebhooks: true, Now: clock, WebhookRetryDelay: time.Hour}
	e, err := batch.Open(path, opts)
	require.NoError(t, err)
	hook, err := e.CreateWebhook(t.Context(), &batch.Webhook{URL: rc.srv.URL, Events: []batch.EventType{batch.EventJobCreated}})
	require.NoError(t, err)
	require.NoError(t, e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	_, err = e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(rc.received()) == 1 }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		page, err := e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && page.Items[0].Attempts == 1
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, e.Close(t.Context()))

	rc.status.Store(0)
	mu.Lock()
	now = now.Add(2 * time.Hour) // the retry falls due while the engine is down
	mu.Unlock()
	e, err = batch.Open(path, opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	require.Eventually(t, func() bool {
		page, err := e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && page.Items[0].Status == batch.DeliveryDelivered
	}, 10*time.Second, time.Millisecond)
	require.Len(t, rc.received(), 2)
}

func TestWebhook_SlowReceiverDelaysNothingElse(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", &batch.Options{AllowPrivateWebhooks: true, WebhookTimeout: time.Minute})
	slow := newReceiver(t)
	slow.hang = make(chan struct{})
	fast := newReceiver(t)
	_, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: slow.srv.URL})
	require.NoError(t, err)
	_, err = tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: fast.srv.URL, Events: []batch.EventType{batch.EventJobCompleted}})
	require.NoError(t, err)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	var ids []string
	for range 10 {
		ids = append(ids, tb.submit(t, opBatch("noop", 50, batch.BatchOptions{})).ID)
	}
	for _, id := range ids {
		require.Equal(t, batch.StateCompleted, tb.wait(t, id).Status, "jobs finish while a receiver hangs")
	}
	require.Eventually(t, func() bool { return len(fast.received()) == 10 }, 10*time.Second, time.Millisecond)
	require.Empty(t, slow.received(), "the slow receiver is still holding its first requests")
}

func TestWebhook_PrivateAddresses(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	for _, u := range []string{"http://127.0.0.1:9/x", "http://localhost:8080/", "http://10.1.2.3/", "http://192.168.0.1/", "http://169.254.169.254/latest", "http://[::1]/", "ftp://example.com/", "not a url"} {
		_, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: u})
		require.Contains(t, detailFields(t, err), "url", u)
	}
	_, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: "https://example.com/webhook", Events: []batch.EventType{"job_exploded"}})
	require.Contains(t, detailFields(t, err), "events[0]")

	// Allowed when saved, refused at delivery time once not allowed.
	path := t.TempDir() + "/private.db"
	rc := newReceiver(t)
	e, err := batch.Open(path, &batch.Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	hook, err := e.CreateWebhook(t.Context(), &batch.Webhook{URL: rc.srv.URL, Events: []batch.EventType{batch.EventJobCreated}})
	require.NoError(t, err)
	require.NoError(t, e.Close(t.Context()))
	e, err = batch.Open(path, &batch.Options{WebhookAttempts: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	require.NoError(t, e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	_, err = e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		page, err := e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && len(page.Items) == 1 && page.Items[0].Status == batch.DeliveryFailed
	}, 10*time.Second, time.Millisecond)
	page, _ := e.WebhookDeliveries(t.Context(), hook.ID, nil)
	require.Contains(t, page.Items[0].LastError, "private or loopback")
	require.Empty(t, rc.received())
}

func TestWebhook_CleanupRemovesSettledDeliveries(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	tb := setup(t, "bolt", &batch.Options{AllowPrivateWebhooks: true, Now: clock.Now})
	rc := newReceiver(t)
	hook, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: rc.srv.URL, Events: []batch.EventType{batch.EventJobCreated}})
	require.NoError(t, err)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	tb.wait(t, tb.submit(t, opBatch("noop", 1, batch.BatchOptions{})).ID)
	require.Eventually(t, func() bool {
		page, err := tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
		return err == nil && len(page.Items) == 1 && page.Items[0].Status == batch.DeliveryDelivered
	}, 10*time.Second, time.Millisecond)

	stats, err := tb.e.Cleanup(t.Context(), clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, stats.Deliveries, "a recent delivery stays")
	stats, err = tb.e.Cleanup(t.Context(), clock.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), stats.Deliveries)
	page, err := tb.e.WebhookDeliveries(t.Context(), hook.ID, nil)
	require.NoError(t, err)
	require.Empty(t, page.Items)
}
