package vast

import "testing"

// TestStoragePriceFromInstanceCosts: the "instance" sub-object's diskHour
// is the storage price (billed while stopped); without it the storage
// price stays unknown, never 0.
func TestStoragePriceFromInstanceCosts(t *testing.T) {
	in, err := parseInstance([]byte(`{"id": 7, "actual_status": "stopped", "intended_status": "stopped", "cur_state": "stopped",
		"dph_total": 0.31, "instance": {"totalHour": 0.31, "diskHour": 0.0125, "discountedTotalPerHour": 0.31}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !in.StoragePrice.Known() || in.StoragePrice.PerHour != 0.0125 || in.StoragePrice.Source != "vast:instance.diskHour" {
		t.Errorf("storage price = %+v", in.StoragePrice)
	}
	bare, err := parseInstance([]byte(`{"id": 8, "actual_status": "stopped", "dph_total": 0.31}`))
	if err != nil {
		t.Fatal(err)
	}
	if bare.StoragePrice.Known() {
		t.Errorf("storage price without instance.diskHour = %+v, want unknown", bare.StoragePrice)
	}
}
