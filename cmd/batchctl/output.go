package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// print writes a result: the API's raw data as indented JSON, or the table
// that table draws.
func (a *app) print(raw json.RawMessage, table func(t *tableWriter)) error {
	if a.output == outputJSON {
		return writeJSON(a.stdout, raw)
	}
	t := newTable(a.stdout)
	table(t)
	return t.flush()
}

// writeJSON writes raw indented, with a final newline.
func writeJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// marshalJSON is json.Marshal for values that always marshal.
func marshalJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(fmt.Sprintf("%q", err.Error()))
	}
	return b
}

// tableWriter draws aligned columns and key-value blocks.
type tableWriter struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer) *tableWriter {
	return &tableWriter{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// row writes one row of cells.
func (t *tableWriter) row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = oneLine(cellText(c))
	}
	fmt.Fprintln(t.tw, strings.Join(s, "\t"))
}

// rows writes a header, then one row per item that decodes as T.
func rows[T any](t *tableWriter, items []json.RawMessage, header []any, row func(*T) []any) {
	t.row(header...)
	for _, it := range items {
		var v T
		if json.Unmarshal(it, &v) == nil {
			t.row(row(&v)...)
		}
	}
}

// kv writes "key:  value" when the value is not empty.
func (t *tableWriter) kv(key string, value any) {
	s := cellText(value)
	if s == "" || s == "-" {
		return
	}
	fmt.Fprintf(t.tw, "%s:\t%s\n", key, oneLine(s))
}

// blank ends a block; the next rows align on their own.
func (t *tableWriter) blank() {
	t.tw.Flush()
	fmt.Fprintln(t.tw)
}

func (t *tableWriter) flush() error { return t.tw.Flush() }

// cellText renders a value for a table cell.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case time.Time:
		if x.IsZero() {
			return "-"
		}
		return x.UTC().Format(time.RFC3339)
	case *time.Time:
		if x == nil || x.IsZero() {
			return "-"
		}
		return x.UTC().Format(time.RFC3339)
	case fmt.Stringer:
		return x.String()
	case json.RawMessage:
		return string(x)
	}
	return fmt.Sprint(v)
}

// oneLine keeps a cell on one line and bounds its width.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}
