package directory_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// TestUsersPages lists a project's users in pages: every user once, none
// of another project's, deleted users left out, and a bad cursor refused.
func TestUsersPages(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	ctx := ctxT(t)
	var want []string
	for i := range 25 {
		u := fmt.Sprintf("u%02d", i)
		if _, _, err := d.UpdateUser(ctx, "acme", u, func(*directory.User) error { return nil }); err != nil {
			t.Fatal(err)
		}
		want = append(want, u)
	}
	if _, _, err := d.UpdateUser(ctx, "other", "x1", func(*directory.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteUser(ctx, "acme", "u03"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(u string) bool { return u == "u03" })

	var got []string
	cursor, pages := "", 0
	for {
		page, err := d.Users(ctx, "acme", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range page.Users {
			if u.Project != "acme" {
				t.Fatalf("user %s of project %s listed for acme", u.ID, u.Project)
			}
			got = append(got, u.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("%d pages listing %v, want 3 pages listing %v", pages, got, want)
	}
	if _, err := d.Users(ctx, "acme", "not-a-cursor", 10); err == nil {
		t.Fatal("a bad cursor was accepted")
	}
}
