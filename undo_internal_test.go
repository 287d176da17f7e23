package batch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUndoKey_RoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		coll, id string
		op       int
	}{{"fields", "f1", 0}, {"fields", "", 7}, {"c", "id with\x00nul", 1 << 20}, {"x", "ünï", 4294967295}} {
		k := undoKey(tt.coll, tt.id, tt.op)
		coll, id, op, ok := parseUndoKey(k)
		require.True(t, ok)
		require.Equal(t, tt.coll, coll)
		require.Equal(t, tt.id, id)
		require.Equal(t, tt.op, op)
	}
	for _, bad := range []string{"", "short", "nonul\x01\x00\x00\x00\x01", "\x01\x02\x03\x04\x05\x06"} {
		_, _, _, ok := parseUndoKey([]byte(bad))
		require.False(t, ok, "%q", bad)
	}
}

// An undo entry keeps the before-image and a hash of the after-state: a
// revert restores only records nobody changed since.
func TestUndoEntry(t *testing.T) {
	t.Parallel()
	before, after := []byte(`{"id":"f1","v":1}`), []byte(`{"id":"f1","v":2}`)
	for _, tt := range []struct {
		name          string
		before, after []byte
		existed       bool
		matches       [][]byte // current states the entry takes as its own
		differs       [][]byte
	}{
		{"update", before, after, true, [][]byte{after}, [][]byte{before, nil}},
		{"create", nil, after, false, [][]byte{after}, [][]byte{before, nil}},
		{"delete", before, nil, true, [][]byte{nil}, [][]byte{before, after}},
	} {
		u, ok := decodeUndo(encodeUndo(tt.before, tt.after, tt.existed))
		require.True(t, ok, tt.name)
		require.Equal(t, tt.existed, u.flags&undoBefore != 0, tt.name)
		if tt.existed {
			require.Equal(t, tt.before, u.before, tt.name)
		}
		for _, cur := range tt.matches {
			require.True(t, u.matchesAfter(cur), "%s: %s", tt.name, cur)
		}
		for _, cur := range tt.differs {
			require.False(t, u.matchesAfter(cur), "%s: %s", tt.name, cur)
		}
	}
	_, ok := decodeUndo([]byte("short"))
	require.False(t, ok)
}

// A restore's images: the first before-image of a record stays, whatever
// later runs see; the after-state is updated.
func TestRestoreImages_KeepsTheFirstBeforeImage(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	defer s.Close()
	bucket := undoBucket("batch_1")
	require.NoError(t, s.Update(func(tx Tx) error {
		ri := &restoreImages{tx: tx, bucket: bucket, op: 0}
		require.NoError(t, ri.before("fields", []byte("f1"), []byte("original")))
		require.NoError(t, ri.after("fields", []byte("f1"), []byte("restored")))
		require.NoError(t, ri.before("fields", []byte("f1"), []byte("restored")), "a second run")
		require.NoError(t, ri.after("fields", []byte("f1"), []byte("restored again")))
		require.NoError(t, ri.after("fields", []byte("new"), []byte("created")))
		return nil
	}))
	require.NoError(t, s.View(func(tx Tx) error {
		u, ok := decodeUndo(tx.Get(bucket, undoKey("fields", "f1", 0)))
		require.True(t, ok)
		require.Equal(t, "original", string(u.before))
		require.True(t, u.matchesAfter([]byte("restored again")))
		u, ok = decodeUndo(tx.Get(bucket, undoKey("fields", "new", 0)))
		require.True(t, ok)
		require.Zero(t, u.flags&undoBefore, "the record did not exist before")
		require.True(t, u.matchesAfter([]byte("created")))
		return nil
	}))
}

func TestUndoRetentionAndExpiry(t *testing.T) {
	t.Parallel()
	hour := Duration(time.Hour)
	for _, tt := range []struct {
		engine time.Duration
		batch  *Duration
		want   Duration
	}{
		{0, nil, Duration(DefaultUndoRetention)},
		{-1, nil, 0},
		{2 * time.Hour, nil, Duration(2 * time.Hour)},
		{2 * time.Hour, &hour, hour},
		{-1, &hour, hour},
	} {
		e := &Engine{opts: Options{UndoRetention: tt.engine}}
		require.Equal(t, tt.want, e.undoRetention(BatchOptions{UndoRetention: tt.batch}), "%v %v", tt.engine, tt.batch)
	}

	finished := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := &jobRecord{}
	rec.Status, rec.FinishedAt, rec.UndoRetention = StateCompleted, &finished, hour
	require.False(t, undoExpired(rec, finished.Add(time.Hour-time.Nanosecond)))
	require.True(t, undoExpired(rec, finished.Add(time.Hour)))
	rec.UndoRetention = 0
	require.False(t, undoExpired(rec, finished.Add(1000*time.Hour)), "nothing kept, nothing to expire")
	rec.UndoRetention, rec.Status = hour, StateRunning
	require.False(t, undoExpired(rec, finished.Add(1000*time.Hour)), "a live job keeps its images")
}
