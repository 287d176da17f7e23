package httpapi

import "github.com/batchworks/batch"

// templateRoutes registers the template endpoints, all under the template
// management rate limit.
func (h *Handler) templateRoutes(class *limitClass) {
	o := &objects[batch.Template]{h: h, kind: "template", decode: batch.DecodeTemplate,
		owner:  func(t *batch.Template) (string, string) { return t.ID, t.Owner },
		create: h.engine.CreateTemplate, get: h.engine.Template, list: h.engine.Templates,
		update: h.engine.UpdateTemplate, delete: h.engine.DeleteTemplate}
	o.routes(class)
}
