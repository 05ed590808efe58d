package workflow

import (
	"github.com/switchboard-hq/switchboard/pkg/schedule"
)

// scheduleFields are the trigger fields a schedule trigger owns.
var scheduleFields = []string{"every", "cron", "timezone", "timezoneFrom", "fallbackZone",
	"overlap", "catchup", "catchupWindow", "spread", "jitter"}

// ScheduleZoneField is the one timezoneFrom path a schedule may use: the
// directory indexes enrollment by metadata.timezone, and a tick fans out to
// one indexed zone's users, so another path could not find its users.
const ScheduleZoneField = schedule.MetadataPrefix + "timezone"

// setScheduleFields lists the schedule fields that are set, so another
// trigger type setting one is refused instead of silently ignored.
func (t *Trigger) setScheduleFields() []string {
	s := t.Spec
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"every", s.Every != nil}, {"cron", s.Cron != ""}, {"timezone", s.Timezone != ""},
		{"timezoneFrom", s.TimezoneFrom != ""}, {"fallbackZone", s.FallbackZone != ""},
		{"overlap", s.Overlap != ""}, {"catchup", s.Catchup != ""}, {"catchupWindow", s.CatchupWindow != ""},
		{"spread", s.Spread != ""}, {"jitter", s.Jitter != ""},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// compileScheduleTrigger compiles the schedule with pkg/schedule at apply
// time; its problems name the field under trigger. (trigger.cron,
// trigger.every.atMinute), which the API answers with 400.
func compileScheduleTrigger(t *Trigger, p *Problems) {
	sched, probs := schedule.Compile(t.Spec)
	for _, pr := range probs {
		p.add("trigger."+pr.Field, "%s", pr.Message)
	}
	if t.TimezoneFrom != "" && t.TimezoneFrom != ScheduleZoneField {
		p.add("trigger.timezoneFrom", "must be %s: the directory indexes users by that metadata key (got %q)", ScheduleZoneField, t.TimezoneFrom)
	}
	if len(probs) == 0 {
		t.sched = sched
	}
}
