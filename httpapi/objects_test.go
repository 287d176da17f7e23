package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// Every kind of owned object answers the same way: create is 201 with a
// Location, the list holds the caller's own objects only and pages, another
// principal's object is NOT_FOUND exactly as an unknown one on every route,
// an update needs the wrapped object, delete is 204 once.
func TestObjects_OneShape(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("a", "b")},
		&batch.Options{AllowPrivateWebhooks: true})
	a, b := bearer("a"), bearer("b")
	for _, kind := range []struct {
		name, body string
	}{
		{"template", `{"template": {"name": "t%d", "operations": [{"type": "update", "resource": "fields", "where": "true", "template": {"update": {"z": "${1}"}}}]}}`},
		{"schedule", `{"schedule": {"name": "s", "batch": {"operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"s": 1}}]}, "timing": {"cron": "%d 3 * * *"}}}`},
		{"webhook", `{"webhook": {"url": "` + rcv + `", "description": "w%d"}}`},
	} {
		t.Run(kind.name, func(t *testing.T) {
			all := "/" + kind.name + "s"
			var ids []string
			for i := range 2 {
				res := tb.do(t, "POST", all, fmt.Sprintf(kind.body, i), a...)
				require.Equal(t, http.StatusCreated, res.status, string(res.body))
				id := res.data["id"].(string)
				require.Equal(t, httpapi.Prefix+all+"/"+id, res.header.Get("Location"))
				ids = append(ids, id)
			}
			first := tb.do(t, "GET", all+"?limit=1", "", a...)
			require.Equal(t, http.StatusOK, first.status)
			require.Len(t, first.data[kind.name+"s"], 1)
			require.Equal(t, ids[1], first.data["next_cursor"])
			rest := tb.do(t, "GET", all+"?limit=1&cursor="+ids[1], "", a...)
			require.Len(t, rest.data[kind.name+"s"], 1)
			require.NotContains(t, rest.data, "next_cursor", "the last page")
			require.Empty(t, tb.do(t, "GET", all, "", b...).data[kind.name+"s"], "b's list")

			one := all + "/" + ids[0]
			for _, m := range []struct{ method, body string }{{"GET", ""}, {"PUT", fmt.Sprintf(kind.body, 5)}, {"DELETE", ""}} {
				for _, path := range []string{one, all + "/" + kind.name + "999"} {
					res := tb.do(t, m.method, path, m.body, b...)
					require.Equal(t, http.StatusNotFound, res.status, "%s %s", m.method, path)
					require.Equal(t, "NOT_FOUND", res.err["code"])
					require.Equal(t, kind.name+" not found: "+path[len(all)+1:], res.err["message"])
				}
			}
			require.Equal(t, http.StatusBadRequest, tb.do(t, "PUT", one, `{"name": "bare"}`, a...).status, "the object goes under its kind")
			put := tb.do(t, "PUT", one, fmt.Sprintf(kind.body, 6), a...)
			require.Equal(t, http.StatusOK, put.status, string(put.body))
			require.Equal(t, ids[0], put.data["id"])
			require.Equal(t, http.StatusOK, tb.do(t, "GET", one, "", a...).status)
			del := tb.do(t, "DELETE", one, "", a...)
			require.Equal(t, http.StatusNoContent, del.status)
			require.Empty(t, del.body)
			require.Equal(t, http.StatusNotFound, tb.do(t, "DELETE", one, "", a...).status)
		})
	}
}

// Uploads share the read and delete routes: the owner only, 204 once.
func TestObjects_Uploads(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("a", "b")}, nil)
	a, b := bearer("a"), bearer("b")
	res := tb.do(t, "POST", "/uploads", `{"id": "x"}`+"\n", a...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id := res.data["upload_id"].(string)
	got := tb.do(t, "GET", "/uploads/"+id, "", b...)
	require.Equal(t, http.StatusNotFound, got.status)
	require.Equal(t, "upload not found: "+id, got.err["message"])
	require.Equal(t, id, tb.do(t, "GET", "/uploads/"+id, "", a...).data["upload_id"])
	require.Equal(t, http.StatusNotFound, tb.do(t, "DELETE", "/uploads/"+id, "", b...).status)
	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/uploads/"+id, "", a...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/uploads/"+id, "", a...).status)
}
