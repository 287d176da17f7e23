package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/batchworks/batch"
)

// DefaultMaxUploadBytes is the default limit of one upload: 16 GiB.
const DefaultMaxUploadBytes = 16 << 30

// uploadRoutes registers the uploads: an import source too big for a
// request body is PUT (or POSTed) to /uploads as it is, stored in chunks,
// and named by an import's source.upload.
func (h *Handler) uploadRoutes(class *limitClass) {
	h.route("PUT /uploads", class, h.createUpload)
	h.route("POST /uploads", class, h.createUpload)
	o := &objects[batch.Upload]{h: h, kind: "upload",
		owner: func(u *batch.Upload) (string, string) { return u.ID, u.Owner },
		get:   h.engine.UploadInfo, delete: h.engine.DeleteUpload}
	o.routes(class)
}

// createUpload handles PUT /uploads: the body is the file, streamed into
// the store. It answers 201 with {"data": {"upload_id", "size", ...}}.
func (h *Handler) createUpload(w http.ResponseWriter, r *http.Request) error {
	up, err := h.engine.Upload(r.Context(), http.MaxBytesReader(w, r.Body, h.opts.MaxUploadBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "PAYLOAD_TOO_LARGE",
				message: fmt.Sprintf("upload is larger than %d bytes", mbe.Limit)}
		}
		return err
	}
	writeData(w, http.StatusCreated, up)
	return nil
}
