package directory_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// EnrollmentAll reads a small zone's whole enrollment in one read — the
// same entries as a walk of every shard — and declines a zone larger than
// its limit, which then pages by shard.
func TestEnrollmentAll(t *testing.T) {
	srv := brokertest.Start(t)
	d := brokertest.Directory(t, srv.JS)
	ctx := ctxT(t)
	for i := range 30 {
		u := fmt.Sprintf("u%d", i)
		zone := "Europe/Berlin"
		if i%3 == 0 {
			zone = "Asia/Tokyo"
		}
		if _, _, err := d.UpdateUser(ctx, "acme", u, func(us *directory.User) error {
			us.Metadata = map[string]any{"timezone": zone}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		putCred(t, d, "acme", u, "c1", nil)
	}
	for _, tc := range []struct {
		name, zone string
		limit      int
		ok         bool
	}{
		{"fits", "Europe/Berlin", 100, true},
		{"exactly the limit", "Asia/Tokyo", 10, true},
		{"over the limit", "Europe/Berlin", 19, false},
		{"empty zone", "America/Lima", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, ok, err := d.EnrollmentAll(ctx, "acme", "crm", tc.zone, tc.limit)
			if err != nil || ok != tc.ok {
				t.Fatalf("EnrollmentAll = ok %v, %v; want ok %v", ok, err, tc.ok)
			}
			if !ok {
				return
			}
			if got, want := entryIDs(page.Entries), entryIDs(enrolled(t, d, "crm", tc.zone)); !reflect.DeepEqual(got, want) {
				t.Fatalf("EnrollmentAll %v, the shard walk %v", got, want)
			}
			if page.Next != "" {
				t.Errorf("next %q", page.Next)
			}
		})
	}
}
