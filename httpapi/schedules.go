package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/batchworks/batch"
)

// scheduleRoutes registers the schedule endpoints under the management
// rate limit.
func (h *Handler) scheduleRoutes(class *limitClass) {
	h.route("POST /schedules", class, h.createSchedule)
	h.route("GET /schedules", class, h.listSchedules)
	h.route("GET /schedules/{schedule_id}", class, h.getSchedule)
	h.route("PUT /schedules/{schedule_id}", class, h.updateSchedule)
	h.route("DELETE /schedules/{schedule_id}", class, h.deleteSchedule)
	h.route("POST /schedules/{schedule_id}/pause", class, h.pauseSchedule)
	h.route("POST /schedules/{schedule_id}/resume", class, h.resumeSchedule)
	h.route("GET /schedules/{schedule_id}/preview", class, h.previewSchedule)
}

// decodeSchedule reads {"schedule": {...}}.
func (h *Handler) decodeSchedule(w http.ResponseWriter, r *http.Request) (*batch.Schedule, error) {
	body, err := h.readJSON(w, r)
	if err != nil {
		return nil, err
	}
	raw, err := unwrap(body, "schedule")
	if err != nil {
		return nil, err
	}
	return batch.DecodeSchedule(raw)
}

func (h *Handler) createSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.decodeSchedule(w, r)
	if err != nil {
		return err
	}
	s, err = h.engine.CreateSchedule(r.Context(), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", URL(r, "/schedules/"+url.PathEscape(s.ID)))
	writeData(w, http.StatusCreated, s)
	return nil
}

func (h *Handler) listSchedules(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	page, err := h.engine.Schedules(r.Context(), &batch.ListOptions{Owner: principal(r), Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// ownedSchedule returns the schedule named in the path if the caller owns
// it; another principal's schedule is NOT_FOUND.
func (h *Handler) ownedSchedule(r *http.Request) (*batch.Schedule, error) {
	id := r.PathValue("schedule_id")
	s, err := h.engine.Schedule(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if s.Owner != principal(r) {
		return nil, &batch.Error{Code: batch.CodeNotFound, Message: "schedule not found: " + id}
	}
	return s, nil
}

func (h *Handler) getSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, s)
	return nil
}

func (h *Handler) updateSchedule(w http.ResponseWriter, r *http.Request) error {
	old, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	s, err := h.decodeSchedule(w, r)
	if err != nil {
		return err
	}
	s, err = h.engine.UpdateSchedule(r.Context(), old.ID, s)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, s)
	return nil
}

func (h *Handler) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	if err := h.engine.DeleteSchedule(r.Context(), s.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) pauseSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	if s, err = h.engine.PauseSchedule(r.Context(), s.ID); err != nil {
		return err
	}
	writeData(w, http.StatusOK, s)
	return nil
}

func (h *Handler) resumeSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	if s, err = h.engine.ResumeSchedule(r.Context(), s.ID); err != nil {
		return err
	}
	writeData(w, http.StatusOK, s)
	return nil
}

// previewSchedule answers GET /schedules/{id}/preview?n=5: the next n run
// times (at most 100).
func (h *Handler) previewSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := h.ownedSchedule(r)
	if err != nil {
		return err
	}
	n := 5
	if v := r.URL.Query().Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			return invalid("n", "n must be a number between 1 and 100")
		}
	}
	runs, err := batch.PreviewTiming(s.Timing, h.opts.Now(), n)
	if err != nil {
		return err
	}
	out := make([]string, len(runs))
	for i, t := range runs {
		out[i] = t.UTC().Format(time.RFC3339)
	}
	writeData(w, http.StatusOK, map[string]any{"schedule_id": s.ID, "runs": out})
	return nil
}
