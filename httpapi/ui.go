package httpapi

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// uiFiles is the dashboard: plain HTML, CSS and JavaScript, no build step.
//
//go:embed ui
var uiFiles embed.FS

// uiModTime is when the binary started, the Last-Modified of the embedded
// files.
var uiModTime = time.Now()

// uiRoutes registers the dashboard's files and the OpenAPI document. Both
// are public (see isPublic): the data the page shows is fetched from the
// API with the key the user signs in with.
func (h *Handler) uiRoutes() {
	h.mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	if h.opts.DisableUI {
		return
	}
	h.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		// Under the mount: http.Redirect would resolve a relative "ui/"
		// against the path under the mount, not the one the client asked.
		http.Redirect(w, r, URL(r, "/ui/"), http.StatusMovedPermanently)
	})
	h.mux.HandleFunc("GET /ui/{file...}", serveUI)
}

// isPublic reports whether the (mounted) request is routed to a public
// document, which needs no credentials.
func (h *Handler) isPublic(r *http.Request) bool {
	_, pattern := h.mux.Handler(r)
	return strings.HasSuffix(pattern, "/openapi.json") || strings.HasSuffix(pattern, "/ui") || strings.HasSuffix(pattern, "/ui/{file...}")
}

// serveUI answers one of the dashboard's files; "" is the page itself.
func serveUI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(uiFiles, path.Join("ui", path.Clean("/"+name)))
	if err != nil {
		writeError(w, r, &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: "no such dashboard file: " + name}, nil)
		return
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	http.ServeContent(w, r, name, uiModTime, bytes.NewReader(b))
}
