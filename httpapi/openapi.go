package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the Batch API. The handler tests
// check every response they receive against it.
//
//go:embed openapi.json
var openAPI []byte

// serverURL is the servers entry's URL in openAPI (the JSON string
// "/api/v1/batch", quotes included): the served document names the mount
// it is served at there instead.
var serverURL = func() []byte {
	u, _ := json.Marshal(Prefix)
	return append([]byte(`"servers": [`+"\n    {\n      "+`"url": `), u...)
}()

// OpenAPI returns the OpenAPI 3.1 document (JSON) of the API that [New]
// serves. It is also served, without credentials, at openapi.json under
// the mount path; that copy's servers entry names the mount.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// mountedOpenAPI is the document with its servers entry naming base, the
// path the API is mounted at ("/" at the root).
func mountedOpenAPI(base string) []byte {
	if base == "" {
		base = "/"
	}
	if base == Prefix {
		return openAPI
	}
	u, _ := json.Marshal(base)
	at := append(bytes.TrimSuffix(bytes.Clone(serverURL), []byte(`"`+Prefix+`"`)), u...)
	return bytes.Replace(openAPI, serverURL, at, 1)
}

// serveOpenAPI answers the OpenAPI document.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(mountedOpenAPI(URL(r, "")))
	}
}
