package batch

import "testing"

func TestLoadLocation_Cached(t *testing.T) {
	a, err := loadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("second load of Asia/Tokyo returned a different *time.Location (%p, %p)", a, b)
	}
	for range 2 {
		if loc, err := loadLocation("Mars/Olympus"); err == nil {
			t.Errorf("unknown zone Mars/Olympus loaded as %v", loc)
		}
	}
}
