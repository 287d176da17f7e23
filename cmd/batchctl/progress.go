package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/batchworks/batch"
)

// progressView shows a followed job's progress on stderr.
type progressView interface {
	// update shows a snapshot of the job.
	update(j *batch.Job)
	// event shows a lifecycle event (job_started, job_paused, ...).
	event(ev *lifecycle)
	// close ends the display; j is the final job, or nil when following
	// stopped early.
	close(j *batch.Job)
}

// newProgressView picks the display: a bar when stderr is a terminal, one
// line per update otherwise, nothing with --quiet.
func (a *app) newProgressView(id string, quiet bool) progressView {
	switch {
	case quiet:
		return nopView{}
	case a.isTerminal(a.stderr):
		return newBarView(a.stderr, id)
	}
	return &lineView{w: a.stderr, id: id}
}

type nopView struct{}

func (nopView) update(*batch.Job)  {}
func (nopView) event(*lifecycle)   {}
func (nopView) close(j *batch.Job) {}

// lineView writes one line per change, for logs and CI output.
type lineView struct {
	w    io.Writer
	id   string
	last string
}

func (v *lineView) update(j *batch.Job) {
	s := statusLine(j)
	if s == v.last {
		return
	}
	v.last = s
	fmt.Fprintf(v.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), s)
}

func (v *lineView) event(ev *lifecycle) {
	by := ""
	if ev.Principal != "" {
		by = " by " + ev.Principal
	}
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	fmt.Fprintf(v.w, "%s %s %s%s\n", at.UTC().Format(time.RFC3339), v.id, ev.Type, by)
	if ev.Job != nil {
		v.update(ev.Job)
	}
}

func (v *lineView) close(j *batch.Job) {
	if j != nil {
		v.update(j)
	}
}

// statusLine is "id status done/total (pct%) failed=n [eta]".
func statusLine(j *batch.Job) string {
	s := fmt.Sprintf("%s %s %s failed=%d", j.ID, j.Status, progressText(&j.Progress), j.Progress.Failed)
	if st := j.Statistics; st != nil && !j.Status.Final() && st.EstimatedRemainingTime > 0 {
		s += " remaining=" + st.EstimatedRemainingTime.String()
	}
	return s
}

// barScale is the bar's resolution: it counts per mille of the job, so it
// can never fill up (and be finished by the library) before the job ends,
// even when the total grows as operations select their records.
const barScale = 1000

// barView draws a progress bar that redraws in place.
type barView struct {
	bar *progressbar.ProgressBar
	w   io.Writer
	id  string
}

func newBarView(w io.Writer, id string) *barView {
	bar := progressbar.NewOptions64(barScale,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(id),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
	)
	return &barView{bar: bar, w: w, id: id}
}

// update moves the bar, then redraws it with the new text. Updates come
// at most a few times a second (the stream's pace, or the poll interval),
// so every one is drawn.
func (v *barView) update(j *batch.Job) {
	_ = v.bar.Set64(min(perMille(&j.Progress), barScale-1))
	v.bar.Describe(barText(j))
}

func (v *barView) event(ev *lifecycle) {
	if ev.Job != nil {
		v.update(ev.Job)
	}
}

func (v *barView) close(j *batch.Job) {
	if j == nil {
		_ = v.bar.Exit()
		fmt.Fprintln(v.w)
		return
	}
	if j.Status == batch.StateCompleted {
		v.bar.Describe(barText(j))
		_ = v.bar.Finish()
	} else {
		v.update(j)
		_ = v.bar.Exit()
	}
	fmt.Fprintln(v.w)
}

func barText(j *batch.Job) string {
	s := fmt.Sprintf("%s %s %d/%d", j.ID, j.Status, j.Progress.Completed+j.Progress.Failed, j.Progress.TotalOperations)
	if j.Progress.Failed > 0 {
		s += fmt.Sprintf(", %d failed", j.Progress.Failed)
	}
	if st := j.Statistics; st != nil && !j.Status.Final() && st.EstimatedRemainingTime > 0 {
		s += ", ~" + st.EstimatedRemainingTime.String() + " left"
	}
	return s
}

// perMille is the job's progress in thousandths.
func perMille(p *batch.Progress) int64 {
	if p.TotalOperations <= 0 {
		return 0
	}
	return min((p.Completed+p.Failed)*barScale/p.TotalOperations, barScale)
}
