package batch_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// A custom operation plans with the job's spec and environment: the Env
// names the job and the operation's position and finds registered
// resources; each item knows its job, index and operation, and its Key
// is unique within the job.
func TestOperationFunc_PlanAndItems(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var envs []batch.Env
	var resErr error
	var foundFields bool
	keys := map[string]batch.Item{}
	op := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		mu.Lock()
		defer mu.Unlock()
		envs = append(envs, *env)
		r, err := env.Resource("fields")
		foundFields = err == nil && r != nil
		_, resErr = env.Resource("nothing")
		n := int64(spec.Params["count"].(float64))
		return &batch.Plan{Count: n,
			Item: func(i int64) (batch.Item, error) { return batch.Item{ResourceID: fmt.Sprint("r", i)}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				mu.Lock()
				defer mu.Unlock()
				keys[it.Key()] = *it
				return nil
			}}, nil
	})
	tb := setup(t, "memory", &batch.Options{Operations: map[string]batch.Operation{"mine": op}})
	b := &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "mine", Params: map[string]any{"count": 2}},
		{Type: "mine", Params: map[string]any{"count": 3}},
	}}
	job := tb.wait(t, tb.submit(t, b).ID)
	require.Equal(t, batch.StateCompleted, job.Status)

	mu.Lock()
	defer mu.Unlock()
	require.True(t, foundFields)
	require.ErrorIs(t, resErr, batch.ErrNotFound)
	var ops []int
	for _, env := range envs {
		if env.JobID == job.ID {
			ops = append(ops, env.Operation)
		}
	}
	require.Contains(t, ops, 0)
	require.Contains(t, ops, 1)
	require.Len(t, keys, 5, "one key per item")
	byOp := map[int]int{}
	for key, it := range keys {
		require.Equal(t, job.ID, it.JobID)
		require.Equal(t, fmt.Sprintf("%s/%d", job.ID, it.Index), key)
		require.Equal(t, "mine", it.Type)
		byOp[it.Operation]++
	}
	require.Equal(t, map[int]int{0: 2, 1: 3}, byOp)
}

// The built-in operations are registered on every engine: a batch naming
// one is judged on its fields, never refused as of an unknown type.
func TestBuiltinOperationsRegistered(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil) // backup and optimize need a file
	submit := func(typ string) map[string]string {
		_, err := tb.e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: typ}}}, nil)
		if err == nil {
			return nil
		}
		return detailFields(t, err)
	}
	require.Contains(t, submit("no_such_op"), "operations[0].type")
	for _, typ := range []string{batch.OpCreate, batch.OpUpdate, batch.OpDelete, batch.OpImport, batch.OpExport,
		batch.OpBackup, batch.OpRestore, batch.OpCleanup, batch.OpOptimize, batch.OpCalculate, batch.OpAnalyze,
		batch.OpGenerate, batch.OpValidate, batch.OpRevert} {
		require.NotContains(t, submit(typ), "operations[0].type", typ)
	}
}
