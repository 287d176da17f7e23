package demo

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestFields(t *testing.T) {
	recs := Fields(1000)
	require.Len(t, recs, 1000)
	require.Equal(t, batch.Record{"id": "field0001", "name": "Field 1", "status": "active", "irrigation_enabled": true, "crop_type": "rice", "area": 5.0}, recs[0])
	require.Equal(t, "field1000", recs[999]["id"])
	require.Equal(t, "inactive", recs[2]["status"])

	selected, rice := 0, 0
	for _, r := range recs {
		if r["status"] == "active" && r["irrigation_enabled"] == true {
			selected++
		}
		if r["crop_type"] == "rice" {
			rice++
		}
	}
	require.Equal(t, 250, selected, "the document's filter selects a quarter")
	require.Equal(t, 250, rice)

	require.Equal(t, "field00001", Fields(10000)[0]["id"], "as many digits as n needs")
	require.Equal(t, "field0060", Fields(60)[59]["id"], "at least four")
}
