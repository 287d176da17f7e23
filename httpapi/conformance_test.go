package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// TestConformance_DocumentShapes checks the shapes a client of the API
// document relies on: a job always lists errors, a template parameter
// always says whether it is required, and every 400 for a batch says
// "Invalid batch job configuration".
func TestConformance_DocumentShapes(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)

	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=10s", docRequest)
	require.Equal(t, "completed", res.data["status"])
	require.Contains(t, res.data, "errors", "a job without failures has an empty errors list")
	require.Equal(t, []any{}, res.data["errors"])
	got := tb.do(t, "GET", "/jobs/"+res.data["job_id"].(string), "")
	require.Equal(t, []any{}, got.data["errors"])
	list := tb.do(t, "GET", "/jobs", "")
	require.Equal(t, []any{}, list.data["jobs"].([]any)[0].(map[string]any)["errors"])

	require.Equal(t, http.StatusCreated, tb.do(t, "POST", "/templates", docTemplateRequest).status)
	tpls := tb.do(t, "GET", "/templates", "")
	var params []map[string]any
	b, _ := json.Marshal(tpls.data["templates"].([]any)[0].(map[string]any)["parameters"])
	require.NoError(t, json.Unmarshal(b, &params))
	require.Equal(t, false, params[1]["required"], "required: false is written, as the document does")

	for _, body := range []string{
		`{"batch": {"operations": [{"type": "update"}]}, "extra": 1}`,
		`{"nobatch": {}}`,
		`{}`,
		`[1]`,
		`{"batch": {"operations": [{"type": "process"}]}}`,
	} {
		bad := tb.do(t, "POST", "/jobs", body)
		require.Equal(t, http.StatusBadRequest, bad.status, body)
		require.Equal(t, "INVALID_BATCH", bad.err["code"], body)
		require.Equal(t, "Invalid batch job configuration", bad.err["message"], body)
	}
}

// TestConformance_CustomBackoffFormula: the custom retry strategy is usable
// over HTTP as a formula, and a bad formula is a 400 that points at it.
func TestConformance_CustomBackoffFormula(t *testing.T) {
	t.Parallel()
	var tries atomic.Int64
	flaky := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{Count: 1, Item: func(int64) (batch.Item, error) { return batch.Item{ResourceID: "x"}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				if tries.Add(1) < 3 {
					return &batch.Error{Code: batch.CodeResource, Message: "busy"}
				}
				return nil
			}}, nil
	})
	tb := setup(t, nil, &batch.Options{Operations: map[string]batch.Operation{"flaky": flaky}})
	start := time.Now()
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=20s", `{"batch": {"operations": [{"type": "flaky"}],
		"options": {"retry": {"attempts": 3, "backoff": "custom", "formula": "error_type == 'resource' ? 0.1 * attempt : 60", "max_delay": "5s"}}}}`)
	require.Equal(t, "completed", res.data["status"])
	require.Equal(t, int64(3), tries.Load())
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "waited 0.1s then 0.2s")

	bad := tb.do(t, "POST", "/jobs", `{"batch": {"operations": [{"type": "flaky"}], "options": {"retry": {"attempts": 3, "backoff": "custom", "formula": "attempt +"}}}}`)
	require.Equal(t, http.StatusBadRequest, bad.status)
	d := bad.err["details"].([]any)[0].(map[string]any)
	require.Equal(t, "options.retry.formula", d["field"])
	require.Equal(t, "INVALID_EXPRESSION", d["code"])
}

// TestConformance_ManagementBudgets: templates, schedules and webhooks
// each spend their own rate-limit budget, and a webhook can subscribe to
// batch_event, every job event.
func TestConformance_ManagementBudgets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var types []string
	rcv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Type  string `json:"type"`
			Event struct {
				Type string `json:"type"`
			} `json:"event"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		types = append(types, p.Type+"/"+p.Event.Type)
		mu.Unlock()
	}))
	tb := setup(t, &httpapi.Options{RateLimits: httpapi.RateLimits{
		TemplateManagement: httpapi.Limit{Requests: 1, Per: time.Hour},
		WebhookManagement:  httpapi.Limit{Requests: 3, Per: time.Hour},
	}}, &batch.Options{AllowPrivateWebhooks: true})

	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/templates", "").status)
	require.Equal(t, http.StatusTooManyRequests, tb.do(t, "GET", "/templates", "").status)
	res := tb.do(t, "POST", "/webhooks", `{"webhook": {"url": "`+rcv.URL+`", "events": ["batch_event"]}}`)
	require.Equal(t, http.StatusCreated, res.status, "templates spent their budget, webhooks did not: %s", res.body)
	require.Equal(t, "3", res.header.Get("X-RateLimit-Limit"))
	sched := tb.do(t, "GET", "/schedules", "")
	require.Equal(t, http.StatusOK, sched.status)
	require.Equal(t, strconv.Itoa(httpapi.DefaultScheduleManagementPerHour), sched.header.Get("X-RateLimit-Limit"))

	job := tb.do(t, "POST", "/jobs?wait=10s", docRequest)
	require.Equal(t, "completed", job.data["status"])
	want := []string{"batch_event/job_created", "batch_event/job_started", "batch_event/job_completed"}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(types) == len(want)
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.ElementsMatch(t, want, types)
	mu.Unlock()
}

// TestConformance_EmailNeedsAMailer: without a mail server, a schedule
// asking for e-mail is refused instead of accepted and silently dropped.
func TestConformance_EmailNeedsAMailer(t *testing.T) {
	t.Parallel()
	body := `{"schedule": {"name": "n", "batch": {"operations": [{"type": "export", "resource": "fields"}]},
		"timing": {"cron": "0 6 * * *"}, "notification": {"on_failure": {"email": ["admin@example.com"]}}}}`
	res := setup(t, nil, nil).must(t, http.StatusBadRequest, "POST", "/schedules", body)
	d := res.err["details"].([]any)[0].(map[string]any)
	require.Equal(t, "notification.on_failure.email", d["field"])
	require.Contains(t, d["message"], "none is configured")
	setup(t, nil, &batch.Options{Mailer: discardMailer{}}).must(t, http.StatusCreated, "POST", "/schedules", body)
}
