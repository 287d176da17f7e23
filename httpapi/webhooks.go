package httpapi

import (
	"net/http"

	"github.com/batchworks/batch"
)

// webhookRoutes registers the webhook endpoints under the management rate
// limit.
func (h *Handler) webhookRoutes(class *limitClass) {
	o := &objects[batch.Webhook]{h: h, kind: "webhook", decode: batch.DecodeWebhook,
		owner:  func(w *batch.Webhook) (string, string) { return w.ID, w.Owner },
		create: h.engine.CreateWebhook, get: h.engine.Webhook, list: h.engine.Webhooks,
		update: h.engine.UpdateWebhook, delete: h.engine.DeleteWebhook}
	o.routes(class)
	h.route("GET /webhooks/{webhook_id}/deliveries", class, func(w http.ResponseWriter, r *http.Request) error {
		cursor, limit, err := pageParams(r)
		if err != nil {
			return err
		}
		return o.with(func(_ http.ResponseWriter, r *http.Request, _ *batch.Webhook, id string) (any, error) {
			return h.engine.WebhookDeliveries(r.Context(), id, &batch.PageOptions{Cursor: cursor, Limit: limit})
		})(w, r)
	})
}
