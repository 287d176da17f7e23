package httpapi_test

import (
	"encoding/json"
	"fmt"

	"github.com/batchworks/batch/httpapi"
)

// The OpenAPI document is embedded in the package; the handler also serves
// it, without credentials, at /api/v1/batch/openapi.json.
func ExampleOpenAPI() {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title string `json:"title"`
		} `json:"info"`
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		panic(err)
	}
	_, hasJobs := doc.Paths["/jobs/{job_id}"]
	fmt.Println(doc.OpenAPI, doc.Info.Title, hasJobs)
	// Output: 3.1.0 Batch API true
}
