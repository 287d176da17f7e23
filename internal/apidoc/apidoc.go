// Package apidoc gives tests the Batch API document's requests as the
// examples send them, so that every test sends the one copy.
package apidoc

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// createBatchJobFile is where the document's "Create Batch Job" request
// lives: beside the quickstart, which embeds it.
const createBatchJobFile = "examples/quickstart/create-batch-job.json"

// CreateBatchJob returns the body of the document's "Create Batch Job"
// request, read from the module's source tree (tests run inside it). It
// panics when the file cannot be read.
func CreateBatchJob() string { return string(createBatchJob()) }

// Batch returns the "batch" object of [CreateBatchJob].
func Batch() string { return wrapped(createBatchJob(), "batch") }

// createTemplate is the body of a "Create Template" request for the
// document's bulk_field_update template (the one its List Templates
// response shows).
//
//go:embed create-template.json
var createTemplate string

// CreateTemplate returns the body of a request that creates the
// document's bulk_field_update template.
func CreateTemplate() string { return createTemplate }

// Template returns the "template" object of [CreateTemplate].
func Template() string { return wrapped([]byte(createTemplate), "template") }

// wrapped returns the object under name in the request body, which must
// have it.
func wrapped(body []byte, name string) string {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req[name] == nil {
		panic(fmt.Sprintf("apidoc: no %q object in the request: %v", name, err))
	}
	return string(req[name])
}

var createBatchJob = sync.OnceValue(func() []byte {
	b, err := readModuleFile(createBatchJobFile)
	if err != nil {
		panic(err)
	}
	return b
})

// readModuleFile reads name, a path from the module's root, found as the
// nearest directory above the working directory with a go.mod.
func readModuleFile(name string) ([]byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("apidoc: no go.mod above the working directory")
		}
		dir = parent
	}
}
