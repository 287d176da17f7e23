package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// This file reads and edits stored records as raw JSON bytes, so that
// selecting a record by a few fields, or patching a few of its fields, does
// not decode the whole record into a map and encode it again.

var errRawJSON = errors.New("malformed JSON")

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts at b[i]
// (a '"'), and whether it holds an escape.
func skipString(b []byte, i int) (int, bool, error) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped, nil
		}
	}
	return 0, false, errRawJSON
}

// skipValue returns the index just past the JSON value at b[i] (no leading
// space).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errRawJSON
	}
	switch b[i] {
	case '"':
		end, _, err := skipString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errRawJSON
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return 0, errRawJSON
				}
				return j, nil
			}
			j++
		}
		if j == i {
			return 0, errRawJSON
		}
		return j, nil
	}
}

// rawField is one top-level member of a raw JSON object: the key with its
// quotes as stored, and the value's bytes.
type rawField struct {
	key   []byte // quoted
	value []byte
}

// eachRawField calls fn for each member of the JSON object b, in stored
// order, until fn returns false.
func eachRawField(b []byte, fn func(f rawField) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errRawJSON
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errRawJSON
		}
		kEnd, _, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i:kEnd]
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return errRawJSON
		}
		i = skipWS(b, i+1)
		vEnd, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if !fn(rawField{key: key, value: b[i:vEnd]}) {
			return nil
		}
		i = skipWS(b, vEnd)
		if i >= len(b) {
			return errRawJSON
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return nil
		default:
			return errRawJSON
		}
	}
}

// rawKeyIs reports whether the quoted key q names name.
func rawKeyIs(q []byte, name string) bool {
	if len(q) == len(name)+2 && string(q[1:len(q)-1]) == name {
		return true
	}
	if bytes.IndexByte(q, '\\') < 0 {
		return false
	}
	var s string
	return json.Unmarshal(q, &s) == nil && s == name
}

// rawFieldValues fills out[i] with the raw value of the top-level field
// names[i] of the object b (nil when absent). A later duplicate wins, as
// when decoding.
func rawFieldValues(b []byte, names []string, out [][]byte) error {
	clear(out)
	return eachRawField(b, func(f rawField) bool {
		for i, name := range names {
			if rawKeyIs(f.key, name) {
				out[i] = f.value
			}
		}
		return true
	})
}

// canonicalRaw returns the canonical encoding of the raw JSON value v (what
// json.Marshal writes for it once decoded), the form index keys hold. It
// returns v itself when it already is canonical, which is the common case
// for strings, booleans and null.
func canonicalRaw(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, errRawJSON
	}
	switch v[0] {
	case 't', 'f', 'n':
		return v, nil
	case '"':
		if plainString(v) {
			return v, nil
		}
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return nil, err
	}
	return canonicalValue(x)
}

// plainString reports whether the quoted string s needs no escaping and so
// encodes exactly as json.Marshal would write it.
func plainString(s []byte) bool {
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 || c < 0x20 {
			return false
		}
	}
	return true
}

// canonicalValue encodes a decoded JSON value canonically (object keys
// sorted, numbers as float64 prints them, -0 as 0).
func canonicalValue(v any) ([]byte, error) {
	if f, ok := v.(float64); ok && f == 0 {
		return []byte("0"), nil
	}
	return json.Marshal(v)
}

// rawMatches reports whether the raw JSON value v equals want (a decoded
// JSON value whose canonical encoding is canon), as [jsonEqual] would.
func rawMatches(v []byte, want any, canon []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"' && plainString(v), c == 't', c == 'f', c == 'n':
		return bytes.Equal(v, canon)
	case c == '-' || (c >= '0' && c <= '9'):
		w, ok := want.(float64)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(v), 64)
		return err == nil && f == w
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return false
	}
	return jsonEqual(x, want)
}

// rawPatch is a merge patch (RFC 7396) prepared for raw records: each
// top-level value encoded once, nested objects kept as patches of their
// own.
type rawPatch struct {
	keys []string // sorted
	ops  map[string]*rawPatchOp
}

type rawPatchOp struct {
	key    []byte    // the quoted key
	remove bool      // the patch sets null
	value  []byte    // the encoded value for a non-object patch value
	sub    *rawPatch // for an object patch value
	whole  []byte    // the object patch value with its nulls dropped, for a missing or non-object target
}

// newRawPatch prepares patch.
func newRawPatch(patch map[string]any) (*rawPatch, error) {
	p := &rawPatch{keys: sortedKeys(patch), ops: make(map[string]*rawPatchOp, len(patch))}
	for _, k := range p.keys {
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		op := &rawPatchOp{key: key}
		switch v := patch[k].(type) {
		case nil:
			op.remove = true
		case map[string]any:
			if op.sub, err = newRawPatch(v); err != nil {
				return nil, err
			}
			if op.whole, err = json.Marshal(mergePatch(nil, v)); err != nil {
				return nil, err
			}
		default:
			if op.value, err = json.Marshal(v); err != nil {
				return nil, err
			}
		}
		p.ops[k] = op
	}
	return p, nil
}

// touches reports whether the patch changes the top-level field name.
func (p *rawPatch) touches(name string) bool {
	_, ok := p.ops[name]
	return ok
}

// apply appends to dst the raw object rec with the patch applied. Members
// the patch does not name are copied as they are; new members follow them
// in key order.
func (p *rawPatch) apply(dst, rec []byte) ([]byte, error) {
	dst = append(dst, '{')
	start := len(dst)
	var seen []string
	var inner error
	err := eachRawField(rec, func(f rawField) bool {
		name, ok := p.keyOf(f.key)
		if !ok {
			dst = appendMember(dst, start, f.key, f.value)
			return true
		}
		seen = append(seen, name)
		op := p.ops[name]
		switch {
		case op.remove:
		case op.sub != nil && len(f.value) > 0 && f.value[0] == '{':
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(append(dst, op.key...), ':')
			dst, inner = op.sub.apply(dst, f.value)
			return inner == nil
		case op.sub != nil:
			dst = appendMember(dst, start, op.key, op.whole)
		default:
			dst = appendMember(dst, start, op.key, op.value)
		}
		return true
	})
	if err = firstErr(err, inner); err != nil {
		return nil, err
	}
	for _, k := range p.keys {
		if slices.Contains(seen, k) {
			continue
		}
		switch op := p.ops[k]; {
		case op.remove:
		case op.sub != nil:
			dst = appendMember(dst, start, op.key, op.whole)
		default:
			dst = appendMember(dst, start, op.key, op.value)
		}
	}
	return append(dst, '}'), nil
}

// keyOf returns the patch key the quoted key q names, if any.
func (p *rawPatch) keyOf(q []byte) (string, bool) {
	if len(q) >= 2 && bytes.IndexByte(q, '\\') < 0 {
		if _, ok := p.ops[string(q[1:len(q)-1])]; ok {
			return string(q[1 : len(q)-1]), true
		}
		return "", false
	}
	var s string
	if json.Unmarshal(q, &s) != nil {
		return "", false
	}
	_, ok := p.ops[s]
	return s, ok
}

func appendMember(dst []byte, start int, key, value []byte) []byte {
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, key...)
	dst = append(dst, ':')
	return append(dst, value...)
}

// decodeRecord decodes a stored record.
func decodeRecord(name string, id, v []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("collection %s: record %q: %w", name, id, err)
	}
	return rec, nil
}
