package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxInput bounds an input file: the server's default body limit.
const maxInput = 32 << 20

// readInput reads FILE, or stdin for "-", as JSON or YAML and returns it
// as JSON. A file that is not valid JSON is read as YAML, so a YAML error
// is reported for a file that is neither.
func (a *app) readInput(name string) (json.RawMessage, error) {
	var r io.Reader
	if name == "-" {
		r = a.stdin
		name = "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxInput {
		return nil, usageErrorf("%s is larger than %d bytes", name, maxInput)
	}
	out, err := toJSON(data)
	if err != nil {
		return nil, usageErrorf("%s: %v", name, err)
	}
	return out, nil
}

// toJSON returns data as compact JSON: JSON as it is, YAML converted.
func toJSON(data []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("the input is empty")
	}
	if json.Valid(trimmed) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, trimmed); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if trimmed[0] == '{' || trimmed[0] == '[' {
			// Meant as JSON: say what JSON says.
			var v any
			jerr := json.Unmarshal(trimmed, &v)
			return nil, fmt.Errorf("not valid JSON: %v", jerr)
		}
		return nil, fmt.Errorf("not valid JSON or YAML: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("the input holds more than one YAML document")
	}
	v, err := jsonValue(doc, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonValue turns a decoded YAML value into one JSON can hold.
func jsonValue(v any, path string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonValue(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: YAML key %v is not a string", orRoot(path), k)
			}
			c, err := jsonValue(e, path+"."+ks)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		for i, e := range x {
			c, err := jsonValue(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case time.Time:
		// An unquoted YAML date stays the text it was written as.
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.Format(time.DateOnly), nil
		}
		return x.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return path[1:]
}

// unwrapObject returns the object under key in {"key": {...}}, or doc
// itself when it is not wrapped, so files may hold either form.
func unwrapObject(doc json.RawMessage, key string) json.RawMessage {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(doc, &outer); err != nil || len(outer) != 1 {
		return doc
	}
	if inner, ok := outer[key]; ok {
		return inner
	}
	return doc
}
