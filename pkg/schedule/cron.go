package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// wallMatcher enumerates the local wall times a calendar schedule names.
// Wall times are "naive" seconds: the Unix seconds of the same date and
// clock reading in UTC, so calendar arithmetic never sees a DST change;
// mapping a wall time to an instant (resolve) is done separately.
type wallMatcher interface {
	// next returns the first matching wall time strictly after w, or false
	// when there is none within the search horizon.
	next(w int64) (int64, bool)
}

// cronSpec is a parsed cron expression as bit sets, one bit per allowed
// value (the same representation robfig/cron uses; its Next is not used
// because it skips wall times in a spring-forward gap, robfig/cron#541).
type cronSpec struct {
	second, minute, hour, dom, month, dow uint64
	// domStar and dowStar follow Vixie cron: when both day fields are
	// restricted a day matches either of them, otherwise both.
	domStar, dowStar bool
}

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var (
	monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	dowNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	cronFields = [6]cronField{
		{"second", 0, 59, nil},
		{"minute", 0, 59, nil},
		{"hour", 0, 23, nil},
		{"day of month", 1, 31, nil},
		{"month", 1, 12, monthNames},
		{"day of week", 0, 7, dowNames}, // 7 is Sunday too
	}
)

// cronMacro expands a macro to its 6-field form.
func cronMacro(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "@yearly", "@annually":
		return "0 0 0 1 1 *", true
	case "@monthly":
		return "0 0 0 1 * *", true
	case "@weekly":
		return "0 0 0 * * 0", true
	case "@daily", "@midnight":
		return "0 0 0 * * *", true
	case "@hourly":
		return "0 0 * * * *", true
	}
	return "", false
}

// parseCron parses a 6-field (seconds first), 5-field or macro expression.
// "@every <duration>" returns the duration instead (an elapsed schedule).
func parseCron(expr string) (*cronSpec, time.Duration, error) {
	expr = strings.TrimSpace(expr)
	if len(expr) > 512 {
		return nil, 0, errors.New("cron expression is longer than 512 bytes")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, 0, errors.New("set the zone with timezone or timezoneFrom, not a TZ= prefix")
	}
	if strings.HasPrefix(expr, "@") {
		if rest, ok := strings.CutPrefix(expr, "@every "); ok {
			d, err := parseDuration(rest)
			if err != nil {
				return nil, 0, fmt.Errorf("@every: %w", err)
			}
			if d <= 0 {
				return nil, 0, errors.New("@every needs a positive duration")
			}
			return nil, d, nil
		}
		m, ok := cronMacro(expr)
		if !ok {
			return nil, 0, fmt.Errorf("unknown macro %q (supported: @yearly, @monthly, @weekly, @daily, @hourly, @every <duration>)", expr)
		}
		expr = m
	}
	fields := strings.Fields(expr)
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return nil, 0, fmt.Errorf("expected 6 fields (second minute hour day-of-month month day-of-week) or 5, got %d", len(fields))
	}
	var c cronSpec
	dst := [6]*uint64{&c.second, &c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range fields {
		mask, err := parseCronField(f, cronFields[i])
		if err != nil {
			return nil, 0, fmt.Errorf("%s field %q: %w", cronFields[i].name, f, err)
		}
		*dst[i] = mask
	}
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = fields[3][0] == '*' || fields[3][0] == '?'
	c.dowStar = fields[5][0] == '*' || fields[5][0] == '?'
	if !c.satisfiable() {
		return nil, 0, errors.New("never matches: no selected month has the selected day of month")
	}
	return &c, 0, nil
}

func parseCronField(s string, f cronField) (uint64, error) {
	var mask uint64
	for _, part := range strings.Split(s, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max+1 {
				return 0, fmt.Errorf("bad step %q", stepText)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*" || rng == "?":
			lo, hi = f.min, f.max
			if f.max == 7 {
				hi = 6 // "*" in day of week is 0-6; 7 only as an alias
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, f); err != nil {
				return 0, err
			}
			if hi, err = cronValue(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			v, err := cronValue(rng, f)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep {
				hi = f.max // "a/s" means a, a+s, … up to the maximum
			}
		}
		for v := lo; v <= hi; v += step {
			mask |= 1 << uint(v)
		}
	}
	return mask, nil
}

func cronValue(s string, f cronField) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if s == "L" || strings.ContainsAny(s, "LW#") {
			return 0, fmt.Errorf("%q is not supported (L, W and # are Quartz extensions)", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, f.min, f.max)
	}
	return v, nil
}

// satisfiable reports whether some day can match: only a restricted day of
// month with an unrestricted day of week can fail (e.g. "0 0 0 30 2 *").
func (c *cronSpec) satisfiable() bool {
	if c.domStar || !c.dowStar {
		return true
	}
	maxDay := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if c.month&(1<<uint(m)) == 0 {
			continue
		}
		if c.dom&((uint64(1)<<uint(maxDay[m]+1))-1) != 0 {
			return true
		}
	}
	return false
}

// cronHorizon bounds the search for the next match: the rarest satisfiable
// expression (29 February on a restricted month set) recurs within 8 years.
const cronHorizon = 10

// next finds the first matching wall time after w. It steps field by field
// from the largest unit down, as Vixie cron and robfig/cron do, but on the
// naive UTC calendar, where every day has 24 hours.
func (c *cronSpec) next(w int64) (int64, bool) {
	t := time.Unix(w+1, 0).UTC()
	limit := t.Year() + cronHorizon
	for t.Year() <= limit {
		if c.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !c.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		h, ok := nextBit(c.hour, t.Hour())
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if h != t.Hour() {
			t = time.Date(t.Year(), t.Month(), t.Day(), h, 0, 0, 0, time.UTC)
		}
		m, ok := nextBit(c.minute, t.Minute())
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			continue
		}
		if m != t.Minute() {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), m, 0, 0, time.UTC)
		}
		s, ok := nextBit(c.second, t.Second())
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute()+1, 0, 0, time.UTC)
			continue
		}
		return t.Unix() + int64(s-t.Second()), true
	}
	return 0, false
}

// nextBit is the smallest set bit of mask at or above from.
func nextBit(mask uint64, from int) (int, bool) {
	rest := mask >> uint(from)
	if rest == 0 {
		return 0, false
	}
	return from + bits.TrailingZeros64(rest), true
}

func (c *cronSpec) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// dayMatcher is "every N days at a time" or "every N weeks on a weekday at
// a time". The N-day (N-week) cycle is counted from the Unix epoch's civil
// date (1970-01-01; weeks from Monday 1969-12-29) in the schedule's zone, so
// every replica picks the same days without remembering a start date.
type dayMatcher struct {
	interval int64
	at       int64 // seconds after local midnight
	weekday  int64 // 0 = Sunday; -1 for a days schedule
}

func (d *dayMatcher) next(w int64) (int64, bool) {
	day := floorDiv(w, 86400)
	if w-day*86400 >= d.at {
		day++
	}
	if d.weekday < 0 {
		day += floorMod(-day, d.interval)
		return day*86400 + d.at, true
	}
	// 1970-01-01 was a Thursday (weekday 4).
	day += floorMod(d.weekday-floorMod(day+4, 7), 7)
	for floorMod(floorDiv(day+3, 7), d.interval) != 0 {
		day += 7
	}
	return day*86400 + d.at, true
}

func (d *dayMatcher) String() string {
	at := fmt.Sprintf("%02d:%02d:%02d", d.at/3600, d.at/60%60, d.at%60)
	if d.weekday < 0 {
		return fmt.Sprintf("every %d day(s) at %s", d.interval, at)
	}
	return fmt.Sprintf("every %d week(s) on %s at %s", d.interval, weekdayNames[d.weekday], at)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
