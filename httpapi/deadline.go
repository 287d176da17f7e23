package httpapi

import (
	"io"
	"net/http"
	"time"
)

// A server's ReadTimeout and WriteTimeout bound every request, which is
// right for ordinary ones and wrong for the few that are long on purpose:
// job creation with ?wait=, artifact downloads and progress streams. Those
// extend their own connection's deadlines as they go (a server without
// timeouts is left without them in effect, since the deadlines are set
// well ahead).

// holdOpen extends the connection's read and write deadlines to d from
// now. Writers that cannot set deadlines (a recorder in tests) are left
// alone.
func holdOpen(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	_ = rc.SetWriteDeadline(at)
	_ = rc.SetReadDeadline(at)
}

// progressIdle is how long a long response may go without the client
// taking any bytes before its connection is cut.
const progressIdle = 30 * time.Second

// progressWriter extends the connection's deadlines on every write, so a
// long download that keeps moving is never cut, and one whose client
// stopped reading is cut after progressIdle.
type progressWriter struct {
	w http.ResponseWriter
}

func (p progressWriter) Write(b []byte) (int, error) {
	holdOpen(p.w, progressIdle)
	return p.w.Write(b)
}

var _ io.Writer = progressWriter{}
