package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestWebhooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer rcv.Close()
	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("a", "b")}, &batch.Options{AllowPrivateWebhooks: true})
	alice := []string{"Authorization", "Bearer a"}
	bob := []string{"Authorization", "Bearer b"}

	res := tb.do(t, "POST", "/webhooks", `{"webhook": {"url": "`+rcv.URL+`", "events": ["job_completed"]}}`, alice...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id := res.data["id"].(string)
	require.Regexp(t, `^whsec_`, res.data["secret"])
	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/webhooks", `{"webhook": {"url": "gopher://x"}}`, alice...).status)
	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/webhooks", `{"webhook": {"url": "`+rcv.URL+`", "events": ["nope"]}}`, alice...).status)
	require.Len(t, tb.do(t, "GET", "/webhooks", "", alice...).data["webhooks"], 1)
	require.Empty(t, tb.do(t, "GET", "/webhooks", "", bob...).data["webhooks"])
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/webhooks/"+id, "", bob...).status)

	job := tb.do(t, "POST", "/jobs?wait=10s", docRequest, alice...)
	require.Equal(t, http.StatusCreated, job.status)
	require.Eventually(t, func() bool {
		d := tb.do(t, "GET", "/webhooks/"+id+"/deliveries", "", alice...)
		list, _ := d.data["deliveries"].([]any)
		return len(list) == 1 && list[0].(map[string]any)["status"] == "delivered"
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Len(t, bodies, 1)
	require.Contains(t, bodies[0], `"type":"job_completed"`)
	mu.Unlock()

	up := tb.do(t, "PUT", "/webhooks/"+id, `{"webhook": {"url": "`+rcv.URL+`/v2"}}`, alice...)
	require.Equal(t, http.StatusOK, up.status, string(up.body))
	require.Equal(t, rcv.URL+"/v2", up.data["url"])
	require.Equal(t, http.StatusNotFound, tb.do(t, "DELETE", "/webhooks/"+id, "", bob...).status)
	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/webhooks/"+id, "", alice...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/webhooks/"+id+"/deliveries", "", alice...).status)
}
