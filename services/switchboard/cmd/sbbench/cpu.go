package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSample is a reading of the machine's busy CPU time and this process's
// own CPU time, so a round can say how much of the machine other processes
// took while it ran (a noisy neighbour makes every figure meaningless).
type cpuSample struct {
	at         time.Time
	busyTicks  uint64 // all CPUs, user+nice+system+irq+softirq+steal
	selfTicks  uint64 // this process, utime+stime
	valid      bool
	clockTicks float64
}

// clkTck is USER_HZ; 100 on every Linux this runs on.
const clkTck = 100

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), clockTicks: clkTck}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		s.busyTicks += n
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return s
	}
	// Fields after the command name "(...)": state is field 3, utime 14, stime 15.
	rest := string(self)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	g := strings.Fields(rest)
	if len(g) < 13 {
		return s
	}
	ut, _ := strconv.ParseUint(g[11], 10, 64)
	st, _ := strconv.ParseUint(g[12], 10, 64)
	s.selfTicks = ut + st
	s.valid = true
	return s
}

// cpuUse is the CPU used between two samples, in cores.
type cpuUse struct {
	self, other float64
	valid       bool
}

func cpuSince(a cpuSample) cpuUse {
	b := sampleCPU()
	secs := b.at.Sub(a.at).Seconds()
	if !a.valid || !b.valid || secs <= 0 {
		return cpuUse{}
	}
	self := float64(b.selfTicks-a.selfTicks) / a.clockTicks / secs
	busy := float64(b.busyTicks-a.busyTicks) / a.clockTicks / secs
	return cpuUse{self: self, other: max(busy-self, 0), valid: true}
}

func (u cpuUse) String() string {
	if !u.valid {
		return ""
	}
	return fmt.Sprintf("cpu: sbbench %.2f, others %.2f cores", u.self, u.other)
}

// perOp is this process's CPU time per operation at rate ops/s — load
// generator included, so it compares targets, it is not a server figure.
func (u cpuUse) perOp(rate float64) string {
	if !u.valid || rate <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0fµs", u.self/rate*1e6)
}

// loadavg is /proc/loadavg's first three fields.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
