package httpapi

import (
	"net/http"
	"net/url"

	"github.com/batchworks/batch"
)

// webhookRoutes registers the webhook endpoints under the management rate
// limit.
func (h *Handler) webhookRoutes(class *limitClass) {
	h.route("POST /webhooks", class, h.createWebhook)
	h.route("GET /webhooks", class, h.listWebhooks)
	h.route("GET /webhooks/{webhook_id}", class, h.getWebhook)
	h.route("PUT /webhooks/{webhook_id}", class, h.updateWebhook)
	h.route("DELETE /webhooks/{webhook_id}", class, h.deleteWebhook)
	h.route("GET /webhooks/{webhook_id}/deliveries", class, h.webhookDeliveries)
}

// decodeWebhook reads {"webhook": {...}}.
func (h *Handler) decodeWebhook(w http.ResponseWriter, r *http.Request) (*batch.Webhook, error) {
	body, err := h.readJSON(w, r)
	if err != nil {
		return nil, err
	}
	raw, err := unwrap(body, "webhook")
	if err != nil {
		return nil, err
	}
	return batch.DecodeWebhook(raw)
}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) error {
	hook, err := h.decodeWebhook(w, r)
	if err != nil {
		return err
	}
	hook, err = h.engine.CreateWebhook(r.Context(), hook)
	if err != nil {
		return err
	}
	w.Header().Set("Location", URL(r, "/webhooks/"+url.PathEscape(hook.ID)))
	writeData(w, http.StatusCreated, hook)
	return nil
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	page, err := h.engine.Webhooks(r.Context(), &batch.ListOptions{Owner: principal(r), Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// ownedWebhook returns the webhook named in the path if the caller owns
// it; another principal's webhook is NOT_FOUND.
func (h *Handler) ownedWebhook(r *http.Request) (*batch.Webhook, error) {
	id := r.PathValue("webhook_id")
	hook, err := h.engine.Webhook(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if hook.Owner != principal(r) {
		return nil, &batch.Error{Code: batch.CodeNotFound, Message: "webhook not found: " + id}
	}
	return hook, nil
}

func (h *Handler) getWebhook(w http.ResponseWriter, r *http.Request) error {
	hook, err := h.ownedWebhook(r)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, hook)
	return nil
}

func (h *Handler) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	old, err := h.ownedWebhook(r)
	if err != nil {
		return err
	}
	hook, err := h.decodeWebhook(w, r)
	if err != nil {
		return err
	}
	hook, err = h.engine.UpdateWebhook(r.Context(), old.ID, hook)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, hook)
	return nil
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	hook, err := h.ownedWebhook(r)
	if err != nil {
		return err
	}
	if err := h.engine.DeleteWebhook(r.Context(), hook.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) webhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	hook, err := h.ownedWebhook(r)
	if err != nil {
		return err
	}
	page, err := h.engine.WebhookDeliveries(r.Context(), hook.ID, &batch.PageOptions{Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}
