package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/services/scheduler"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// scheduleDeployment is where a test reaches each part of a system: the
// API the project is set up through (apply, users, the run history) and the
// scheduler's, which may be another process.
type scheduleDeployment struct {
	front, scheduler api
	key              string
}

// splitScheduleProcesses: the scheduler alone in its process, the run
// history in another, so its run counts can only come over NATS.
var splitScheduleProcesses = map[string][]string{
	"front":     {"ingress", "history", "connection-lifecycle"},
	"router":    {"router"},
	"scheduler": {"scheduler"},
}

func startScheduleDev(t *testing.T) scheduleDeployment {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	return scheduleDeployment{front: a, scheduler: a, key: sys.APIKey}
}

func startScheduleSplit(t *testing.T) scheduleDeployment {
	if testing.Short() {
		t.Skip("builds and runs three processes")
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.Command("go", "build", "-o", bin, "github.com/switchboard-hq/switchboard/services/switchboard/cmd/switchboard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	natsURL := startNATSServer(t)
	const adminToken = "adm_split_schedule_test_token"
	addrs := map[string]string{}
	var procs []*process
	for name, roles := range splitScheduleProcesses {
		addrs[name] = freeAddr(t)
		procs = append(procs, startProcess(t, name, bin, []string{"serve", "--role", strings.Join(roles, ",")}, addrs[name], []string{
			"SWITCHBOARD_NATS_URL=" + natsURL,
			"SWITCHBOARD_ADMIN_TOKEN=" + adminToken,
			"SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true",
			"SWITCHBOARD_SHUTDOWN_TIMEOUT=10s",
			"SWITCHBOARD_HTTP_ADDR=" + addrs[name],
			"SWITCHBOARD_DATA_DIR=" + t.TempDir(),
			"SWITCHBOARD_DRAIN_DELAY=0s",
		}))
	}
	for _, p := range procs {
		p.waitReady(t)
	}
	front := newAPI(addrs["front"])
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	front.must(t, http.StatusOK, "PUT", "/v1/projects/dev", adminToken,
		map[string]any{"name": "Dev", "userTokenKeys": []string{auth.EncodePublicKeyPEM(&signer.PublicKey)}})
	var created struct{ Key string }
	front.must(t, http.StatusCreated, "POST", "/v1/projects/dev/api-keys", adminToken, nil).decode(t, &created)
	// The other processes learn of the key through their catalog watch.
	eventually(t, 10*time.Second, "the front process to accept the new API key", func() (bool, string) {
		r := front.call(t, "GET", "/v1/projects/dev/runs", created.Key, nil)
		return r.Status == http.StatusOK, r.String()
	})
	return scheduleDeployment{front: front, scheduler: newAPI(addrs["scheduler"]), key: created.Key}
}

// TestScheduleRunCounts: GET …/schedule shows each decided tick's run
// count and it is the sum of its decisions' — with every role in one
// process, and with the scheduler in a process of its own and the history
// role in another (split mode), where the counts come from the history
// role's decision query over NATS.
func TestScheduleRunCounts(t *testing.T) {
	// Users per zone of scheduleUsers: each decided tick of a zone runs
	// each of its users once (overlap: allow).
	perZone := map[string]int{}
	for _, u := range scheduleUsers {
		perZone[u.zone]++
	}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) scheduleDeployment
	}{
		{"dev", startScheduleDev},
		{"split", startScheduleSplit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t)
			d := tc.start(t)
			for u, z := range scheduleUsers {
				d.front.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+u, d.key, map[string]any{"metadata": map[string]any{"timezone": z.metadata}})
			}
			d.front.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", d.key, scheduleDocs(l.URL))

			counted := map[string]scheduler.FiredView{}
			eventually(t, 60*time.Second, "a tick with its run count in every zone", func() (bool, string) {
				r := d.scheduler.call(t, "GET", "/v1/projects/dev/workflows/every-second/schedule", d.key, nil)
				if r.Status != http.StatusOK {
					return false, r.String() // the scheduler process has not seen the workflow or the key yet
				}
				var v scheduler.ScheduleView
				r.decode(t, &v)
				for _, z := range v.Zones {
					for _, f := range z.Recent {
						if f.Runs == nil {
							continue // not decided yet
						}
						if *f.Runs != perZone[z.Zone] {
							t.Fatalf("zone %q tick %s: %d runs, want %d", z.Zone, f.Nominal, *f.Runs, perZone[z.Zone])
						}
						counted[z.Zone] = f
					}
				}
				return len(counted) == len(perZone), fmt.Sprintf("counted zones %d of %d: %s", len(counted), len(perZone), r.Body)
			})
			// The count is its decisions' as the history API has them.
			for zone, f := range counted {
				ran := 0
				for _, ev := range f.Events {
					ran += getDecision(t, d.front, d.key, ev).Summary.Ran
				}
				if ran != *f.Runs {
					t.Errorf("zone %q tick %s: %d runs shown, its decisions say %d", zone, f.Nominal, *f.Runs, ran)
				}
			}
		})
	}
}
