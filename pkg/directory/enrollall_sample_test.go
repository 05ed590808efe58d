package directory_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// EnrollmentAll samples one sub-shard (shard 0, sub-shard 0) before it
// reads a whole zone: LargeSample entries there decline the zone at once
// (a zone that dense is far over any limit, and the zone-wide read costs
// the server every match); fewer read the zone as before.
func TestEnrollmentAllSamplesOneSubShard(t *testing.T) {
	srv := brokertest.Start(t)
	d := brokertest.Directory(t, srv.JS)
	ctx := ctxT(t)
	// Users whose entries fall in the sampled sub-shard, and one elsewhere.
	var dense []string
	for i := 0; len(dense) < directory.LargeSample; i++ {
		u := fmt.Sprintf("s%d", i)
		if shard, sub := directory.SubShardOf(u); shard == 0 && sub == 0 {
			dense = append(dense, u)
		}
	}
	enroll := func(u, zone string) {
		if _, _, err := d.UpdateUser(ctx, "acme", u, func(us *directory.User) error {
			us.Metadata = map[string]any{"timezone": zone}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		putCred(t, d, "acme", u, "c1", nil)
	}
	for _, u := range dense {
		enroll(u, "Pacific/Fiji")
	}
	for _, u := range dense[:directory.LargeSample-1] {
		enroll(u+"-b", "Pacific/Fiji") // elsewhere: another id, another hash
	}
	if _, ok, err := d.EnrollmentAll(ctx, "acme", "crm", "Pacific/Fiji", 100); err != nil || ok {
		t.Fatalf("a zone with %d entries in the sampled sub-shard: ok %v, %v; want declined", len(dense), ok, err)
	}
	// One fewer in the sample: read at once, the same entries as the walk.
	for _, u := range dense[:directory.LargeSample-1] {
		enroll(u, "Pacific/Tahiti")
	}
	page, ok, err := d.EnrollmentAll(ctx, "acme", "crm", "Pacific/Tahiti", 100)
	if err != nil || !ok {
		t.Fatalf("a zone with %d entries in the sampled sub-shard: ok %v, %v; want read", directory.LargeSample-1, ok, err)
	}
	if got, want := entryIDs(page.Entries), entryIDs(enrolled(t, d, "crm", "Pacific/Tahiti")); !reflect.DeepEqual(got, want) || len(got) != directory.LargeSample-1 {
		t.Fatalf("EnrollmentAll %v, the shard walk %v", got, want)
	}
	// The zone declined before still walks to each of its entries: one
	// sampled user left and the three elsewhere.
	if got := enrolled(t, d, "crm", "Pacific/Fiji"); len(got) != directory.LargeSample {
		t.Fatalf("walk of Pacific/Fiji: %d entries, want %d", len(got), directory.LargeSample)
	}
}
