package httpapi

import (
	"net/http"
	"net/url"

	"github.com/batchworks/batch"
)

// templateRoutes registers the template endpoints, all under the template
// management rate limit.
func (h *Handler) templateRoutes(class *limitClass) {
	h.route("POST /templates", class, h.createTemplate)
	h.route("GET /templates", class, h.listTemplates)
	h.route("GET /templates/{template_id}", class, h.getTemplate)
	h.route("PUT /templates/{template_id}", class, h.updateTemplate)
	h.route("DELETE /templates/{template_id}", class, h.deleteTemplate)
}

// decodeTemplate reads {"template": {...}}.
func (h *Handler) decodeTemplate(w http.ResponseWriter, r *http.Request) (*batch.Template, error) {
	body, err := h.readJSON(w, r)
	if err != nil {
		return nil, err
	}
	raw, err := unwrap(body, "template")
	if err != nil {
		return nil, err
	}
	return batch.DecodeTemplate(raw)
}

func (h *Handler) createTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := h.decodeTemplate(w, r)
	if err != nil {
		return err
	}
	t, err = h.engine.CreateTemplate(r.Context(), t)
	if err != nil {
		return err
	}
	w.Header().Set("Location", URL(r, "/templates/"+url.PathEscape(t.ID)))
	writeData(w, http.StatusCreated, t)
	return nil
}

func (h *Handler) listTemplates(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	page, err := h.engine.Templates(r.Context(), &batch.ListOptions{Owner: principal(r), Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// ownedTemplate returns the template named in the path if the caller owns
// it; another principal's template is NOT_FOUND.
func (h *Handler) ownedTemplate(r *http.Request) (*batch.Template, error) {
	id := r.PathValue("template_id")
	t, err := h.engine.Template(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if t.Owner != principal(r) {
		return nil, &batch.Error{Code: batch.CodeNotFound, Message: "template not found: " + id}
	}
	return t, nil
}

func (h *Handler) getTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := h.ownedTemplate(r)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, t)
	return nil
}

func (h *Handler) updateTemplate(w http.ResponseWriter, r *http.Request) error {
	old, err := h.ownedTemplate(r)
	if err != nil {
		return err
	}
	t, err := h.decodeTemplate(w, r)
	if err != nil {
		return err
	}
	t, err = h.engine.UpdateTemplate(r.Context(), old.ID, t)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, t)
	return nil
}

func (h *Handler) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := h.ownedTemplate(r)
	if err != nil {
		return err
	}
	if err := h.engine.DeleteTemplate(r.Context(), t.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
