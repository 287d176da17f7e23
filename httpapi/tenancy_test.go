package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// TestTenancy_TwoKeys is observation 3: with keys A and B (and an
// administrator), A creates one job of every operation type, a template, a
// schedule and a webhook; B then walks every route against each of them
// and runs every operation type itself, and can neither see nor change
// anything of A's, nor learn A's ids from an error or a conflict.
func TestTenancy_TwoKeys(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	tb := setup(t, &httpapi.Options{
		Authenticator:     httpapi.APIKeys("key-a", "key-b", "key-admin"),
		Admin:             func(p string) bool { return p == httpapi.KeyPrincipal("key-admin") },
		DisableRateLimits: true,
	}, &batch.Options{AllowPrivateWebhooks: true})
	a := bearer("key-a")
	b := bearer("key-b")
	admin := bearer("key-admin")

	// The administrator's backup, which A and B may not restore.
	bk := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=20s", `{"batch": {"operations": [{"type": "backup"}]}}`, admin...)
	require.Equal(t, "completed", bk.data["status"])
	backupID := bk.data["job_id"].(string)

	ops := map[string]string{
		"create":    `{"type": "create", "resource": "fields", "records": [{"id": "a-new", "n": 1}]}`,
		"update":    `{"type": "update", "resource": "fields", "filter": {"id": "field001"}, "update": {"x": 1}}`,
		"delete":    `{"type": "delete", "resource": "fields", "filter": {"id": "field003"}}`,
		"import":    `{"type": "import", "resource": "fields", "source": {"format": "json", "data": [{"id": "a-imp"}]}}`,
		"export":    `{"type": "export", "resource": "fields", "where": "true"}`,
		"calculate": `{"type": "calculate", "resource": "fields", "filter": {"id": "field005"}, "set": {"y": "1 + 1"}}`,
		"analyze":   `{"type": "analyze", "resource": "fields", "where": "true", "aggregates": {"n": {"fn": "count"}}}`,
		"generate":  `{"type": "generate", "resource": "fields", "where": "true", "aggregates": {"n": {"fn": "count"}}, "report": {"format": "csv"}}`,
		"validate":  `{"type": "validate", "resource": "fields", "where": "true", "rules": {"r": "true"}}`,
		"cleanup":   `{"type": "cleanup", "older_than": "1000h"}`,
	}
	adminOps := map[string]string{
		"backup":   `{"type": "backup"}`,
		"restore":  `{"type": "restore", "source": {"job_id": "` + backupID + `"}}`,
		"optimize": `{"type": "optimize"}`,
	}
	var aJobs []string
	for name, op := range ops {
		res := tb.do(t, "POST", "/jobs?wait=20s", `{"batch": {"operations": [`+op+`]}}`, a...)
		require.Equal(t, http.StatusCreated, res.status, "%s: %s", name, res.body)
		require.Equal(t, "completed", res.data["status"], name)
		aJobs = append(aJobs, res.data["job_id"].(string))
	}
	// A plain key may not run the maintenance operations; neither may B.
	for name, op := range adminOps {
		for _, who := range [][]string{a, b} {
			res := tb.do(t, "POST", "/jobs", `{"batch": {"operations": [`+op+`]}}`, who...)
			require.Equal(t, http.StatusForbidden, res.status, "%s: %s", name, res.body)
			require.Equal(t, "FORBIDDEN", res.err["code"])
			require.NotContains(t, string(res.body), "completed", "the refusal says nothing about the backup job")
		}
	}
	tpl := tb.must(t, http.StatusCreated, "POST", "/templates", `{"template": {"name": "a-tpl", "operations": [{"type": "update", "resource": "fields", "where": "true", "template": {"update": {"z": "${1}"}}}]}}`, a...)
	tplID := tpl.data["id"].(string)
	schedBody := `{"schedule": {"name": "s", "batch": {"operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"s": 1}}]}, "timing": {"frequency": "daily", "time": "03:00", "timezone": "UTC"}}}`
	sch := tb.must(t, http.StatusCreated, "POST", "/schedules", schedBody, a...)
	schID := sch.data["id"].(string)
	hook := tb.must(t, http.StatusCreated, "POST", "/webhooks", `{"webhook": {"url": "`+rcv+`", "events": ["job_completed"]}}`, a...)
	hookID := hook.data["id"].(string)
	secret := hook.data["secret"].(string)

	// B walks every route against A's objects.
	var bodies []string
	expect := func(status int, method, path, body string) {
		t.Helper()
		res := tb.do(t, method, path, body, b...)
		require.Equal(t, status, res.status, "%s %s: %s", method, path, res.body)
		if status != http.StatusNotFound { // a 404 only echoes the id B sent
			bodies = append(bodies, strings.ReplaceAll(string(res.body), tplID, ""))
		}
	}
	for _, id := range aJobs {
		expect(http.StatusNotFound, "GET", "/jobs/"+id, "")
		expect(http.StatusNotFound, "POST", "/jobs/"+id+"/pause", "")
		expect(http.StatusNotFound, "POST", "/jobs/"+id+"/resume", "")
		expect(http.StatusNotFound, "POST", "/jobs/"+id+"/cancel", "")
		expect(http.StatusNotFound, "GET", "/jobs/"+id+"/errors", "")
		expect(http.StatusNotFound, "GET", "/jobs/"+id+"/events", "")
		expect(http.StatusNotFound, "GET", "/jobs/"+id+"/stream", "")
		expect(http.StatusNotFound, "GET", "/jobs/"+id+"/artifacts/export-0.json", "")
		expect(http.StatusNotFound, "GET", "/jobs/"+id+"/artifacts/report-0.csv", "")
		expect(http.StatusNotFound, "DELETE", "/jobs/"+id, "")
	}
	expect(http.StatusNotFound, "GET", "/templates/"+tplID, "")
	expect(http.StatusNotFound, "PUT", "/templates/"+tplID, `{"template": {"name": "x", "operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"x": 1}}]}}`)
	expect(http.StatusNotFound, "DELETE", "/templates/"+tplID, "")
	expect(http.StatusBadRequest, "POST", "/jobs", `{"batch": {"template_id": "`+tplID+`"}}`)
	expect(http.StatusNotFound, "GET", "/schedules/"+schID, "")
	expect(http.StatusNotFound, "GET", "/schedules/"+schID+"/preview", "")
	expect(http.StatusNotFound, "PUT", "/schedules/"+schID, schedBody)
	expect(http.StatusNotFound, "POST", "/schedules/"+schID+"/pause", "")
	expect(http.StatusNotFound, "POST", "/schedules/"+schID+"/resume", "")
	expect(http.StatusNotFound, "DELETE", "/schedules/"+schID, "")
	expect(http.StatusNotFound, "GET", "/webhooks/"+hookID, "")
	expect(http.StatusNotFound, "GET", "/webhooks/"+hookID+"/deliveries", "")
	expect(http.StatusNotFound, "PUT", "/webhooks/"+hookID, `{"webhook": {"url": "`+rcv+`"}}`)
	expect(http.StatusNotFound, "DELETE", "/webhooks/"+hookID, "")
	for _, list := range []string{"/jobs", "/templates", "/schedules", "/webhooks"} {
		res := tb.do(t, "GET", list, "", b...)
		require.Equal(t, http.StatusOK, res.status)
		for _, v := range res.data {
			require.Empty(t, v, "B's %s list", list)
		}
	}
	// B cannot schedule maintenance either, even claiming the role.
	expect(http.StatusForbidden, "POST", "/schedules", `{"schedule": {"name": "b", "runs_as_admin": true, "batch": {"operations": [{"type": "backup"}]}, "timing": {"frequency": "daily", "time": "04:00", "timezone": "UTC"}}}`)
	adminSched := tb.must(t, http.StatusCreated, "POST", "/schedules", `{"schedule": {"name": "nightly", "batch": {"operations": [{"type": "backup"}]}, "timing": {"frequency": "daily", "time": "04:00", "timezone": "UTC"}}}`, admin...)
	require.Equal(t, true, adminSched.data["runs_as_admin"])
	// B's own schedule at the same time as A's does not clash with it.
	expect(http.StatusCreated, "POST", "/schedules", schedBody)
	// B runs every operation type it may; nothing of A's goes.
	for name, op := range ops {
		if name == "cleanup" {
			op = `{"type": "cleanup", "older_than": "1ms"}`
		}
		res := tb.do(t, "POST", "/jobs?wait=20s", `{"batch": {"operations": [`+op+`]}}`, b...)
		require.Equal(t, http.StatusCreated, res.status, "%s: %s", name, res.body)
		bodies = append(bodies, string(res.body))
	}
	for _, body := range bodies {
		for _, id := range append(aJobs, tplID, schID, hookID, secret, backupID) {
			require.NotContains(t, body, `"`+id+`"`, "B's answers never name A's objects")
		}
	}
	// Everything of A's is still there and unchanged.
	for _, id := range aJobs {
		res := tb.do(t, "GET", "/jobs/"+id, "", a...)
		require.Equal(t, http.StatusOK, res.status, "A's job %s survives B's cleanup", id)
		require.Equal(t, "completed", res.data["status"])
		ev := tb.do(t, "GET", "/jobs/"+id+"/events", "", a...)
		require.Equal(t, http.StatusOK, ev.status)
		require.NotEmpty(t, ev.data["events"], "A's audit trail survives")
	}
	require.Equal(t, "a-tpl", tb.do(t, "GET", "/templates/"+tplID, "", a...).data["name"])
	require.Equal(t, "active", tb.do(t, "GET", "/schedules/"+schID, "", a...).data["status"])
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/webhooks/"+hookID, "", a...).status)
	require.Len(t, tb.do(t, "GET", "/jobs", "", a...).data["jobs"], len(ops))

	bJobs := len(tb.do(t, "GET", "/jobs", "", b...).data["jobs"].([]any))
	require.Positive(t, bJobs)
	// A's own cleanup removes A's jobs; the administrator's removes anyone's.
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=20s", `{"batch": {"operations": [{"type": "cleanup", "older_than": "1ms"}]}}`, a...)
	sum := res.data["results"].([]any)[0].(map[string]any)["summary"].(map[string]any)
	require.Equal(t, float64(len(ops)), sum["jobs"], "A's cleanup deletes exactly A's finished jobs: %v", tb.do(t, "GET", "/jobs", "", a...).data["jobs"])
	require.Len(t, tb.do(t, "GET", "/jobs", "", b...).data["jobs"], bJobs, "B's jobs stay")
	res = tb.must(t, http.StatusCreated, "POST", "/jobs?wait=20s", `{"batch": {"operations": [{"type": "cleanup", "older_than": "1ms"}]}}`, admin...)
	require.Len(t, tb.do(t, "GET", "/jobs", "", b...).data["jobs"], 0, "the administrator's cleanup covers everyone")
	require.False(t, strings.Contains(string(res.body), secret))
}
