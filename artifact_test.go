package batch_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// Artifacts a job writes are listed with their sizes and read back byte
// for byte, across chunk boundaries; writing a name again replaces it
// without touching others whose names share its prefix.
func TestArtifacts_WriteListRead(t *testing.T) {
	t.Parallel()
	big := make([]byte, 600<<10+17) // more than two chunks
	for i := range big {
		big[i] = byte(rand.N(256))
	}
	want := map[string][]byte{"a": []byte("short"), "a.b": big, "empty.txt": {}}
	var invalidErr error
	write := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		put := func(name string, b []byte) error {
			_, err := env.WriteArtifact(ctx, name, "application/octet-stream", func(w io.Writer) error {
				for chunk := range slices.Chunk(b, 100<<10) {
					if _, err := w.Write(chunk); err != nil {
						return err
					}
				}
				return nil
			})
			return err
		}
		return &batch.Plan{Count: 1, Item: func(int64) (batch.Item, error) { return batch.Item{ResourceID: "x"}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				if err := put("a", big); err != nil { // replaced below by a shorter one
					return err
				}
				for _, name := range []string{"a.b", "empty.txt", "a"} {
					if err := put(name, want[name]); err != nil {
						return err
					}
				}
				invalidErr = put("../escape", []byte("x"))
				return nil
			}}, nil
	})
	tb := setup(t, "bolt", &batch.Options{Operations: map[string]batch.Operation{"write": write}})
	job := tb.wait(t, tb.submit(t, opBatch("write", 1, batch.BatchOptions{})).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Error(t, invalidErr, "an artifact name may not be a path")

	arts, err := tb.e.Artifacts(t.Context(), job.ID)
	require.NoError(t, err)
	sizes := map[string]int64{}
	for _, a := range arts {
		sizes[a.Name] = a.Size
		require.Equal(t, "application/octet-stream", a.ContentType)
	}
	require.Equal(t, map[string]int64{"a": 5, "a.b": int64(len(big)), "empty.txt": 0}, sizes)
	for name, b := range want {
		art, rc, err := tb.e.OpenArtifact(t.Context(), job.ID, name)
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.Equal(t, int64(len(b)), art.Size)
		require.True(t, bytes.Equal(b, got), "%s reads back as written", name)
	}

	_, _, err = tb.e.OpenArtifact(t.Context(), job.ID, "nothing")
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = tb.e.Artifacts(t.Context(), "batch_999999")
	require.ErrorIs(t, err, batch.ErrNotFound)
}
