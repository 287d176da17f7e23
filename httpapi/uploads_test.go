package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/httpapi"
)

// An import source is PUT as it is, then named by an import; another
// principal cannot see or delete it; an upload over the limit is 413.
func TestUpload_PutThenImport(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, MaxUploadBytes: 1 << 20, Authenticator: httpapi.APIKeys("alice-key", "bob-key")}, nil)
	alice := []string{"Authorization", "Bearer alice-key"}
	bob := []string{"Authorization", "Bearer bob-key"}
	var nd strings.Builder
	for i := range 300 {
		fmt.Fprintf(&nd, "{\"id\":\"up%03d\",\"status\":\"active\"}\n", i)
	}
	res := tb.do(t, "PUT", "/uploads", nd.String(), alice...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id, _ := res.data["upload_id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, float64(nd.Len()), res.data["size"])

	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/uploads/"+id, "", bob...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "DELETE", "/uploads/"+id, "", bob...).status)
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/uploads/"+id, "", alice...).status)

	body := `{"batch":{"operations":[{"type":"import","resource":"fields","source":{"format":"ndjson","upload":"` + id + `"}}]}}`
	res = tb.do(t, "POST", "/jobs", body, bob...)
	require.Equal(t, http.StatusBadRequest, res.status, "bob imports alice's upload: %s", res.body)
	res = tb.do(t, "POST", "/jobs?wait=30s", body, alice...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	require.Equal(t, "completed", res.data["status"], string(res.body))
	require.Equal(t, 300.0, res.data["progress"].(map[string]any)["completed"])

	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/uploads/"+id, "", alice...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/uploads/"+id, "", alice...).status)

	res = tb.do(t, "PUT", "/uploads", strings.Repeat("x", 2<<20), alice...)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.status, string(res.body))
}
