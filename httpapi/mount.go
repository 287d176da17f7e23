package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// The API mounts anywhere: under its own [Prefix], at any path of a
// ServeMux ("/admin/batch/"), behind http.StripPrefix, or at
// [Options].BasePath. Routing and every URL the API writes (Location
// headers, artifact URLs) follow the mount; [URL] builds such URLs.

// mountKey is the request context key of the public base path.
type mountKey struct{}

// mount splits the request path into the base the API is mounted at (as
// the handler sees it) and the API path under it ("/jobs/batch1"), and
// returns the public base: the base with what an outer http.StripPrefix
// removed put back. ok is false for a path outside Options.BasePath.
func (h *Handler) mount(r *http.Request) (public, rest string, ok bool) {
	p := r.URL.Path
	base := ""
	switch {
	case h.opts.BasePath != "":
		base = h.opts.BasePath
	case patternBase(r.Pattern, p) != "":
		base = patternBase(r.Pattern, p)
	case underBase(p, Prefix):
		base = Prefix
	}
	rest, ok = p, true
	switch {
	case underBase(p, base):
		rest = p[len(base):]
	case h.opts.BasePath != "":
		ok = false
	}
	if rest == "" {
		rest = "/"
	}
	return stripped(r) + base, rest, ok
}

// underBase reports whether path p is base or below it.
func underBase(p, base string) bool {
	return base != "" && strings.HasPrefix(p, base) && (len(p) == len(base) || p[len(base)] == '/')
}

// patternBase is the part of path p that a ServeMux subtree pattern
// ("/admin/batch/", "GET host/tenants/{t}/batch/") matched, or "".
func patternBase(pattern, p string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // drop a host
	}
	if !strings.HasPrefix(pattern, "/") || !strings.HasSuffix(pattern, "/") {
		return ""
	}
	segs := strings.Split(strings.Trim(pattern, "/"), "/")
	if segs[0] == "" {
		return ""
	}
	have := strings.Split(strings.TrimPrefix(p, "/"), "/")
	n := 0
	for i, s := range segs {
		if strings.HasSuffix(s, "...}") || i >= len(have) {
			break
		}
		if !strings.HasPrefix(s, "{") && s != have[i] {
			return ""
		}
		n += 1 + len(have[i])
	}
	return p[:n]
}

// stripped is the path prefix an outer handler (http.StripPrefix) removed
// from the request, found by comparing the path with the request line.
func stripped(r *http.Request) string {
	if r.RequestURI == "" {
		return ""
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil || !strings.HasSuffix(u.Path, r.URL.Path) {
		return ""
	}
	return strings.TrimSuffix(u.Path[:len(u.Path)-len(r.URL.Path)], "/")
}

// URL returns the path at which the API serving r answers the API path p
// ("/jobs/batch1"): p under the API's mount. Handlers of the API use it
// for every URL they write.
func URL(r *http.Request, p string) string {
	base, _ := r.Context().Value(mountKey{}).(string)
	return base + p
}

// withMount returns r routed to the API path rest, remembering the public
// base for [URL].
func withMount(ctx context.Context, r *http.Request, public, rest string) *http.Request {
	r = r.WithContext(context.WithValue(ctx, mountKey{}, public))
	u := *r.URL
	u.Path, u.RawPath = rest, ""
	r.URL = &u
	return r
}
