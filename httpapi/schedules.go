package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/batchworks/batch"
)

// scheduleRoutes registers the schedule endpoints under the management
// rate limit.
func (h *Handler) scheduleRoutes(class *limitClass) {
	o := &objects[batch.Schedule]{h: h, kind: "schedule", decode: batch.DecodeSchedule,
		owner:  func(s *batch.Schedule) (string, string) { return s.ID, s.Owner },
		create: h.engine.CreateSchedule, get: h.engine.Schedule, list: h.engine.Schedules,
		update: h.engine.UpdateSchedule, delete: h.engine.DeleteSchedule}
	o.routes(class)
	h.route("POST /schedules/{schedule_id}/pause", class, o.action(h.engine.PauseSchedule))
	h.route("POST /schedules/{schedule_id}/resume", class, o.action(h.engine.ResumeSchedule))
	h.route("GET /schedules/{schedule_id}/preview", class, o.with(h.previewSchedule))
}

// previewSchedule answers GET /schedules/{id}/preview?n=5: the next n run
// times (at most 100).
func (h *Handler) previewSchedule(_ http.ResponseWriter, r *http.Request, s *batch.Schedule, id string) (any, error) {
	n := 5
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			return nil, invalid("n", "n must be a number between 1 and 100")
		}
	}
	runs, err := batch.PreviewTiming(s.Timing, h.opts.Now(), n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(runs))
	for i, t := range runs {
		out[i] = t.UTC().Format(time.RFC3339)
	}
	return map[string]any{"schedule_id": id, "runs": out}, nil
}
