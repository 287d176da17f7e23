// Package demo makes the demo "fields" collection the examples and the
// command-line tests run the API document's requests on.
package demo

import (
	"fmt"
	"strconv"

	"github.com/batchworks/batch"
)

// crops take turns among the fields.
var crops = []string{"rice", "corn", "wheat", "soy"}

// Fields returns n demo fields: ids field0001, field0002, ... (with more
// digits when n needs them), names "Field 1", "Field 2", ...; two in three
// are active, three in eight have irrigation enabled (so the document's
// filter, active and irrigated, selects a quarter of them), the crops rice,
// corn, wheat and soy take turns, and the areas run from 5 to 44.
func Fields(n int) []batch.Record {
	width := max(4, len(strconv.Itoa(n)))
	recs := make([]batch.Record, n)
	for i := range recs {
		status := "active"
		if i%3 == 2 {
			status = "inactive"
		}
		recs[i] = batch.Record{
			"id":                 fmt.Sprintf("field%0*d", width, i+1),
			"name":               fmt.Sprintf("Field %d", i+1),
			"status":             status,
			"irrigation_enabled": i%8 < 3,
			"crop_type":          crops[i%len(crops)],
			"area":               float64(5 + i%40),
		}
	}
	return recs
}
