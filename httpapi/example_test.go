package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// The API mounts on a ServeMux like any handler, here at its own prefix
// with API keys; the URLs it writes follow the mount.
func ExampleNew() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)
	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{{"id": "f1", "status": "active"}})

	mux := http.NewServeMux()
	mux.Handle(httpapi.Prefix+"/", httpapi.New(engine, &httpapi.Options{
		Authenticator: httpapi.APIKeys("secret-key"),
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/batch/jobs?wait=10s", strings.NewReader(
		`{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"checked": true}}]}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer secret-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode, res.Header.Get("Location"))
	fmt.Println(strings.Contains(string(body), `"status":"completed"`))

	res, _ = http.Get(srv.URL + "/api/v1/batch/jobs")
	res.Body.Close()
	fmt.Println(res.StatusCode)
	// Output:
	// 201 /api/v1/batch/jobs/batch1
	// true
	// 401
}
