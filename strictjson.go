package batch

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxRecordIDLength is the longest record id accepted, in bytes. Longer ids
// are refused with INVALID_BATCH (or VALIDATION_ERROR for a record written
// by a job).
const MaxRecordIDLength = 1024

// maxJSONDepth bounds the nesting of objects and arrays in a request.
const maxJSONDepth = 64

// CheckJSON applies the API's strict JSON rules to a request body that
// encoding/json would accept: no object may give a key twice, every number
// must fit a 64-bit float, and objects and arrays nest at most 64 deep. A
// problem is an INVALID_BATCH *Error whose detail names its JSON path
// ("batch.operations[0].records[2].id"); malformed JSON is left for the
// decoder to report, and returns nil here. [DecodeBatch], [DecodeTemplate],
// [DecodeSchedule] and [DecodeWebhook] apply it; the HTTP API applies it to
// every body.
func CheckJSON(data []byte) error {
	s := jsonScanner{data: data}
	s.skipSpace()
	s.value(0)
	if s.problem == "" {
		return nil
	}
	return invalidBatch([]Detail{{Field: s.path(), Code: DetailInvalidValue, Message: s.problem}})
}

// jsonScanner walks JSON text without building it, keeping the path of
// where it is. It stops at the first problem, or gives up (value returns
// false) on malformed input.
type jsonScanner struct {
	data    []byte
	i       int
	segs    []string // path segments: ".key" or "[n]"
	problem string
}

func (s *jsonScanner) path() string {
	return strings.TrimPrefix(strings.Join(s.segs, ""), ".")
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value; false means stop (a problem was found, or the
// text is malformed).
func (s *jsonScanner) value(depth int) bool {
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't' || c == 'f' || c == 'n':
		for s.i < len(s.data) && s.data[s.i] >= 'a' && s.data[s.i] <= 'z' {
			s.i++
		}
		return true
	}
	return false
}

func (s *jsonScanner) tooDeep(depth int) bool {
	if depth > maxJSONDepth {
		s.problem = fmt.Sprintf("objects and arrays nest deeper than %d levels", maxJSONDepth)
		return true
	}
	return false
}

func (s *jsonScanner) object(depth int) bool {
	if s.tooDeep(depth) {
		return false
	}
	s.i++ // {
	var keys []string
	var set map[string]bool
	s.segs = append(s.segs, "")
	defer func() {
		if s.problem == "" {
			s.segs = s.segs[:len(s.segs)-1]
		}
	}()
	for first := true; ; first = false {
		s.skipSpace()
		if s.i < len(s.data) && s.data[s.i] == '}' && first {
			s.i++
			return true
		}
		key, ok := s.str()
		if !ok {
			return false
		}
		s.segs[len(s.segs)-1] = "." + key
		dup := false
		if set != nil {
			dup = set[key]
			set[key] = true
		} else {
			for _, k := range keys {
				dup = dup || k == key
			}
			keys = append(keys, key)
			if len(keys) > 16 {
				set = make(map[string]bool, 2*len(keys))
				for _, k := range keys {
					set[k] = true
				}
			}
		}
		if dup {
			s.problem = fmt.Sprintf("duplicate key %q: each key may appear once in an object", key)
			return false
		}
		s.skipSpace()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		s.skipSpace()
		if end, ok := s.element(depth, '}'); end || !ok {
			return ok
		}
	}
}

func (s *jsonScanner) array(depth int) bool {
	if s.tooDeep(depth) {
		return false
	}
	s.i++ // [
	s.segs = append(s.segs, "")
	defer func() {
		if s.problem == "" {
			s.segs = s.segs[:len(s.segs)-1]
		}
	}()
	for n := 0; ; n++ {
		s.skipSpace()
		if s.i < len(s.data) && s.data[s.i] == ']' && n == 0 {
			s.i++
			return true
		}
		s.segs[len(s.segs)-1] = "[" + strconv.Itoa(n) + "]"
		if end, ok := s.element(depth, ']'); end || !ok {
			return ok
		}
	}
}

// element scans an object member's value or an array element, and the
// comma after it or the closing byte that ends its container (end). ok
// false means stop, as for value.
func (s *jsonScanner) element(depth int, closing byte) (end, ok bool) {
	if !s.value(depth) {
		return false, false
	}
	s.skipSpace()
	if s.i >= len(s.data) {
		return false, false
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		return false, true
	case closing:
		s.i++
		return true, true
	}
	return false, false
}

// str scans a string and returns its value.
func (s *jsonScanner) str() (string, bool) {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return "", false
	}
	start := s.i
	escaped := false
	for s.i++; s.i < len(s.data); s.i++ {
		switch s.data[s.i] {
		case '\\':
			escaped = true
			s.i++
		case '"':
			s.i++
			raw := s.data[start:s.i]
			if !escaped {
				return string(raw[1 : len(raw)-1]), true
			}
			var v string
			if json.Unmarshal(raw, &v) != nil {
				return "", false
			}
			return v, true
		}
	}
	return "", false
}

// number scans a number and checks that it fits a float64.
func (s *jsonScanner) number() bool {
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	tok := string(s.data[start:s.i])
	if _, err := strconv.ParseFloat(tok, 64); err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			s.problem = fmt.Sprintf("number %s is out of range: numbers must fit a 64-bit float (about ±1.8e308)", abbreviate(tok))
		}
		return false
	}
	return true
}

// abbreviate shortens a long token for a message.
func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-10:]
	}
	return s
}
