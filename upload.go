package batch

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// Uploads hold large import sources. [Engine.Upload] stores a file in
// chunks of 256 KiB, each in its own short transaction (as artifacts are),
// and an import names it as its source ({"format": "ndjson", "upload":
// "upload12"}): the import then reads it as a stream, a record at a time,
// and never holds its records, so a file far bigger than memory imports in
// bounded memory and the batch stored with the job stays small.
//
//	uploads   "m" NUL upload id -> Upload JSON; "c" NUL upload id NUL chunk (4 bytes) -> bytes
const bucketUploads = "uploads"

// uploadIDPrefix starts every upload id: "upload12".
const uploadIDPrefix = "upload"

// Upload describes a stored upload.
type Upload struct {
	ID        string    `json:"upload_id"`
	Size      int64     `json:"size"`
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Upload stores what r yields as a new upload owned by the principal of
// ctx, and returns it. Name the upload as an import's source.upload. The
// data is written in chunks, so the writer is never held for long; an
// upload cut short by an error or by ctx is not stored.
func (e *Engine) Upload(ctx context.Context, r io.Reader) (*Upload, error) {
	if e.isClosed() {
		return nil, ErrClosed
	}
	var seq uint64
	if err := e.store.Update(func(tx Tx) error {
		var err error
		seq, err = tx.NextSequence(bucketUploads)
		return err
	}); err != nil {
		return nil, fmt.Errorf("batch: upload: %w", err)
	}
	id := uploadIDPrefix + strconv.FormatUint(seq, 10)
	w := &chunkWriter{ctx: ctx, store: e.store, bucket: bucketUploads, prefix: artifactChunkPrefix(id), buf: make([]byte, 0, artifactChunk)}
	_, err := io.Copy(w, r)
	if err == nil {
		err = w.flush()
	}
	up := &Upload{ID: id, Size: w.size, Owner: PrincipalFrom(ctx), CreatedAt: e.now().UTC()}
	if err == nil {
		var meta []byte
		if meta, err = json.Marshal(up); err == nil {
			err = e.store.Update(func(tx Tx) error { return tx.Put(bucketUploads, artifactMetaKey(id), meta) })
		}
	}
	if err != nil {
		_ = e.dropUpload(id)
		return nil, fmt.Errorf("batch: upload: %w", err)
	}
	return up, nil
}

// DeleteUpload removes upload id. An unknown id returns an error matching
// [ErrNotFound]. A job importing it that has not finished fails its
// remaining items.
func (e *Engine) DeleteUpload(ctx context.Context, id string) error {
	if _, err := e.upload(id); err != nil {
		return err
	}
	return e.dropUpload(id)
}

// dropUpload deletes the meta entry and the chunks of upload id, a few
// hundred chunks per transaction.
func (e *Engine) dropUpload(id string) error {
	if err := e.store.Update(func(tx Tx) error { return tx.Delete(bucketUploads, artifactMetaKey(id)) }); err != nil {
		return err
	}
	prefix := artifactChunkPrefix(id)
	for {
		n := 0
		err := e.store.Update(func(tx Tx) error {
			var keys [][]byte
			if err := tx.Scan(bucketUploads, prefix, func(k, _ []byte) bool {
				if len(k) != len(prefix)+4 || string(k[:len(prefix)]) != string(prefix) || len(keys) == 256 {
					return false
				}
				keys = append(keys, append([]byte(nil), k...))
				return true
			}); err != nil {
				return err
			}
			n = len(keys)
			return deleteKeys(tx, bucketUploads, keys)
		})
		if err != nil || n == 0 {
			return err
		}
	}
}

// upload reads the description of upload id.
func (e *Engine) upload(id string) (*Upload, error) {
	var up Upload
	err := e.store.View(func(tx Tx) error {
		v := tx.Get(bucketUploads, artifactMetaKey(id))
		if v == nil {
			return notFound("upload", id)
		}
		return json.Unmarshal(v, &up)
	})
	if err != nil {
		return nil, err
	}
	return &up, nil
}

// openUpload returns a reader of upload id's content.
func (e *Engine) openUpload(ctx context.Context, id string) (io.Reader, error) {
	up, err := e.upload(id)
	if err != nil {
		return nil, err
	}
	return &chunkReader{ctx: ctx, store: e.store, bucket: bucketUploads, prefix: artifactChunkPrefix(id), left: up.Size}, nil
}

// recordStream yields an import source's records one at a time; next
// returns io.EOF after the last. A malformed record is a *streamError.
type recordStream interface {
	next() (Record, error)
}

// streamError says where a source went wrong.
type streamError struct {
	at  string // "line 3", "record 4", "row 5"
	msg string
}

func (e *streamError) Error() string { return e.at + ": " + e.msg }

// newRecordStream reads records of format from r.
func newRecordStream(format string, r io.Reader) (recordStream, error) {
	switch format {
	case "ndjson":
		return &ndjsonStream{r: bufio.NewReaderSize(r, 64<<10)}, nil
	case "csv":
		cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
		cr.ReuseRecord = true
		return &csvStream{r: cr}, nil
	case "json":
		return &jsonStream{dec: json.NewDecoder(bufio.NewReaderSize(r, 64<<10))}, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

type ndjsonStream struct {
	r    *bufio.Reader
	line int
}

func (s *ndjsonStream) next() (Record, error) {
	for {
		b, err := s.r.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			return nil, err // io.EOF at the end
		}
		s.line++
		if len(trimSpace(b)) == 0 {
			continue
		}
		var m map[string]any
		if jerr := json.Unmarshal(b, &m); jerr != nil || m == nil {
			return nil, &streamError{"line " + strconv.Itoa(s.line), "not a JSON object"}
		}
		return m, nil
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

type csvStream struct {
	r      *csv.Reader
	header []string
	row    int
}

func (s *csvStream) next() (Record, error) {
	if s.header == nil {
		h, err := s.r.Read()
		if err != nil {
			return nil, s.wrap(err)
		}
		s.header = append([]string(nil), h...)
	}
	row, err := s.r.Read()
	if err != nil {
		return nil, s.wrap(err)
	}
	s.row++
	rec := make(Record, len(s.header))
	for j, col := range s.header {
		if row[j] != "" || col != "id" {
			rec[col] = row[j]
		}
	}
	return rec, nil
}

func (s *csvStream) wrap(err error) error {
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return &streamError{"row " + strconv.Itoa(s.row+1), "invalid CSV: " + err.Error()}
}

type jsonStream struct {
	dec     *json.Decoder
	started bool
	n       int
}

func (s *jsonStream) next() (Record, error) {
	if !s.started {
		t, err := s.dec.Token()
		if d, ok := t.(json.Delim); err != nil || !ok || d != '[' {
			return nil, &streamError{"data", "not a JSON array"}
		}
		s.started = true
	}
	if !s.dec.More() {
		if _, err := s.dec.Token(); err != nil {
			return nil, &streamError{"data", "not a JSON array: " + err.Error()}
		}
		return nil, io.EOF
	}
	var m map[string]any
	if err := s.dec.Decode(&m); err != nil || m == nil {
		return nil, &streamError{"record " + strconv.Itoa(s.n), "each record must be a JSON object"}
	}
	s.n++
	return m, nil
}

// countStream reads a source to its end, checking each record as an
// inline source's are checked (but for ids given twice, which a stream
// cannot afford to remember: the later record wins), and returns how many
// it holds.
func countStream(s recordStream) (int64, error) {
	var n int64
	for {
		rec, err := s.next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if v, ok := rec["id"]; ok {
			if id, isString := v.(string); !isString || id == "" {
				return n, &streamError{"record " + strconv.FormatInt(n, 10), "id must be a non-empty string"}
			}
		}
		n++
	}
}

// streamRing is how many of the records last read a streamCursor keeps:
// workers take items in increasing order but finish building them a little
// out of it.
const streamRing = 4096

// streamCursor hands out a stream's records by index. It reads the stream
// forward, keeping the last streamRing records, and starts it again from
// the top only for an index it has left behind (a resumed job starts
// there once).
type streamCursor struct {
	open func() (recordStream, error)

	mu   sync.Mutex
	s    recordStream
	pos  int64 // the index of the record s yields next
	ring []Record
}

func (c *streamCursor) at(i int64) (Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		c.ring = make([]Record, streamRing)
	}
	if i < c.pos && i >= c.pos-streamRing {
		return c.ring[i%streamRing], nil
	}
	if c.s == nil || i < c.pos {
		s, err := c.open()
		if err != nil {
			return nil, err
		}
		c.s, c.pos = s, 0
		clear(c.ring)
	}
	for c.pos <= i {
		rec, err := c.s.next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("source ends before record %d", i)
		}
		if err != nil {
			return nil, err
		}
		c.ring[c.pos%streamRing] = rec
		c.pos++
	}
	return c.ring[i%streamRing], nil
}

// countUpload checks the records of an import's upload source and counts
// them, reading it as a stream. Problems are INVALID_BATCH details.
func (e *Engine) countUpload(ctx context.Context, src *Source) (int64, error) {
	switch src.Format {
	case "ndjson", "csv", "json":
	case "":
		return 0, invalidBatch([]Detail{{Field: "format", Code: DetailRequired, Message: "source needs a format: json, ndjson or csv"}})
	default:
		return 0, invalidBatch([]Detail{{Field: "format", Code: DetailInvalidValue, Message: fmt.Sprintf("unknown format %q: use json, ndjson or csv", src.Format)}})
	}
	up, err := e.upload(src.Upload)
	// A submission names only its principal's uploads; a job that runs
	// (no principal) reads the upload it was accepted with.
	if errors.Is(err, ErrNotFound) || (err == nil && PrincipalFrom(ctx) != "" && up.Owner != PrincipalFrom(ctx)) {
		return 0, invalidBatch([]Detail{{Field: "upload", Code: DetailInvalidValue, Message: fmt.Sprintf("no upload %q", src.Upload)}})
	}
	if err != nil {
		return 0, err
	}
	r, err := e.openUpload(ctx, src.Upload)
	if err != nil {
		return 0, err
	}
	s, err := newRecordStream(src.Format, r)
	if err != nil {
		return 0, err
	}
	n, err := countStream(s)
	var se *streamError
	switch {
	case errors.As(err, &se):
		return 0, invalidBatch([]Detail{{Field: "upload", Code: DetailInvalidValue, Message: se.Error()}})
	case err != nil:
		return 0, fmt.Errorf("batch: reading upload %s: %w", src.Upload, err)
	case n == 0:
		return 0, invalidBatch([]Detail{{Field: "upload", Code: DetailRequired, Message: "the upload holds no records"}})
	}
	return n, nil
}

// UploadInfo returns the description of upload id. An unknown id returns an
// error matching [ErrNotFound].
func (e *Engine) UploadInfo(ctx context.Context, id string) (*Upload, error) {
	return e.upload(id)
}

// cleanupUploads deletes the uploads created before cutoff that no
// unfinished job imports, and returns how many went.
func (e *Engine) cleanupUploads(ctx context.Context, cutoff time.Time) (int64, error) {
	var old []string
	inUse := map[string]bool{}
	err := e.store.View(func(tx Tx) error {
		var derr error
		if err := scanPrefix(tx, bucketUploads, []byte("m\x00"), func(_, v []byte) bool {
			var up Upload
			if derr = json.Unmarshal(v, &up); derr != nil {
				return false
			}
			if up.CreatedAt.Before(cutoff) {
				old = append(old, up.ID)
			}
			return true
		}); err != nil || derr != nil || len(old) == 0 {
			return firstErr(err, derr)
		}
		return forJobsIn(tx, []State{StateQueued, StateRunning, StatePaused}, func(_ State, seq uint64) error {
			b, err := getBatch(tx, seq)
			if err != nil {
				return err
			}
			for _, op := range b.Operations {
				if op.Source != nil && op.Source.Upload != "" {
					inUse[op.Source.Upload] = true
				}
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	return countEach(ctx, old, func(id string) (bool, error) {
		if inUse[id] {
			return false, nil
		}
		return true, e.dropUpload(id)
	})
}

// streamPlan is the Count/Item part of a plan over the n records of the
// streams open returns.
func streamPlan(n int64, env *Env, open func() (recordStream, error)) *Plan {
	cur := &streamCursor{open: open}
	return &Plan{Count: n, Item: func(i int64) (Item, error) {
		rec, err := cur.at(i)
		if err != nil {
			return Item{}, err
		}
		return listItem(rec, env, i), nil
	}}
}

// streamable says whether an import source is text read as a stream.
func streamable(src *Source) bool {
	_, isText := src.Data.(string)
	return isText && (src.Format == "ndjson" || src.Format == "csv" || src.Format == "json")
}

// countInline checks and counts the records of inline text, refusing an id
// given twice. Problems are INVALID_BATCH details under "data".
func countInline(open func() (recordStream, error)) (int64, error) {
	s, err := open()
	if err != nil {
		return 0, err
	}
	seen := map[string]int64{}
	var n int64
	for ; ; n++ {
		rec, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var se *streamError
		if errors.As(err, &se) {
			return 0, invalidBatch([]Detail{{Field: "data", Code: DetailInvalidValue, Message: se.Error()}})
		}
		if err != nil {
			return 0, err
		}
		v, ok := rec["id"]
		if !ok {
			continue
		}
		id, isString := v.(string)
		if !isString || id == "" {
			return 0, invalidBatch([]Detail{{Field: fmt.Sprintf("data[%d].id", n), Code: DetailInvalidValue, Message: "id must be a non-empty string"}})
		}
		if j, dup := seen[id]; dup {
			return 0, invalidBatch([]Detail{{Field: fmt.Sprintf("data[%d].id", n), Code: DetailInvalidValue, Message: fmt.Sprintf("id %q is also given at data[%d]", id, j)}})
		}
		seen[id] = n
	}
	if n == 0 {
		return 0, invalidBatch([]Detail{{Field: "data", Code: DetailRequired, Message: "source data holds no records"}})
	}
	return n, nil
}
