package batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Artifacts are stored in chunks, each written in its own short
// transaction, so a large export never builds one huge write. The metadata
// entry is written last: an artifact without it does not exist.
const artifactChunk = 256 << 10

// artifactName is what an artifact may be called.
var artifactName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func artifactMetaKey(name string) []byte { return []byte("m\x00" + name) }
func artifactChunkPrefix(name string) []byte {
	return []byte("c\x00" + name + "\x00")
}

// writeArtifact stores what write produces as artifact name of job jobID,
// replacing an earlier one of that name.
func (e *Engine) writeArtifact(ctx context.Context, jobID, name, contentType string, write func(io.Writer) error) (*Artifact, error) {
	if !artifactName.MatchString(name) {
		return nil, fmt.Errorf("batch: invalid artifact name %q", name)
	}
	bucket := artifactsBucket(jobID)
	prefix := artifactChunkPrefix(name)
	if err := e.store.Update(func(tx Tx) error {
		if err := tx.Delete(bucket, artifactMetaKey(name)); err != nil {
			return err
		}
		return deletePrefix(tx, bucket, prefix)
	}); err != nil {
		return nil, err
	}
	w := &chunkWriter{ctx: ctx, store: e.store, bucket: bucket, prefix: prefix, buf: make([]byte, 0, artifactChunk)}
	if err := write(w); err != nil {
		return nil, err
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	art := &Artifact{Name: name, ContentType: contentType, Size: w.size}
	meta, err := json.Marshal(art)
	if err != nil {
		return nil, err
	}
	if err := e.store.Update(func(tx Tx) error { return tx.Put(bucket, artifactMetaKey(name), meta) }); err != nil {
		return nil, err
	}
	return art, nil
}

// chunkWriter buffers writes into fixed-size chunks, one transaction each.
type chunkWriter struct {
	ctx    context.Context
	store  Store
	bucket string
	prefix []byte
	buf    []byte
	n      uint32
	size   int64
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), artifactChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(w.buf) == artifactChunk {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint32(bytes.Clone(w.prefix), w.n)
	data := bytes.Clone(w.buf)
	if err := w.store.Update(func(tx Tx) error { return tx.Put(w.bucket, key, data) }); err != nil {
		return err
	}
	w.n++
	w.size += int64(len(data))
	w.buf = w.buf[:0]
	return nil
}

// Artifacts lists the artifacts of job id. An unknown job returns an error
// matching [ErrNotFound].
func (e *Engine) Artifacts(ctx context.Context, id string) ([]Artifact, error) {
	if _, err := e.Job(ctx, id); err != nil {
		return nil, err
	}
	arts := []Artifact{}
	err := e.store.View(func(tx Tx) error {
		var derr error
		err := scanPrefix(tx, artifactsBucket(id), []byte("m\x00"), func(k, v []byte) bool {
			var a Artifact
			if derr = json.Unmarshal(v, &a); derr != nil {
				return false
			}
			arts = append(arts, a)
			return true
		})
		return firstErr(err, derr)
	})
	return arts, err
}

// OpenArtifact returns the artifact name of job id and a reader of its
// content, which the caller closes. A missing job or artifact returns an
// error matching [ErrNotFound].
func (e *Engine) OpenArtifact(ctx context.Context, id, name string) (*Artifact, io.ReadCloser, error) {
	var art Artifact
	err := e.store.View(func(tx Tx) error {
		v := tx.Get(artifactsBucket(id), artifactMetaKey(name))
		if v == nil {
			return notFound("artifact", id+"/"+name)
		}
		return json.Unmarshal(v, &art)
	})
	if err != nil {
		return nil, nil, err
	}
	return &art, &chunkReader{ctx: ctx, store: e.store, bucket: artifactsBucket(id), prefix: artifactChunkPrefix(name), left: art.Size}, nil
}

// chunkReader reads an artifact chunk by chunk, one short transaction each.
type chunkReader struct {
	ctx    context.Context
	store  Store
	bucket string
	prefix []byte
	n      uint32
	buf    []byte
	left   int64
}

var errArtifactTruncated = errors.New("batch: artifact is missing a chunk")

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.left <= 0 {
			return 0, io.EOF
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		key := binary.BigEndian.AppendUint32(bytes.Clone(r.prefix), r.n)
		if err := r.store.View(func(tx Tx) error {
			r.buf = bytes.Clone(tx.Get(r.bucket, key))
			return nil
		}); err != nil {
			return 0, err
		}
		if len(r.buf) == 0 {
			return 0, errArtifactTruncated
		}
		r.n++
	}
	k := copy(p, r.buf)
	r.buf = r.buf[k:]
	r.left -= int64(k)
	return k, nil
}

func (r *chunkReader) Close() error { return nil }
