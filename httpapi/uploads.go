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
	h.route("GET /uploads/{upload_id}", class, h.getUpload)
	h.route("DELETE /uploads/{upload_id}", class, h.deleteUpload)
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

// ownedUpload reads the upload named in the path; another principal's
// upload is NOT_FOUND.
func (h *Handler) ownedUpload(r *http.Request) (*batch.Upload, error) {
	id := r.PathValue("upload_id")
	up, err := h.engine.UploadInfo(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if up.Owner != principal(r) {
		return nil, &batch.Error{Code: batch.CodeNotFound, Message: "upload not found: " + id}
	}
	return up, nil
}

func (h *Handler) getUpload(w http.ResponseWriter, r *http.Request) error {
	up, err := h.ownedUpload(r)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, up)
	return nil
}

func (h *Handler) deleteUpload(w http.ResponseWriter, r *http.Request) error {
	up, err := h.ownedUpload(r)
	if err != nil {
		return err
	}
	if err := h.engine.DeleteUpload(r.Context(), up.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
