package batch

import (
	"bytes"
	"encoding/json"
)

// Walks over a bucket that several parts of the engine share: the keys
// under a prefix, deleting them, reading a bucket a page per transaction,
// and decoding a bucket of JSON values.

// scanPrefix calls fn for each key of bucket that starts with prefix, in
// order, until fn returns false.
func scanPrefix(tx Tx, bucket string, prefix []byte, fn func(k, v []byte) bool) error {
	return tx.Scan(bucket, prefix, func(k, v []byte) bool {
		return bytes.HasPrefix(k, prefix) && fn(k, v)
	})
}

// deletePrefix deletes every key of bucket that starts with prefix.
func deletePrefix(tx Tx, bucket string, prefix []byte) error {
	var keys [][]byte
	if err := scanPrefix(tx, bucket, prefix, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return true
	}); err != nil {
		return err
	}
	return deleteKeys(tx, bucket, keys)
}

// deleteKeys deletes keys from bucket.
func deleteKeys(tx Tx, bucket string, keys [][]byte) error {
	for _, k := range keys {
		if err := tx.Delete(bucket, k); err != nil {
			return err
		}
	}
	return nil
}

// scanPage calls fn for the keys of bucket after *from (from the first key
// when *from is nil), at most limit of them, until fn returns false. It
// leaves *from at the last key it handed to fn, where the next page
// starts, and reports whether keys remain after the page.
func scanPage(tx Tx, bucket string, from *[]byte, limit int, fn func(k, v []byte) bool) (more bool, err error) {
	n := 0
	err = tx.Scan(bucket, *from, func(k, v []byte) bool {
		if *from != nil && bytes.Equal(k, *from) {
			return true
		}
		if n == limit {
			more = true
			return false
		}
		n++
		*from = append((*from)[:0], k...)
		return fn(k, v)
	})
	return more, err
}

// eachJSON calls fn with each key of bucket, its value, and the value
// decoded from JSON as T; values that do not decode are passed over.
func eachJSON[T any](tx Tx, bucket string, fn func(k, v []byte, val T)) error {
	return tx.Scan(bucket, nil, func(k, v []byte) bool {
		var val T
		if json.Unmarshal(v, &val) == nil {
			fn(k, v, val)
		}
		return true
	})
}
