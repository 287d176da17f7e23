package batch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/smtptest"
)

func TestSMTPMailer(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t)
	m := &batch.SMTPMailer{Addr: srv.Addr(), From: "batch@example.com"}
	require.NoError(t, m.Send(t.Context(), &batch.Message{To: []string{"manager@example.com", "admin@example.com"}, Subject: "done", Body: "all good\nreally", Severity: "high"}))
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0], "MAIL FROM:<batch@example.com>")
	require.Contains(t, msgs[0], "RCPT TO:<manager@example.com>")
	require.Contains(t, msgs[0], "RCPT TO:<admin@example.com>")
	require.Contains(t, msgs[0], "Subject: done")
	require.Contains(t, msgs[0], "X-Severity: high")
	require.Contains(t, msgs[0], "all good\r\nreally")
	require.Error(t, m.Send(t.Context(), &batch.Message{To: []string{"evil\r\nRCPT TO:<x@y>"}}))
}

// A scheduled job's outcome is told to the target for it, by mail through
// a real SMTP receiver (and webhook): a failure only to on_failure, with
// its severity; a completion only to on_completion, with the counts.
func TestSchedule_Notifications(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		err      error
		to, not  string
		contains []string
		webhooks int
	}{
		{"failure", batch.ValidationError("bad"), "admin@example.com", "manager@example.com",
			[]string{"Subject: [high] [batch] Daily Field Updates", "failed", "X-Severity: high"}, 0},
		{"completion", nil, "manager@example.com", "admin@example.com",
			[]string{"Subject: [batch] Daily Field Updates: job ", "completed", "Status: completed", "Items: 2, completed 2, failed 0"}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.New(t)
			rc := newReceiver(t)
			clock := &fakeClock{now: utc("2026-01-01T00:00:30Z")}
			op := countingOp(func(ctx context.Context, it *batch.Item) error { return tt.err })
			e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond, AllowPrivateWebhooks: true,
				Mailer: &batch.SMTPMailer{Addr: srv.Addr(), From: "batch@example.com"}, Operations: map[string]batch.Operation{"op": op}})
			require.NoError(t, err)
			defer func() { require.NoError(t, e.Close(context.Background())) }()
			_, err = e.CreateSchedule(t.Context(), &batch.Schedule{Name: "Daily Field Updates",
				Batch:  batch.Batch{Operations: []batch.OperationSpec{{Type: "op", Params: map[string]any{"count": 2}}}, Options: batch.BatchOptions{Validation: batch.ValidationOptions{OnError: "abort"}}},
				Timing: batch.Timing{Cron: "* * * * *"},
				Notification: &batch.Notification{
					OnCompletion: &batch.NotifyTarget{Email: []string{"manager@example.com"}, Webhook: rc.srv.URL},
					OnFailure:    &batch.NotifyTarget{Email: []string{"admin@example.com"}, Severity: "high"},
				}})
			require.NoError(t, err)
			clock.set(utc("2026-01-01T00:01:01Z"))
			require.Eventually(t, func() bool { return len(srv.Messages()) == 1 && len(rc.received()) == tt.webhooks },
				10*time.Second, time.Millisecond)
			msg := srv.Messages()[0]
			require.Contains(t, msg, "RCPT TO:<"+tt.to+">")
			for _, s := range tt.contains {
				require.Contains(t, msg, s)
			}
			require.NotContains(t, msg, tt.not, "only the target for this outcome is told")
		})
	}
}

// Issue 8, observation 6: a schedule's notification webhook is a stored, signed
// delivery.
func TestSchedule_NotificationWebhookIsSigned(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rc.status.Store(http.StatusServiceUnavailable) // the first attempt fails
	clock := &fakeClock{now: utc("2026-01-01T00:00:30Z")}
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond, AllowPrivateWebhooks: true,
		WebhookRetryDelay: time.Millisecond, Operations: map[string]batch.Operation{"noop": noopOp()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "nightly",
		Batch:        batch.Batch{Operations: []batch.OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}}}},
		Timing:       batch.Timing{Cron: "* * * * *"},
		Notification: &batch.Notification{OnCompletion: &batch.NotifyTarget{Webhook: rc.srv.URL, Severity: "low"}}})
	require.NoError(t, err)
	clock.set(utc("2026-01-01T00:01:01Z"))
	require.Eventually(t, func() bool { return len(rc.received()) == 1 }, 10*time.Second, time.Millisecond)
	// Only a stored delivery is tried again: the retry is the same
	// delivery (its webhook-id), signed alike.
	rc.status.Store(0)
	require.Eventually(t, func() bool {
		clock.set(clock.Now().Add(time.Millisecond)) // the retry falls due; the next run (a minute on) does not
		return len(rc.received()) == 2
	}, 10*time.Second, time.Millisecond)
	s, err = e.Schedule(t.Context(), s.ID)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s.NotificationSecret, "whsec_"))
	first, got := rc.received()[0], rc.received()[1]
	require.Equal(t, first.header.Get("webhook-id"), got.header.Get("webhook-id"), "the stored delivery was retried")
	require.Equal(t, string(first.body), string(got.body))
	verify(t, s.NotificationSecret, got)
	require.Equal(t, "low", got.header.Get("X-Severity"))
	require.Contains(t, string(got.body), `"job_completed"`)
}

// failingMailer refuses every message and counts the attempts.
type failingMailer struct {
	mu       sync.Mutex
	attempts []time.Time
}

func (m *failingMailer) Send(ctx context.Context, msg *batch.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts = append(m.attempts, time.Now())
	return errors.New("mailbox unavailable")
}

func (m *failingMailer) sent() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.attempts...)
}

// A notification e-mail the mailer refuses is tried three times, each
// after twice the delay of the one before, and then given up.
func TestNotify_RefusedMailTriedThreeTimes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mailer := &failingMailer{}
		fail := countingOp(func(ctx context.Context, it *batch.Item) error { return batch.ValidationError("bad") })
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Mailer: mailer, WebhookRetryDelay: time.Second,
			Operations: map[string]batch.Operation{"fail": fail}})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		at := time.Now().UTC().Add(time.Minute)
		_, err = e.CreateSchedule(t.Context(), &batch.Schedule{Name: "once",
			Batch: batch.Batch{Operations: []batch.OperationSpec{{Type: "fail", Params: map[string]any{"count": 1}}},
				Options: batch.BatchOptions{Validation: batch.ValidationOptions{OnError: "abort"}}},
			Timing:       batch.Timing{Frequency: "once", At: at.Format("2006-01-02T15:04")},
			Notification: &batch.Notification{OnFailure: &batch.NotifyTarget{Email: []string{"admin@example.com"}}}})
		require.NoError(t, err)
		// Due in a minute; the job's outcome waits out a commit delay.
		time.Sleep(time.Minute + 500*time.Millisecond)
		synctest.Wait()
		got := mailer.sent()
		require.Len(t, got, 1, "sent once the job failed")
		time.Sleep(time.Hour)
		synctest.Wait()
		got = mailer.sent()
		require.Len(t, got, 3, "three attempts, then given up")
		require.Equal(t, time.Second, got[1].Sub(got[0]))
		require.Equal(t, 2*time.Second, got[2].Sub(got[1]))
	})
}
