package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiPrefix is where the Batch API lives on a server.
const apiPrefix = "/api/v1/batch"

// client talks to one Batch API server.
type client struct {
	base   *url.URL // scheme://host[/mount], without the API prefix
	apiKey string
	http   *http.Client
	// timeout bounds each request that is not a stream or a download.
	timeout time.Duration
}

// newClient checks server ("http://host:port", optionally with a path the
// API is mounted under) and returns a client for it.
func newClient(server, apiKey string, timeout time.Duration) (*client, error) {
	if server == "" {
		return nil, usageErrorf("no server: pass --server or set BATCH_SERVER")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--server must be an http(s) URL such as http://127.0.0.1:8080, got %q", server)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), apiPrefix)
	u.RawQuery, u.Fragment = "", ""
	return &client{base: u, apiKey: apiKey, http: &http.Client{}, timeout: timeout}, nil
}

// url is the absolute URL of an API path ("/jobs/x") with query q. The
// path's segments come escaped (url.PathEscape) and are sent as they are.
func (c *client) url(path string, q url.Values) string {
	u := *c.base
	raw := strings.TrimSuffix(u.EscapedPath(), "/") + apiPrefix + path
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// newRequest builds a request for an API path ("/jobs/x").
func (c *client) newRequest(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Request, error) {
	target := c.url(path, q)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "batchctl")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	return req, nil
}

// do sends a request and returns the raw "data" of a success answer (nil
// for 204), or an *apiError for an error answer.
func (c *client) do(ctx context.Context, method, path string, q url.Values, body []byte, hdr http.Header) (json.RawMessage, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, req.URL.Redacted(), err)
	}
	if resp.StatusCode >= 300 {
		return nil, decodeAPIError(resp, raw)
	}
	if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Data == nil {
		return nil, fmt.Errorf("%s %s: the server answered %d with a body that is not {\"data\": ...}: %.200s",
			method, req.URL.Redacted(), resp.StatusCode, raw)
	}
	return env.Data, nil
}

// get GETs an API path into v (when v is not nil) and returns the raw data.
func (c *client) get(ctx context.Context, path string, q url.Values, v any) (json.RawMessage, error) {
	data, err := c.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return nil, err
	}
	return data, decodeData(data, v)
}

// send sends a JSON body (nil for none) and decodes the answer's data into
// v (when v is not nil).
func (c *client) send(ctx context.Context, method, path string, q url.Values, body []byte, v any) (json.RawMessage, error) {
	data, err := c.do(ctx, method, path, q, body, nil)
	if err != nil {
		return nil, err
	}
	return data, decodeData(data, v)
}

func decodeData(data json.RawMessage, v any) error {
	if v == nil || data == nil {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reading the server's answer: %w", err)
	}
	return nil
}

// wrap returns {"key": raw} as JSON.
func wrap(key string, raw json.RawMessage) []byte {
	b, _ := json.Marshal(map[string]json.RawMessage{key: raw})
	return b
}

// apiError is an error answer of the API: {"error": {"code", "message",
// "details"}} with its HTTP status.
type apiError struct {
	Status  int
	Code    string
	Message string
	// Details are kept as the server sent them, so fields this client does
	// not know still reach the user.
	Details []map[string]any
	// RetryAfter is the Retry-After of a 429, if any.
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// decodeAPIError reads an error answer; a body that is not the API's error
// shape (a proxy's HTML page) still gives the status and a short excerpt.
func decodeAPIError(resp *http.Response, raw []byte) *apiError {
	e := &apiError{Status: resp.StatusCode}
	var body struct {
		Error *struct {
			Code    string           `json:"code"`
			Message string           `json:"message"`
			Details []map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err == nil && body.Error != nil {
		e.Code, e.Message, e.Details = body.Error.Code, body.Error.Message, body.Error.Details
	} else if s := strings.TrimSpace(string(raw)); s != "" {
		e.Message = fmt.Sprintf("%s: %.200s", http.StatusText(resp.StatusCode), s)
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}

// isNotFound reports whether err is a 404 answer.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}
