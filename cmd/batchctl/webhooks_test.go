package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestWebhook_CreateFromFlagsAndDeliveries(t *testing.T) {
	tb := setup(t, nil)
	r := tb.cli(t, "webhook", "create", "--url", tb.srv.URL+"/hook", "--event", "job_completed", "--event", "job_failed", "--description", "ci")
	require.Equal(t, 0, r.code, r.stderr)
	h := decode[batch.Webhook](t, r.stdout)
	require.True(t, strings.HasPrefix(h.Secret, "whsec_"), "the secret is shown once, at creation")
	require.Equal(t, []batch.EventType{"job_completed", "job_failed"}, h.Events)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "webhook", "list")
	require.Regexp(t, `(?m)^`+h.ID+`\s+`+tb.srv.URL+`/hook\s+job_completed,job_failed\s+ci$`, r.stdout)

	job := runOK[batch.Job](t, tb, docRequest, "submit", "-", "--wait")
	require.Eventually(t, func() bool {
		r = tb.cli(t, "webhook", "deliveries", h.ID)
		return r.code == 0 && len(decode[batch.DeliveryPage](t, r.stdout).Items) == 1
	}, 10*time.Second, 20*time.Millisecond)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "webhook", "deliveries", h.ID)
	require.Regexp(t, `(?m)^ID\s+EVENT\s+JOB\s+STATUS\s+ATTEMPTS\s+HTTP\s+ERROR\n\S+\s+job_completed\s+`+job.ID+`\s`, r.stdout)

	r = tb.cli(t, "webhook", "create", "-", "--url", "http://x")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "give the webhook as FILE or as --url, not both")
	r = tb.cli(t, "webhook", "create")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "webhook create needs FILE or --url")
	r = tb.cli(t, "webhook", "create", "--url", "ftp://example.com/x")
	require.Equal(t, exitInvalid, r.code, "the API refuses the URL: %s", r.stderr)
}

func TestEventsText(t *testing.T) {
	require.Equal(t, "all", eventsText(nil))
	require.Equal(t, "job_completed,job_failed", eventsText([]batch.EventType{"job_completed", "job_failed"}))
	require.Contains(t, webhookEventsText(), "job_completed, ")
}
