package schedule_test

import (
	"fmt"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/schedule"
)

// A daily 02:30 schedule in New York across the 2026 spring-forward night:
// the missing 02:30 runs at 03:00 EDT, once.
func ExampleCompile() {
	spec, err := schedule.ParseSpec([]byte("every: {unit: days, at: \"02:30\"}\ntimezone: America/New_York\nspread: 30s\n"))
	if err != nil {
		panic(err)
	}
	s, problems := schedule.Compile(spec)
	if len(problems) > 0 {
		panic(problems)
	}
	loc, zone := s.Zone()
	for t := range s.Between(time.Date(2026, 3, 7, 0, 0, 0, 0, loc), time.Date(2026, 3, 9, 12, 0, 0, 0, loc), nil) {
		fmt.Println(t.Format("2006-01-02 15:04 MST"), schedule.TickID("acme", "nightly", zone, t))
	}
	// Output:
	// 2026-03-07 02:30 EST acme/nightly@America/New_York@2026-03-07T07:30:00Z
	// 2026-03-08 03:00 EDT acme/nightly@America/New_York@2026-03-08T07:00:00Z
	// 2026-03-09 02:30 EDT acme/nightly@America/New_York@2026-03-09T06:30:00Z
}

// A bad spec names each field.
func ExampleCompile_problems() {
	_, problems := schedule.Compile(schedule.Spec{Cron: "0 0 25 * * *", Timezone: "Mars/Olympus"})
	for _, p := range problems {
		fmt.Println(p.Field)
	}
	// Output:
	// cron
	// timezone
}
