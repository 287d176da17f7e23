package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.must(t, http.StatusNotFound, "GET", "/nothing", "")
	require.Equal(t, "NOT_FOUND", res.err["code"])
	require.Equal(t, "no such endpoint: "+httpapi.Prefix+"/nothing", res.err["message"])
	require.Empty(t, res.header.Get("Allow"))
	res = tb.must(t, http.StatusMethodNotAllowed, "PUT", "/jobs", `{}`)
	require.Equal(t, "METHOD_NOT_ALLOWED", res.err["code"])
	require.Contains(t, res.header.Get("Allow"), "POST")
	require.Contains(t, res.header.Get("Allow"), "GET")
}

// TestOutsideBasePathRunsNothing: with a BasePath, a request outside it is
// a 404 even where its path names a route, and that route does not run.
func TestOutsideBasePathRunsNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t, nil)
	srv := serve(t, httpapi.New(e, &httpapi.Options{BasePath: "/svc", DisableRateLimits: true}))
	res, err := http.Post(srv.URL+"/jobs", "application/json", strings.NewReader(docRequest))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	page, err := e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "the job route did not run")
}

// TestAdminPrincipal: Options.Admin names the administrators, who may run
// the maintenance operations; another principal gets 403 FORBIDDEN.
func TestAdminPrincipal(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("root-key", "user-key"),
		Admin: func(p string) bool { return p == httpapi.KeyPrincipal("root-key") }}, nil)
	backup := `{"batch": {"operations": [{"type": "backup"}]}}`
	res := tb.must(t, http.StatusForbidden, "POST", "/jobs", backup, bearer("user-key")...)
	require.Equal(t, "FORBIDDEN", res.err["code"])
	tb.must(t, http.StatusCreated, "POST", "/jobs", backup, bearer("root-key")...)
}

// TestRouteRateLimitClasses: each group of routes spends its own budget,
// as the X-RateLimit-Limit of its first answer shows, and the defaults
// are the document's.
func TestRouteRateLimitClasses(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{}, &batch.Options{Operations: map[string]batch.Operation{"held": gatedOp(nil, 1)}})
	id := tb.submit(t, `{"batch": {"operations": [{"type": "held"}]}}`)
	for _, c := range []struct {
		method, path string
		limit        int
	}{
		{"POST", "/jobs?dry_run=true", httpapi.DefaultStatusChecksPerHour},
		{"GET", "/jobs", httpapi.DefaultStatusChecksPerHour},
		{"GET", "/jobs/" + id + "/events", httpapi.DefaultStatusChecksPerHour},
		{"GET", "/templates", httpapi.DefaultTemplateManagementPerHour},
		{"GET", "/schedules", httpapi.DefaultScheduleManagementPerHour},
		{"GET", "/webhooks", httpapi.DefaultWebhookManagementPerHour},
		{"GET", "/jobs/nope/stream", httpapi.DefaultStreamsPerHour},
		{"POST", "/jobs/" + id + "/revert", httpapi.DefaultJobCreationPerHour},
	} {
		res := tb.do(t, c.method, c.path, "")
		require.Equal(t, strconv.Itoa(c.limit), res.header.Get("X-RateLimit-Limit"), "%s %s", c.method, c.path)
	}
	_, err := tb.e.Cancel(t.Context(), id)
	require.NoError(t, err)
}
