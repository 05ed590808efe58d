package decide_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

// walking is the directory with EnrollmentAll always declining, so the
// decider walks the zone shard by shard as it does for a large zone.
type walking struct{ *directory.Directory }

func (walking) EnrollmentAll(context.Context, string, string, string, int) (directory.Page, bool, error) {
	return directory.Page{}, false, nil
}

// A tick's shards together run the same candidates whether the zone is read
// in one read (small) or walked shard by shard (large), and each user in
// exactly one shard.
func TestScheduleSmallAndLargeZonesAgree(t *testing.T) {
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	dir := brokertest.Directory(t, srv.JS)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs, err := workflow.Parse([]byte(`kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: nightly
integration: crm
trigger: {type: schedule, cron: "0 0 2 * * *", timezoneFrom: user.metadata.timezone, overlap: allow}
steps: [{id: s, type: http, url: "https://example.com"}]
`), project)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cat.Apply(ctx, objs)
	if err == nil {
		err = cat.WaitRevision(ctx, rev)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		u := fmt.Sprintf("u%02d", i)
		if _, _, err := dir.UpdateUser(ctx, project, u, func(us *directory.User) error {
			us.Metadata = map[string]any{"timezone": "Europe/Berlin"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := dir.UpdateCredential(ctx, project, u, "c", func(cr *directory.Credential, _ bool) error {
			cr.Integration = "crm"
			if i%5 == 0 {
				cr.Status = directory.CredentialInvalid
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	nominal := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	decideAll := func(idx decide.Enrollment) []string {
		d, err := decide.New(decide.Options{Config: cat, Directory: directoryReader{dir}, Enrollment: idx})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		const shards = 3
		for s := range shards {
			ev := &sbv1.TriggerEvent{Id: fmt.Sprint("e", s), Project: project, Kind: sbv1.Kind_SCHEDULE, Workflow: "nightly",
				Name: schedule.TickID(project, "nightly", "Europe/Berlin", nominal),
				Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{Workflow: "nightly", Zone: "Europe/Berlin",
					NominalTime: timestamppb.New(nominal), Shard: uint32(s), Shards: shards}}}
			cands, err := d.Decide(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cands {
				if directory.ShardOf(c.User)%shards != s {
					t.Errorf("user %s (directory shard %d) decided by tick shard %d", c.User, directory.ShardOf(c.User), s)
				}
				out = append(out, c.User+"/"+c.Credential+"/"+c.Outcome+"/"+c.Reason+"/"+c.RunID)
			}
		}
		slices.Sort(out)
		return out
	}
	small, large := decideAll(dir), decideAll(walking{dir})
	if len(small) != 40 || !slices.Equal(small, large) {
		t.Fatalf("one read: %d candidates %v\nshard walk: %d %v", len(small), small, len(large), large)
	}
	skipped := 0
	for _, c := range small {
		if strings.Contains(c, "/"+runs.OutcomeSkipped+"/"+runs.ReasonCredentialInvalid+"/") {
			skipped++
		}
	}
	if skipped != 8 {
		t.Errorf("%d invalid credentials skipped, want 8: %v", skipped, small)
	}
}
