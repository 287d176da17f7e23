package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// discardMailer accepts e-mail and sends none.
type discardMailer struct{}

func (discardMailer) Send(context.Context, *batch.Message) error { return nil }

func TestSchedules(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("a", "b")}, &batch.Options{Mailer: discardMailer{}})
	alice := []string{"Authorization", "Bearer a"}
	bob := []string{"Authorization", "Bearer b"}
	tpl := tb.do(t, "POST", "/templates", docTemplateRequest, alice...)
	require.Equal(t, http.StatusCreated, tpl.status)
	tplID := tpl.data["id"].(string)

	// The document's "Schedule Batch Job" request.
	body := `{"schedule": {
		"name": "Daily Field Updates",
		"description": "Update field status based on sensor data",
		"batch": {"template_id": "` + tplID + `", "parameters": {"status": "active", "crop_type": "rice"}},
		"timing": {"frequency": "daily", "time": "00:00", "timezone": "Asia/Tokyo"},
		"notification": {
			"on_completion": {"email": ["manager@example.com"], "webhook": "https://example.com/webhook"},
			"on_failure": {"email": ["admin@example.com"], "severity": "high"}
		}
	}}`
	res := tb.do(t, "POST", "/schedules", body, alice...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id := res.data["id"].(string)
	require.NotEmpty(t, res.data["next_run_at"])
	require.Equal(t, "active", res.data["status"])

	conflict := tb.do(t, "POST", "/schedules", body, alice...)
	require.Equal(t, http.StatusConflict, conflict.status, string(conflict.body))
	require.Equal(t, "SCHEDULE_CONFLICT", conflict.err["code"])
	require.Equal(t, "Schedule conflict detected", conflict.err["message"])
	d := conflict.err["details"].([]any)[0].(map[string]any)
	require.Equal(t, res.data["next_run_at"], d["time"])
	require.Equal(t, id, d["conflict_with"])

	for _, bad := range []string{
		`{"schedule": {"name": "x", "batch": {"template_id": "` + tplID + `", "parameters": {"status": "active"}}, "timing": {"frequency": "daily", "timezone": "Nowhere/City"}}}`,
		`{"schedule": {"name": "x", "batch": {"template_id": "` + tplID + `", "parameters": {"status": "active"}}, "timing": {"frequency": "daily", "time": "7pm"}}}`,
		`{"schedule": {"name": "x", "batch": {"template_id": "` + tplID + `", "parameters": {"status": "active"}}, "timing": {"cron": "every day"}}}`,
		`{"schedule": {"name": "x", "batch": {"template_id": "` + tplID + `", "parameters": {"status": "nope"}}, "timing": {"frequency": "hourly"}}}`,
	} {
		res := tb.do(t, "POST", "/schedules", bad, alice...)
		require.Equal(t, http.StatusBadRequest, res.status, bad)
		require.Equal(t, "INVALID_BATCH", res.err["code"])
	}

	preview := tb.do(t, "GET", "/schedules/"+id+"/preview?n=3", "", alice...)
	require.Equal(t, http.StatusOK, preview.status)
	require.Len(t, preview.data["runs"], 3)
	require.Equal(t, res.data["next_run_at"], preview.data["runs"].([]any)[0])

	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/schedules/"+id, "", bob...).status)
	require.Empty(t, tb.do(t, "GET", "/schedules", "", bob...).data["schedules"])
	require.Len(t, tb.do(t, "GET", "/schedules", "", alice...).data["schedules"], 1)
	paused := tb.do(t, "POST", "/schedules/"+id+"/pause", "", alice...)
	require.Equal(t, http.StatusOK, paused.status)
	require.Equal(t, "paused", paused.data["status"])
	require.Nil(t, paused.data["next_run_at"])
	require.Equal(t, http.StatusConflict, tb.do(t, "POST", "/schedules/"+id+"/pause", "", alice...).status)
	resumed := tb.do(t, "POST", "/schedules/"+id+"/resume", "", alice...)
	require.Equal(t, http.StatusOK, resumed.status)
	require.NotEmpty(t, resumed.data["next_run_at"])
	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/schedules/"+id, "", alice...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/schedules/"+id, "", alice...).status)
}
