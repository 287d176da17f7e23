package batch_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestError_IsAndAs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("loading: %w", &batch.Error{Code: batch.CodeNotFound, Message: "job not found: batch9"})
	require.ErrorIs(t, err, batch.ErrNotFound, "errors.Is matches by code")
	require.NotErrorIs(t, err, batch.ErrInvalidBatch)
	var e *batch.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "job not found: batch9", e.Message)
	require.Equal(t, batch.CodeNotFound, batch.CodeOf(err))
	require.Equal(t, batch.Code(""), batch.CodeOf(errors.New("plain")))

	cause := errors.New("disk full")
	wrapped := &batch.Error{Code: batch.CodeSystem, Message: "write failed", Err: cause}
	require.ErrorIs(t, wrapped, cause, "Unwrap reaches the cause")
	require.Equal(t, "SYSTEM_ERROR: write failed: disk full", wrapped.Error())

	many := &batch.Error{Code: batch.CodeInvalidBatch, Message: "bad", Details: []batch.Detail{
		{Field: "a", Message: "1"}, {Field: "b", Message: "2"}, {Field: "c", Message: "3"}, {Field: "d", Message: "4"}, {Field: "e", Message: "5"},
	}}
	require.Equal(t, "INVALID_BATCH: bad; a: 1; b: 2; c: 3; and 2 more", many.Error())
}
