package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/batchworks/batch/httpapi"
)

// apiSpec is the served OpenAPI document, loaded once, with a router that
// finds the operation of a request.
var apiSpec = sync.OnceValues(func() (*openAPISpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	// Requests are matched on a fixed host: test servers listen on
	// random ports.
	doc.Servers = openapi3.Servers{{URL: "http://api.test" + httpapi.Prefix}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &openAPISpec{doc: doc, router: router}, nil
})

type openAPISpec struct {
	doc    *openapi3.T
	router routers.Router
}

// seen records every (operation, status) the checked handlers answered,
// as "getJob 404".
var seen sync.Map

// checkOpenAPI wraps the API handler so that every response it gives is
// validated against the OpenAPI document: its status must be documented
// for the operation (a 5xx may fall to "default"), and its headers and
// body must match. A successful request must match the document too.
// Mismatches fail t. Benchmarks get h itself: they measure the handler,
// not the check.
func checkOpenAPI(t testing.TB, h http.Handler) http.Handler {
	if _, ok := t.(*testing.B); ok {
		return h
	}
	spec, err := apiSpec()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil {
			reqBody, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		tee := &teeWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(tee, r)
		if err := spec.check(r, reqBody, tee.status, w.Header(), tee.body.Bytes()); err != nil {
			t.Errorf("OpenAPI: %s %s -> %d: %v\nbody: %.400s", r.Method, r.URL, tee.status, err, tee.body.Bytes())
		}
	})
}

// check validates one exchange.
func (s *openAPISpec) check(r *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	u := &url.URL{Scheme: "http", Host: "api.test", Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // the server answers HEAD with its GET route, without the body
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u.String(), bytes.NewReader(reqBody))
	if err != nil {
		return err
	}
	req.Header = r.Header.Clone()
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		// Not an operation: an unknown path or method, or a dashboard
		// file. API paths must still answer the error shape.
		if strings.Contains(r.URL.Path, "/ui/") {
			return nil
		}
		if status < 400 {
			return fmt.Errorf("%d for a request the document has no operation for", status)
		}
		return s.checkErrorBody(body)
	}
	op := route.Operation
	seen.Store(fmt.Sprintf("%s %d", op.OperationID, status), true)
	if op.Responses.Status(status) == nil && status < 500 {
		return fmt.Errorf("status %d is not documented for %s", status, op.OperationID)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("the request was accepted but does not match the document: %w", err)
		}
		in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	ct := header.Get("Content-Type")
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	if !strings.HasPrefix(ct, "application/json") || r.Method == http.MethodHead {
		opts.ExcludeResponseBody = true
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: opts,
	})
}

// checkErrorBody validates an error answer against the ErrorBody schema.
func (s *openAPISpec) checkErrorBody(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("an error answer that is not JSON: %w", err)
	}
	return s.doc.Components.Schemas["ErrorBody"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// teeWriter passes a response through and keeps a copy of it.
type teeWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *teeWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	w.wrote = true
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// Flush keeps streamed answers streaming.
func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
