package batch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file holds the maintenance operations: backup, restore, cleanup and
// optimize. Each is one item per operation.
//
//   - backup takes a consistent snapshot of the whole store while other jobs
//     write (bbolt's online copy) and keeps it as the job's artifact
//     "backup-<operation index>.db", with its size and SHA-256 in the result.
//     It needs a store that is a [Snapshotter] (the bbolt store is one).
//   - restore, with source {"job_id": <a backup job>}, puts the built-in
//     collections back to the state of that backup in one transaction: every
//     collection is replaced by the backup's copy (a collection the backup
//     does not have becomes empty). Jobs, their history, templates and
//     schedules are not touched. A backup that is missing, or whose bytes no
//     longer match the checksum its job recorded, fails the item and
//     changes nothing.
//   - cleanup, with older_than (a duration such as "720h"), deletes what
//     [Engine.Cleanup] deletes.
//   - optimize compacts the store file ([Compactor]); jobs keep running and
//     their transactions wait while the file is swapped.

// collectionsRoot is the bucket under which every built-in collection
// lives ("coll/<name>").
const collectionsRoot = "coll"

// checkNoFields reports every payload field of an operation that takes none.
func checkNoFields(spec *OperationSpec, d *details) {
	var probe details
	checkFields(spec, &probe)
	for _, x := range probe.list {
		d.add(x.Field, x.Code, "%s takes no %q field", spec.Type, x.Field)
	}
}

// singleItem is the Count/Item part of a plan with one item about target.
func singleItem(p *Plan, target string) *Plan {
	p.Count = 1
	p.Item = func(int64) (Item, error) { return Item{ResourceID: target}, nil }
	return p
}

// ctxWriter fails writes once ctx has ended, so that long copies stop.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// backupSummary is the summary of a backup result.
type backupSummary struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// storeAbility is the prologue of an operation that takes no fields and
// needs the engine's store to be a T: it returns the store as one, or
// reports a store that cannot (able says what T does: "can compact").
func storeAbility[T any](spec *OperationSpec, env *Env, able string) (T, error) {
	var d details
	checkNoFields(spec, &d)
	s, ok := env.e.store.(T)
	if !ok {
		d.add("type", DetailInvalidOperation, "%s needs a store that %s (the bbolt store); this engine's store cannot", spec.Type, able)
	}
	return s, invalidBatch(d.list)
}

func planBackup(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	snap, err := storeAbility[Snapshotter](spec, env, "can take snapshots")
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("backup-%d.db", env.Operation)
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		// The snapshot goes to a temporary file first: writing the artifact
		// into the store while the snapshot's read transaction is open could
		// wait forever on bbolt's remap.
		f, err := env.e.createTemp("backup-*.db")
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		h := sha256.New()
		bw := bufio.NewWriterSize(f, 1<<20)
		n, err := snap.Snapshot(ctxWriter{ctx, io.MultiWriter(bw, h)})
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("backup: taking the snapshot: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		art, err := env.e.storeArtifact(ctx, env.JobID, name, "application/octet-stream", f)
		if err != nil {
			return fmt.Errorf("backup: storing the snapshot: %w", err)
		}
		it.Result = &Result{Summary: jsonMap(backupSummary{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}), Artifact: art}
		return nil
	}}, "store"), nil
}

// artifactTxChunks is how many artifact chunks storeArtifact writes per
// transaction: 8 MiB, so that a 1 GiB backup takes about 130 commits
// rather than 4,096 (each its own fsync) while no single write holds the
// store for long.
const artifactTxChunks = 32

// storeArtifact stores everything r holds as an artifact of job jobID, in
// the layout of [Env.WriteArtifact] (so [Engine.OpenArtifact] reads it)
// but with several chunks per transaction. The metadata entry is written
// last, with the final chunks.
func (e *Engine) storeArtifact(ctx context.Context, jobID, name, contentType string, r io.Reader) (*Artifact, error) {
	// Clear an earlier artifact of that name the usual way.
	if _, err := e.writeArtifact(ctx, jobID, name, contentType, func(io.Writer) error { return nil }); err != nil {
		return nil, err
	}
	bucket := artifactsBucket(jobID)
	prefix := artifactChunkPrefix(name)
	art := &Artifact{Name: name, ContentType: contentType}
	br := bufio.NewReaderSize(r, 1<<20)
	var n uint32
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var chunks [][]byte
		for len(chunks) < artifactTxChunks {
			buf := make([]byte, artifactChunk)
			k, err := io.ReadFull(br, buf)
			if k > 0 {
				chunks = append(chunks, buf[:k])
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				done = true
				break
			}
			if err != nil {
				return nil, err
			}
		}
		var meta []byte
		if done {
			for _, c := range chunks {
				art.Size += int64(len(c))
			}
			var err error
			if meta, err = json.Marshal(art); err != nil {
				return nil, err
			}
		}
		err := e.store.Update(func(tx Tx) error {
			for i, c := range chunks {
				if err := tx.Put(bucket, binary.BigEndian.AppendUint32(bytes.Clone(prefix), n+uint32(i)), c); err != nil {
					return err
				}
			}
			if meta != nil {
				return tx.Put(bucket, artifactMetaKey(name), meta)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		n += uint32(len(chunks))
		if !done {
			art.Size += int64(len(chunks)) * artifactChunk
		}
	}
	return art, nil
}

// backupOf returns the backup that job id made: its artifact and summary.
// A missing job is NOT_FOUND; a job that made no backup is a permanent
// RESOURCE_ERROR.
func (e *Engine) backupOf(ctx context.Context, id string) (*Artifact, *backupSummary, error) {
	job, err := e.Job(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range job.Results {
		if r.Type != OpBackup || r.Artifact == nil {
			continue
		}
		b, err := json.Marshal(r.Summary)
		if err != nil {
			return nil, nil, err
		}
		var s backupSummary
		if err := json.Unmarshal(b, &s); err != nil || s.SHA256 == "" {
			return nil, nil, Permanent(NewError(CodeResource, "backup of job %s has no checksum", id))
		}
		return r.Artifact, &s, nil
	}
	return nil, nil, Permanent(NewError(CodeResource, "job %s (%s) holds no backup", id, job.Status))
}

func planRestore(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "source")
	src := spec.Source
	switch {
	case src == nil || src.JobID == "":
		d.add("source.job_id", DetailRequired, "restore needs source: {\"job_id\": <the id of a backup job>}")
	case src.Format != "" || src.Data != nil:
		d.add("source", DetailInvalidValue, "restore reads a backup job (source.job_id), not data")
	default:
		if _, ok := parseJobID(src.JobID); !ok {
			d.add("source.job_id", DetailInvalidValue, "%q is not a job id", src.JobID)
		} else if env.JobID == "" {
			// At submission the backup must exist; by the time the job runs
			// it may have been deleted, which fails the item instead.
			if _, _, err := env.e.backupOf(ctx, src.JobID); err != nil {
				d.add("source.job_id", DetailInvalidValue, "no backup to restore: %s", errMessage(err))
			}
		}
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	from := src.JobID
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		sum, err := env.e.restore(ctx, from, env.JobID, env.Operation)
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: jsonMap(sum)}
		return nil
	}}, from), nil
}

// jsonMap returns v as a decoded JSON object, the form a summary has once
// the job is stored, so that a running and a finished job look the same.
func jsonMap(v any) map[string]any {
	m, _ := normalizeJSON(map[string]any{"v": v})
	out, _ := m["v"].(map[string]any)
	return out
}

// errMessage is an error's message without its code.
func errMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// restoreSummary is the summary of a restore result.
type restoreSummary struct {
	Source      string `json:"source"`
	Collections int    `json:"collections"`
	Records     int64  `json:"records"`
}

// restore replaces the built-in collections with those of backup job id,
// for operation op of job jobID: when that job keeps before-images, the
// same transaction stores one for every record of the engine's collections
// and of the backup's.
func (e *Engine) restore(ctx context.Context, id, jobID string, op int) (*restoreSummary, error) {
	art, want, err := e.backupOf(ctx, id)
	if err != nil {
		return nil, err
	}
	corrupt := func(format string, args ...any) error {
		return Permanent(&Error{Code: CodeResource, Message: fmt.Sprintf("backup of job %s is corrupt: ", id) + fmt.Sprintf(format, args...)})
	}
	_, rc, err := e.OpenArtifact(ctx, id, art.Name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := e.createTemp("restore-*.db")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, errArtifactTruncated):
		return nil, corrupt("%v", err)
	case err != nil:
		return nil, fmt.Errorf("restore: reading the backup: %w", err)
	case n != want.Size:
		return nil, corrupt("it holds %d bytes, the backup wrote %d", n, want.Size)
	case hex.EncodeToString(h.Sum(nil)) != want.SHA256:
		return nil, corrupt("its SHA-256 does not match the one the backup recorded")
	}
	if err := checkFile(f.Name()); err != nil {
		return nil, corrupt("%v", err)
	}
	db, err := bolt.Open(f.Name(), 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, corrupt("%v", err)
	}
	defer db.Close()
	sum := &restoreSummary{Source: id}
	err = db.View(func(src *bolt.Tx) error {
		// The snapshot's values stay valid while this read transaction is
		// open, which spans the whole write below.
		root := src.Bucket([]byte(collectionsRoot))
		var images *restoreImages
		if e.keepsBeforeImages(jobID) {
			images = &restoreImages{bucket: undoBucket(jobID), op: op}
		}
		return e.store.Update(func(tx Tx) error {
			sum.Collections, sum.Records = 0, 0
			if images != nil {
				images.tx = tx
				if err := images.beforeAll(tx, e.collectionNames(), root); err != nil {
					return err
				}
			}
			if err := firstErr(tx.DeleteBucket(collectionsRoot), tx.DeleteBucket(bucketIndexes)); err != nil {
				return err
			}
			if root == nil {
				return nil
			}
			return root.ForEachBucket(func(name []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				bucket := collectionsRoot + "/" + string(name)
				sum.Collections++
				err := root.Bucket(name).ForEach(func(k, v []byte) error {
					if v == nil {
						return nil
					}
					sum.Records++
					if images != nil {
						if err := images.after(string(name), k, v); err != nil {
							return err
						}
					}
					return tx.Put(bucket, k, v)
				})
				if err != nil {
					return err
				}
				// The indexes this store keeps are rebuilt from the
				// restored records in the same transaction.
				return reindex(tx, string(name))
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return sum, nil
}

// cleanupSummary is the summary of a cleanup result, and what
// [Engine.Cleanup] reports.
type cleanupSummary struct {
	OlderThan Duration `json:"older_than"`
	CleanupStats
}

func planCleanup(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "older_than")
	switch {
	case spec.OlderThan == nil:
		d.add("older_than", DetailRequired, "cleanup needs older_than, a duration such as \"720h\"")
	case *spec.OlderThan <= 0:
		d.add("older_than", DetailInvalidValue, "older_than must be longer than 0")
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	age := time.Duration(*spec.OlderThan)
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		owner, admin, err := env.e.jobOwner(env.JobID)
		if err != nil {
			return err
		}
		cutoff := env.e.now().Add(-age)
		var st *CleanupStats
		if admin {
			st, err = env.e.Cleanup(ctx, cutoff)
		} else {
			st, err = env.e.cleanupOwn(ctx, owner, cutoff)
		}
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: jsonMap(cleanupSummary{OlderThan: Duration(age), CleanupStats: *st})}
		return nil
	}}, "store"), nil
}

// optimizeSummary is the summary of an optimize result.
type optimizeSummary struct {
	SizeBefore int64 `json:"size_before"`
	SizeAfter  int64 `json:"size_after"`
	Reclaimed  int64 `json:"reclaimed"`
}

func planOptimize(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	c, err := storeAbility[Compactor](spec, env, "can compact")
	if err != nil {
		return nil, err
	}
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		// Run is called outside any transaction, so the compaction can take
		// the store for itself; the item's outcome is stored afterwards.
		before, after, err := c.Compact(ctx)
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: jsonMap(optimizeSummary{SizeBefore: before, SizeAfter: after, Reclaimed: before - after})}
		return nil
	}}, "store"), nil
}
