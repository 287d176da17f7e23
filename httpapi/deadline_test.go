package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowServer serves a response of five chunks written 60ms apart, through
// wrap, on a server whose WriteTimeout (100ms) is shorter than that.
func slowServer(t *testing.T, wrap func(http.ResponseWriter) io.Writer) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		out := wrap(w)
		for i := range 5 {
			if i > 0 {
				time.Sleep(60 * time.Millisecond) // the response is slow on purpose
			}
			if _, err := io.WriteString(out, "chunk\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}))
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (string, error) {
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// TestProgressWriter: a long response written through progressWriter
// outlives the server's WriteTimeout, since every write extends the
// deadline; the same response written plainly is cut off.
func TestProgressWriter(t *testing.T) {
	t.Parallel()
	kept := slowServer(t, func(w http.ResponseWriter) io.Writer { return progressWriter{w} })
	body, err := get(t, kept.URL)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("chunk\n", 5), body)

	cut := slowServer(t, func(w http.ResponseWriter) io.Writer { return w })
	body, err = get(t, cut.URL)
	require.True(t, err != nil || body != strings.Repeat("chunk\n", 5), "without progressWriter the WriteTimeout cuts the response")
}

// TestHoldOpen: holdOpen lets a response begun later than the server's
// WriteTimeout through, and leaves a writer without deadlines alone.
func TestHoldOpen(t *testing.T) {
	t.Parallel()
	srv := slowServer(t, func(w http.ResponseWriter) io.Writer {
		holdOpen(w, 5*time.Second)
		return w
	})
	body, err := get(t, srv.URL)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("chunk\n", 5), body)

	rec := httptest.NewRecorder()
	holdOpen(rec, time.Second)
	_, err = progressWriter{rec}.Write([]byte("x"))
	require.NoError(t, err)
	require.Equal(t, "x", rec.Body.String())
}
