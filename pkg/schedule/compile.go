package schedule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Policies.
type (
	// Overlap says what a tick does for a user whose previous run of the
	// workflow is still going.
	Overlap string
	// Catchup says which ticks missed during downtime fire on restart.
	Catchup string
)

const (
	OverlapSkip      Overlap = "skip"       // drop the new tick for that user
	OverlapBufferOne Overlap = "buffer_one" // keep at most one waiting tick
	OverlapAllow     Overlap = "allow"      // run concurrently

	CatchupSkip Catchup = "skip" // fire nothing that was missed
	CatchupOnce Catchup = "once" // fire the latest missed tick
	CatchupAll  Catchup = "all"  // fire every missed tick, oldest first
)

// Limits. They are constants, not configuration, because every replica must
// compute the same ticks from the same spec.
const (
	// MinInterval is the shortest elapsed interval; below it the scheduler
	// would spend its time publishing ticks.
	MinInterval = time.Second
	// MaxInterval bounds every, so tick arithmetic stays far from overflow.
	MaxInterval = 366 * 24 * time.Hour
	// DefaultCatchupWindow applies when catchupWindow is not set.
	DefaultCatchupWindow = time.Hour
	// MaxCatchupWindow bounds how far back Missed looks, which bounds its
	// work (it walks every tick in the window).
	MaxCatchupWindow = 7 * 24 * time.Hour
	// MaxCatchupTicks is the most ticks Missed returns for catchup: all;
	// the latest ones are kept (Temporal's buffer limit is the same).
	MaxCatchupTicks = 1000
	// MaxSpread and MaxJitter bound the per-user delay of a tick.
	MaxSpread = 24 * time.Hour
	MaxJitter = time.Hour
	// MetadataPrefix starts every timezoneFrom path.
	MetadataPrefix = "user.metadata."
)

// Problem is one invalid field of a Spec. Field is relative to the trigger
// ("cron", "every.atMinute"); the workflow compiler prefixes "trigger.".
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problems is every problem of one Spec.
type Problems []Problem

func (p Problems) Error() string {
	parts := make([]string, len(p))
	for i, x := range p {
		parts[i] = x.Field + ": " + x.Message
	}
	return strings.Join(parts, "; ")
}

func (p *Problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// kind is how a schedule computes its ticks (see the package doc).
type kind uint8

const (
	kindElapsed kind = iota + 1 // multiples of period since the epoch
	kindHourly                  // local minute M of hours divisible by N, in real time
	kindWall                    // wall-clock matcher with the DST rule
)

// Schedule is a compiled, immutable Spec. It is safe for concurrent use.
type Schedule struct {
	kind     kind
	period   int64       // kindElapsed: seconds
	hours    int64       // kindHourly: N
	atMinute int64       // kindHourly: M
	wall     wallMatcher // kindWall

	zone         *time.Location // fixed zone (nil when per user)
	zoneName     string
	zonePath     []string // timezoneFrom below user.metadata
	fallback     *time.Location
	fallbackName string

	overlap Overlap
	catchup Catchup
	window  time.Duration
	spread  time.Duration
	jitter  time.Duration

	text string // canonical description, for logs and the API
}

// Compile checks a Spec and compiles it. It reports every problem found,
// not only the first; the schedule is nil when there is any.
func Compile(spec Spec) (*Schedule, Problems) {
	var p Problems
	s := &Schedule{}
	switch {
	case spec.Every != nil && spec.Cron != "":
		p.add("cron", "cannot be used together with every (set one of them)")
	case spec.Every != nil:
		s.compileEvery(spec.Every, &p)
	case strings.TrimSpace(spec.Cron) != "":
		s.compileCron(spec.Cron, &p)
	default:
		p.add("every", "a schedule needs every or cron")
	}
	s.compileZone(spec, &p)
	s.compilePolicies(spec, &p)
	if len(p) > 0 {
		return nil, p
	}
	return s, nil
}

func (s *Schedule) compileEvery(e *Every, p *Problems) {
	if e.Duration != "" {
		if e.Unit != "" || e.Interval != 0 || e.AtMinute != nil || e.At != "" || e.Weekday != "" {
			p.add("every", "is either a duration or a mapping, not both")
			return
		}
		d, err := parseDuration(e.Duration)
		if err != nil {
			p.add("every", "%v", err)
			return
		}
		s.setElapsed(d, "every", p)
		return
	}
	n := e.Interval
	if n == 0 {
		n = 1
	}
	unit := strings.ToLower(strings.TrimSpace(e.Unit))
	// Each unit owns some of the optional fields; one set on the wrong unit
	// is refused so "atMinute" on a daily schedule is not silently ignored.
	owns := map[string][]string{"seconds": nil, "minutes": nil, "hours": {"atMinute"}, "days": {"at"}, "weeks": {"at", "weekday"}}
	allowed, ok := owns[unit]
	if !ok {
		p.add("every.unit", "must be one of seconds, minutes, hours, days, weeks (got %q)", e.Unit)
		return
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"atMinute", e.AtMinute != nil}, {"at", e.At != ""}, {"weekday", e.Weekday != ""}} {
		if f.set && !contains(allowed, f.name) {
			p.add("every."+f.name, "is not an option of unit %s", unit)
		}
	}
	maxN := map[string]int{"seconds": int(MaxInterval / time.Second), "minutes": int(MaxInterval / time.Minute), "hours": 23, "days": 366, "weeks": 52}[unit]
	if n < 1 || n > maxN {
		p.add("every.interval", "must be between 1 and %d for unit %s", maxN, unit)
		return
	}
	switch unit {
	case "seconds":
		s.setElapsed(time.Duration(n)*time.Second, "every.interval", p)
	case "minutes":
		s.setElapsed(time.Duration(n)*time.Minute, "every.interval", p)
	case "hours":
		m := 0
		if e.AtMinute != nil {
			m = *e.AtMinute
		}
		if m < 0 || m > 59 {
			p.add("every.atMinute", "must be between 0 and 59")
			return
		}
		s.kind, s.hours, s.atMinute = kindHourly, int64(n), int64(m)
		s.text = fmt.Sprintf("every %d hour(s) at minute %d", n, m)
	case "days", "weeks":
		at := 0
		if e.At != "" {
			v, err := parseTimeOfDay(e.At)
			if err != nil {
				p.add("every.at", "%v", err)
				return
			}
			at = v
		}
		dm := &dayMatcher{interval: int64(n), at: int64(at), weekday: -1}
		if unit == "weeks" {
			wd, ok := parseWeekday(e.Weekday)
			if !ok {
				p.add("every.weekday", "must be a day of the week such as monday (got %q)", e.Weekday)
				return
			}
			dm.weekday = int64(wd)
		}
		s.kind, s.wall = kindWall, dm
		s.text = dm.String()
	}
}

func (s *Schedule) setElapsed(d time.Duration, field string, p *Problems) {
	switch {
	case d < MinInterval:
		p.add(field, "must be at least %s (got %s)", MinInterval, d)
	case d > MaxInterval:
		p.add(field, "must be at most %s (got %s)", MaxInterval, d)
	case d%time.Second != 0:
		// Nominal times are whole seconds, so ids and KV state agree.
		p.add(field, "must be a whole number of seconds (got %s)", d)
	default:
		s.kind, s.period = kindElapsed, int64(d/time.Second)
		s.text = "every " + d.String()
	}
}

func (s *Schedule) compileCron(expr string, p *Problems) {
	c, every, err := parseCron(expr)
	if err != nil {
		p.add("cron", "%v", err)
		return
	}
	if every != 0 {
		s.setElapsed(every, "cron", p)
		return
	}
	s.kind, s.wall = kindWall, c
	s.text = "cron " + strings.Join(strings.Fields(expr), " ")
}

func (s *Schedule) compileZone(spec Spec, p *Problems) {
	switch {
	case spec.Timezone != "" && spec.TimezoneFrom != "":
		p.add("timezoneFrom", "cannot be used together with timezone (a schedule has a fixed zone or a per-user one)")
	case spec.TimezoneFrom != "":
		path, ok := strings.CutPrefix(spec.TimezoneFrom, MetadataPrefix)
		parts := strings.Split(path, ".")
		if !ok || path == "" || contains(parts, "") {
			p.add("timezoneFrom", "must be a path into user metadata such as %stimezone (got %q)", MetadataPrefix, spec.TimezoneFrom)
		}
		s.zonePath = parts
		name := spec.FallbackZone
		if name == "" {
			name = "UTC"
		}
		loc, err := LoadZone(name)
		if err != nil {
			p.add("fallbackZone", "%v", err)
		}
		s.fallback, s.fallbackName = loc, name
	default:
		if spec.FallbackZone != "" {
			p.add("fallbackZone", "applies only with timezoneFrom")
		}
		name := spec.Timezone
		if name == "" {
			name = "UTC"
		}
		loc, err := LoadZone(name)
		if err != nil {
			p.add("timezone", "%v", err)
		}
		s.zone, s.zoneName = loc, name
	}
}

func (s *Schedule) compilePolicies(spec Spec, p *Problems) {
	switch o := Overlap(spec.Overlap); o {
	case "":
		s.overlap = OverlapSkip
	case OverlapSkip, OverlapBufferOne, OverlapAllow:
		s.overlap = o
	default:
		p.add("overlap", "must be one of skip, buffer_one, allow (got %q)", spec.Overlap)
	}
	switch c := Catchup(spec.Catchup); c {
	case "":
		s.catchup = CatchupOnce
	case CatchupSkip, CatchupOnce, CatchupAll:
		s.catchup = c
	default:
		p.add("catchup", "must be one of skip, once, all (got %q)", spec.Catchup)
	}
	s.window = DefaultCatchupWindow
	durations := []struct {
		field string
		text  Duration
		min   time.Duration
		max   time.Duration
		dst   *time.Duration
	}{
		{"catchupWindow", spec.CatchupWindow, time.Second, MaxCatchupWindow, &s.window},
		{"spread", spec.Spread, 0, MaxSpread, &s.spread},
		{"jitter", spec.Jitter, 0, MaxJitter, &s.jitter},
	}
	for _, d := range durations {
		if d.text == "" {
			continue
		}
		v, err := parseDuration(string(d.text))
		switch {
		case err != nil:
			p.add(d.field, "%v", err)
		case v < d.min || v > d.max:
			p.add(d.field, "must be between %s and %s (got %s)", d.min, d.max, v)
		default:
			*d.dst = v
		}
	}
	// A spread as long as the interval would let one tick's runs reach the
	// next tick's, which defeats the overlap policy's intent.
	if s.kind == kindElapsed && s.spread+s.jitter >= time.Duration(s.period)*time.Second {
		p.add("spread", "spread plus jitter (%s) must be shorter than the interval (%s)", s.spread+s.jitter, time.Duration(s.period)*time.Second)
	}
}

// parseDuration parses a Go duration or a bare number of seconds.
func parseDuration(text string) (time.Duration, error) {
	t := strings.TrimSpace(text)
	if isNumber(t) {
		f, _ := strconv.ParseFloat(t, 64)
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(MaxInterval/time.Second)*10 {
			return 0, fmt.Errorf("invalid duration %q", text)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write it like 30s, 15m or 2h)", text)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative (got %s)", d)
	}
	return d, nil
}

// parseTimeOfDay reads "09:00", "9:00", "09:00:30", "9:00 am", "12:30pm"
// into seconds after midnight.
func parseTimeOfDay(text string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(text))
	ampm := ""
	for _, suf := range []string{"am", "pm"} {
		if rest, ok := strings.CutSuffix(t, suf); ok {
			ampm, t = suf, strings.TrimSpace(rest)
		}
	}
	parts := strings.Split(t, ":")
	bad := fmt.Errorf("must be a time of day like 09:00, 09:00:30 or 9:00 am (got %q)", text)
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var v [3]int
	for i, s := range parts {
		if len(s) == 0 || len(s) > 2 || (i > 0 && len(s) != 2) {
			return 0, bad
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, bad
		}
		v[i] = n
	}
	h, m, sec := v[0], v[1], v[2]
	if ampm != "" {
		if h < 1 || h > 12 {
			return 0, bad
		}
		h %= 12
		if ampm == "pm" {
			h += 12
		}
	}
	if h > 23 || m > 59 || sec > 59 {
		return 0, bad
	}
	return h*3600 + m*60 + sec, nil
}

var weekdayNames = [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func parseWeekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 3 {
		return 0, false
	}
	for i, name := range weekdayNames {
		if s == name || s == name[:3] {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// errLocal refuses "Local": it is whatever zone the host is set to, so two
// replicas could disagree on every tick.
var errLocal = errors.New(`"Local" is the host's zone; name an IANA zone such as Europe/Berlin`)

// LoadZone loads an IANA zone by name, refusing names that would make
// replicas disagree ("Local") and absurdly long ones.
func LoadZone(name string) (*time.Location, error) {
	switch {
	case name == "":
		return nil, errors.New("zone name is empty")
	case name == "Local":
		return nil, errLocal
	case len(name) > 64:
		return nil, fmt.Errorf("unknown time zone (name longer than 64 bytes)")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: %w", name, err)
	}
	return loc, nil
}

// Accessors of the compiled policies.

func (s *Schedule) Overlap() Overlap             { return s.overlap }
func (s *Schedule) Catchup() Catchup             { return s.catchup }
func (s *Schedule) CatchupWindow() time.Duration { return s.window }
func (s *Schedule) Spread() time.Duration        { return s.spread }
func (s *Schedule) Jitter() time.Duration        { return s.jitter }
func (s *Schedule) String() string               { return s.text }

// PerUser reports whether the zone comes from each user's metadata.
func (s *Schedule) PerUser() bool { return s.zone == nil }

// Zone is the fixed zone and its name (nil, "" for per-user schedules).
func (s *Schedule) Zone() (*time.Location, string) { return s.zone, s.zoneName }

// ZoneIndependent reports whether the ticks are the same instants in every
// zone (elapsed-time schedules): the scheduler still publishes one tick per
// zone, since a tick fans out to one zone's users.
func (s *Schedule) ZoneIndependent() bool { return s.kind == kindElapsed }
