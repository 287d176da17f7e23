package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"syscall"

	berrors "go.etcd.io/bbolt/errors"
)

// This file turns the faults of the disk under the store into errors that
// say what happened: a full disk, a file that is not a store or was cut
// short, a file another process holds.

// CodeStorageFull: the store could not write because its disk (or its
// configured maximum size) is full. Nothing of the failed write was kept;
// the HTTP API answers 507. A job that failed for it can be resumed once
// there is space again.
const CodeStorageFull Code = "STORAGE_FULL"

// ErrStorageFull is matched (errors.Is) by every error of a write the full
// store refused.
var ErrStorageFull = &Error{Code: CodeStorageFull}

// storageErr classifies an error of a store transaction: a full disk
// becomes a STORAGE_FULL *Error wrapping it; anything else is returned as
// it is.
func storageErr(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) || errors.Is(err, berrors.ErrMaxSizeReached) {
		return &Error{Code: CodeStorageFull, Message: "the store is full: no space left to write", Err: err}
	}
	return err
}

// faultCode is the detail code of a job that failed outside its items:
// STORAGE_FULL for a full store, VALIDATION_ERROR for a where expression
// that went over its budgets while the job selected its records (resuming
// would not help), SYSTEM_ERROR otherwise.
func faultCode(err error) Code {
	switch {
	case errors.Is(err, ErrStorageFull):
		return CodeStorageFull
	case errors.Is(err, ErrExpressionLimit):
		return CodeValidation
	}
	return CodeSystem
}

// failedBySystem reports whether a failed job failed for a system reason
// (a store that could not write, say) rather than because of its items,
// its options or its time limit.
func failedBySystem(rec *jobRecord) bool {
	if rec.Status != StateFailed || rec.Error == nil || rec.Error.Code != CodeExecutionError || len(rec.Error.Details) != 1 {
		return false
	}
	d := rec.Error.Details[0]
	return d.ItemIndex == nil && d.ResourceID == "" && (d.Code == string(CodeSystem) || d.Code == string(CodeStorageFull))
}

// bbolt's file layout, as far as checkFile needs it: two meta pages at the
// start, each a 16-byte page header and then the meta fields.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	boltPageHeader  = 16
	boltMetaSize    = 64 // magic..checksum
	boltMinPageSize = 512
)

// checkFile looks at an existing store file before bbolt maps it, so that a
// file that is not a store, or was cut short, is a clear error instead of a
// crash (bbolt reads the file through a memory map, and reading past its
// end kills the process with SIGBUS). The file is only read.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil // a new file; bbolt initialises it
	}
	head := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("%s is not a batch store: it holds only %d bytes", path, size)
	}
	m, ok := parseMeta(head[boltPageHeader:])
	if !ok {
		return fmt.Errorf("%s is not a batch store (no bbolt header at its start)", path)
	}
	// The second meta page may be the newer one.
	if size >= 2*int64(m.pageSize) {
		second := make([]byte, boltMetaSize)
		if _, err := f.ReadAt(second, int64(m.pageSize)+boltPageHeader); err == nil {
			if m2, ok := parseMeta(second); ok && m2.txid > m.txid {
				m = m2
			}
		}
	}
	if need := int64(m.hwm) * int64(m.pageSize); size < need {
		return fmt.Errorf("%s is truncated: it holds %d bytes, but its data reaches byte %d; restore it from a backup", path, size, need)
	}
	return nil
}

// boltMeta is what checkFile reads from a meta page.
type boltMeta struct {
	pageSize uint32
	hwm      uint64 // the first page id past the data
	txid     uint64
}

// parseMeta reads a meta page body and checks its magic, version and
// checksum.
func parseMeta(b []byte) (boltMeta, bool) {
	le := binary.LittleEndian
	if len(b) < boltMetaSize || le.Uint32(b[0:]) != boltMagic || le.Uint32(b[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: le.Uint32(b[8:]), hwm: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	if m.pageSize < boltMinPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, false
	}
	return m, true
}

// tempDir is where the store's own temporary files (backups being taken,
// restores being read) go: beside a bbolt file, so that the file lock makes
// it this engine's alone and leftovers of a killed process can be removed
// at the next open; the system's temporary directory for other stores.
func (e *Engine) tempDir() string {
	if s, ok := e.store.(*boltStore); ok {
		return s.path + ".tmp"
	}
	return os.TempDir()
}

// createTemp makes a temporary file in the store's temporary directory.
func (e *Engine) createTemp(pattern string) (*os.File, error) {
	dir := e.tempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, pattern)
}

// removeStaleTemp deletes what a killed process left in the bbolt store's
// temporary directory. The store's file lock is held, so nothing else uses
// it.
func (e *Engine) removeStaleTemp() {
	if _, ok := e.store.(*boltStore); !ok {
		return
	}
	dir := e.tempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range entries {
		if err := os.Remove(filepath.Join(dir, de.Name())); err == nil {
			e.log.Info("removed a stale temporary file", "file", de.Name())
		}
	}
}
