package httpapi_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// TestOpenAPI_Document: the served document is the embedded one, public,
// a valid OpenAPI 3.1 document, and names every route httpapi registers.
func TestOpenAPI_Document(t *testing.T) {
	t.Parallel()
	spec, err := apiSpec()
	require.NoError(t, err)
	require.True(t, spec.doc.IsOpenAPI31OrLater(), "the document is OpenAPI 3.1")

	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("k")}, nil)
	res, err := http.Get(tb.srv.URL + httpapi.Prefix + "/openapi.json")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the document needs no key")
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, httpapi.OpenAPI(), body)

	var missing []string
	for _, route := range registeredRoutes(t, tb.e) {
		method, path, _ := strings.Cut(route, " ")
		item := spec.doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			missing = append(missing, route)
		}
	}
	require.Empty(t, missing, "routes httpapi serves that httpapi/openapi.json does not document")
}

// registeredRoutes are the route patterns ("GET /jobs/{job_id}") that a
// handler registers.
func registeredRoutes(t *testing.T, e *batch.Engine) []string {
	t.Helper()
	routes := httpapi.Routes(httpapi.New(e, nil))
	require.Greater(t, len(routes), 20, "the handler registers the routes")
	return routes
}

// TestOpenAPI_EveryRouteAndStatus drives every documented operation to every
// status the document lists for it, through the checking middleware, so
// that each answer is validated against the document; then it checks that
// none was left out.
func TestOpenAPI_EveryRouteAndStatus(t *testing.T) {
	t.Parallel()
	spec, err := apiSpec()
	require.NoError(t, err)
	gate := make(chan struct{})
	rcv := newReceiver(t)
	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("k"), DisableRateLimits: true, MaxBodyBytes: 8 << 10, MaxUploadBytes: 8 << 10,
		RateLimits: httpapi.RateLimits{FailedAuth: httpapi.Limit{Requests: 10000, Per: time.Minute}}},
		&batch.Options{AllowPrivateWebhooks: true, Operations: map[string]batch.Operation{"gated": pausableOp(gate, 4), "stuck": gatedOp(nil, 1)}})
	must := func(status int, method, path, body string, headers ...string) *response {
		t.Helper()
		return tb.must(t, status, method, path, body, append(bearer("k"), headers...)...)
	}

	// Templates.
	tplID := must(201, "POST", "/templates", docTemplateRequest).data["id"].(string)
	must(200, "GET", "/templates", "")
	must(200, "GET", "/templates/"+tplID, "")
	must(200, "PUT", "/templates/"+tplID, docTemplateRequest)

	// Jobs: the document's request, an idempotent replay, a failing job,
	// an export with an artifact, a job from the template.
	job := must(201, "POST", "/jobs?wait=10s", docRequest, "Idempotency-Key", "k1")
	id := job.data["job_id"].(string)
	must(200, "POST", "/jobs", docRequest, "Idempotency-Key", "k1")
	must(403, "POST", "/jobs", `{"batch": {"operations": [{"type": "optimize"}]}}`)
	must(500, "POST", "/jobs?wait=10s", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "field001"}]}], "options": {"validation": {"on_error": "abort"}}}}`)
	exp := must(201, "POST", "/jobs?wait=10s", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "field002"}]}, {"type": "export", "resource": "fields", "destination": {"format": "csv"}}]}}`)
	expID := exp.data["job_id"].(string)
	must(201, "POST", "/jobs?wait=10s", `{"batch": {"template_id": "`+tplID+`", "parameters": {"status": "active"}}}`)
	must(200, "GET", "/jobs", "")
	must(200, "GET", "/jobs?state=completed&limit=2", "")
	must(200, "GET", "/jobs/"+id, "")
	must(200, "GET", "/jobs/"+expID+"/errors?limit=1", "")
	must(200, "GET", "/jobs/"+id+"/events", "")
	stream := must(200, "GET", "/jobs/"+id+"/stream", "")
	require.Contains(t, string(stream.body), "event: end")
	art := exp.data["results"].([]any)[0].(map[string]any)["artifact"].(map[string]any)
	must(200, "GET", "/jobs/"+expID+"/artifacts/"+art["name"].(string), "")
	for _, act := range []string{"pause", "resume", "cancel"} {
		must(409, "POST", "/jobs/"+id+"/"+act, "")
	}

	// Dry runs and reverts: a dry run answers a DryRun; the revert job
	// names the job it reverts; a job reverted completely is 409.
	require.NotEmpty(t, must(200, "POST", "/jobs?dry_run=true", docRequest).data["operations"])
	require.NotEmpty(t, must(200, "POST", "/jobs/"+id+"/revert?dry_run=true", "").data["operations"])
	rv := must(201, "POST", "/jobs/"+id+"/revert", `{"force": false}`)
	rvID := rv.data["job_id"].(string)
	require.Equal(t, id, rv.data["reverts"])
	tb.waitStatus(t, rvID, "completed", bearer("k")...)
	require.NotNil(t, must(200, "GET", "/jobs/"+rvID, "").data["revert"])
	require.Equal(t, rvID, must(200, "GET", "/jobs/"+id, "").data["reverted_by"])
	must(409, "POST", "/jobs/"+id+"/revert", "")

	// Uploads, PUT or POSTed, and an import of one.
	upID := must(201, "PUT", "/uploads", "{\"id\": \"up1\"}\n{\"id\": \"up2\"}\n").data["upload_id"].(string)
	posted := must(201, "POST", "/uploads", "{\"id\": \"up3\"}\n").data["upload_id"].(string)
	must(200, "GET", "/uploads/"+upID, "")
	imp := must(201, "POST", "/jobs?wait=10s", `{"batch": {"operations": [{"type": "import", "resource": "fields", "source": {"format": "ndjson", "upload": "`+upID+`"}}]}}`)
	require.Equal(t, 2.0, imp.data["progress"].(map[string]any)["completed"])
	must(204, "DELETE", "/uploads/"+posted, "")
	live := must(201, "POST", "/jobs", `{"batch": {"operations": [{"type": "gated"}]}}`).data["job_id"].(string)
	tb.waitStatus(t, live, "running", bearer("k")...)
	must(409, "DELETE", "/jobs/"+live, "")
	must(200, "POST", "/jobs/"+live+"/pause", "") // the items in flight finish once it takes hold
	close(gate)
	must(200, "POST", "/jobs/"+live+"/resume", "")
	stuckID := must(201, "POST", "/jobs", `{"batch": {"operations": [{"type": "stuck"}]}}`).data["job_id"].(string)
	must(200, "POST", "/jobs/"+stuckID+"/cancel", "")
	must(204, "DELETE", "/jobs/"+id, "")

	// Schedules.
	schedBody := `{"schedule": {"name": "Daily", "batch": {"template_id": "` + tplID + `", "parameters": {"status": "active"}}, "timing": {"frequency": "daily", "time": "00:00", "timezone": "Asia/Tokyo"}}}`
	schedID := must(201, "POST", "/schedules", schedBody).data["id"].(string)
	must(409, "POST", "/schedules", schedBody)
	must(403, "POST", "/schedules", `{"schedule": {"name": "Nightly optimize", "batch": {"operations": [{"type": "optimize"}]}, "timing": {"frequency": "daily", "time": "03:00"}}}`)
	other := must(201, "POST", "/schedules", strings.Replace(schedBody, `"00:00"`, `"01:00"`, 1)).data["id"].(string)
	must(409, "PUT", "/schedules/"+other, schedBody)
	must(200, "PUT", "/schedules/"+other, strings.Replace(schedBody, `"00:00"`, `"02:00"`, 1))
	must(200, "GET", "/schedules", "")
	must(200, "GET", "/schedules/"+schedID, "")
	must(200, "GET", "/schedules/"+schedID+"/preview?n=2", "")
	must(200, "POST", "/schedules/"+schedID+"/pause", "")
	must(409, "POST", "/schedules/"+schedID+"/pause", "")
	must(200, "POST", "/schedules/"+schedID+"/resume", "")
	must(409, "POST", "/schedules/"+schedID+"/resume", "")
	must(204, "DELETE", "/schedules/"+schedID, "")

	// Webhooks.
	hookID := must(201, "POST", "/webhooks", `{"webhook": {"url": "`+rcv+`"}}`).data["id"].(string)
	must(200, "GET", "/webhooks", "")
	must(200, "GET", "/webhooks/"+hookID, "")
	must(200, "PUT", "/webhooks/"+hookID, `{"webhook": {"url": "`+rcv+`/v2"}}`)
	must(200, "GET", "/webhooks/"+hookID+"/deliveries", "")

	// The errors every operation can give: 401 without a key, 404 for an
	// unknown id, 400 for a bad page or query, 413 and 415 for bodies.
	bodies := map[string]string{"createJob": docRequest, "createTemplate": docTemplateRequest, "updateTemplate": docTemplateRequest,
		"createSchedule": schedBody, "updateSchedule": schedBody, "createWebhook": `{"webhook": {"url": "` + rcv + `"}}`, "updateWebhook": `{"webhook": {"url": "` + rcv + `"}}`}
	for _, o := range operations(spec) {
		path := strings.NewReplacer("{job_id}", "nope", "{template_id}", "nope", "{schedule_id}", "nope", "{webhook_id}", "nope", "{upload_id}", "nope", "{name}", "x.csv").Replace(o.path)
		realPath := strings.NewReplacer("{job_id}", expID, "{template_id}", tplID, "{schedule_id}", other, "{webhook_id}", hookID, "{upload_id}", upID).Replace(o.path)
		for status := range o.op.Responses.Map() {
			switch status {
			case "401":
				require.Equal(t, 401, tb.do(t, o.method, path, bodies[o.op.OperationID]).status)
				require.Equal(t, 401, tb.do(t, o.method, path, bodies[o.op.OperationID], "Authorization", "Bearer wrong").status)
			case "404":
				must(404, o.method, path, bodies[o.op.OperationID])
			case "413":
				must(413, o.method, realPath, `{"x": "`+strings.Repeat("x", 9<<10)+`"}`)
			case "415":
				req, err := http.NewRequest(o.method, tb.srv.URL+httpapi.Prefix+realPath, strings.NewReader("x"))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer k")
				req.Header.Set("Content-Type", "text/plain")
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				res.Body.Close()
				require.Equal(t, 415, res.StatusCode, o.op.OperationID)
			case "400":
				if o.op.RequestBody != nil {
					must(400, o.method, realPath, `{"nope": {}}`)
					continue
				}
				q := "?limit=0"
				if o.op.OperationID == "previewSchedule" {
					q = "?n=0"
				}
				must(400, o.method, realPath+q, "")
			}
		}
	}

	must(204, "DELETE", "/webhooks/"+hookID, "")
	must(204, "DELETE", "/templates/"+tplID, "")

	// 429 on every limited operation: a second bundle allows one request
	// per class per hour.
	one := httpapi.Limit{Requests: 1, Per: time.Hour}
	limited := setup(t, &httpapi.Options{RateLimits: httpapi.RateLimits{JobCreation: one, StatusChecks: one,
		TemplateManagement: one, ScheduleManagement: one, WebhookManagement: one, Streams: one}}, nil)
	limited.do(t, "GET", "/jobs/nope", "")
	limited.do(t, "GET", "/templates/nope", "")
	limited.do(t, "GET", "/schedules/nope", "")
	limited.do(t, "GET", "/webhooks/nope", "")
	limited.do(t, "POST", "/jobs", "")
	limited.do(t, "GET", "/jobs/nope/stream", "")
	for _, o := range operations(spec) {
		if o.op.Responses.Status(429) != nil {
			res := limited.do(t, o.method, o.path, "")
			require.Equal(t, 429, res.status, o.op.OperationID)
			require.NotEmpty(t, res.header.Get("Retry-After"))
		}
	}

	// Every documented status of every operation has been seen.
	var unseen []string
	for _, o := range operations(spec) {
		for status := range o.op.Responses.Map() {
			if status == "default" {
				continue
			}
			if _, ok := seen.Load(o.op.OperationID + " " + status); !ok {
				unseen = append(unseen, o.op.OperationID+" "+status)
			}
		}
	}
	slices.Sort(unseen)
	require.Empty(t, unseen, "documented answers no test produced")
}

type specOperation struct {
	method, path string
	op           *openapi3.Operation
}

// operations lists the document's API operations (not the public documents).
func operations(spec *openAPISpec) []specOperation {
	var ops []specOperation
	for _, path := range spec.doc.Paths.InMatchingOrder() {
		for method, op := range spec.doc.Paths.Value(path).Operations() {
			if op.Security != nil && len(*op.Security) == 0 {
				continue // public: the document itself and the dashboard
			}
			ops = append(ops, specOperation{method: method, path: path, op: op})
		}
	}
	return ops
}

// TestOpenAPI_CheckCatchesDrift: the checking middleware rejects an answer
// that strays from the document.
func TestOpenAPI_CheckCatchesDrift(t *testing.T) {
	t.Parallel()
	spec, err := apiSpec()
	require.NoError(t, err)
	req, err := http.NewRequest("GET", "http://x"+httpapi.Prefix+"/jobs/batch1", nil)
	require.NoError(t, err)
	json := http.Header{"Content-Type": {"application/json"}}
	good := `{"data": {"job_id": "batch1", "status": "running", "created_at": "2025-01-19T00:52:03Z", "progress": {"total_operations": 1, "completed": 0, "failed": 0, "percentage": 0}}}`
	require.NoError(t, spec.check(req, nil, 200, json, []byte(good)))
	for name, body := range map[string]string{
		"missing progress": `{"data": {"job_id": "batch1", "status": "running", "created_at": "2025-01-19T00:52:03Z"}}`,
		"unknown state":    strings.Replace(good, "running", "sleeping", 1),
		"extra field":      strings.Replace(good, `"job_id"`, `"surprise": 1, "job_id"`, 1),
		"bare object":      `{"job_id": "batch1"}`,
	} {
		require.Error(t, spec.check(req, nil, 200, json, []byte(body)), name)
	}
	require.ErrorContains(t, spec.check(req, nil, 409, json, []byte(`{"error": {"code": "INVALID_STATE", "message": "x"}}`)), "not documented")
	require.Error(t, spec.check(req, nil, 404, json, []byte(`{"message": "x"}`)), "an error answer in another shape")
}
