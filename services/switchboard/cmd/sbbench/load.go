package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one HTTP endpoint the load generator drives: every request is
// a POST of body(i) (i counts requests across all connections) with header.
// When check is set, a 2xx answer only counts as a success if check accepts
// its status and body (a rejected one counts as an error under the check's
// message).
type target struct {
	name   string
	url    string
	header http.Header
	body   func(i int64) []byte
	check  func(i int64, status int, body []byte) error
}

// eventBody is the App Event body both ingest targets receive.
func eventBody(name string) func(int64) []byte {
	prefix := `{"name":` + strconv.Quote(name) + `,"payload":{"i":`
	return func(i int64) []byte {
		b := make([]byte, 0, len(prefix)+24)
		b = append(b, prefix...)
		b = strconv.AppendInt(b, i, 10)
		return append(b, "}}"...)
	}
}

// result is what one load run measured.
type result struct {
	name    string
	conns   int
	elapsed time.Duration // first request sent .. last answer received
	ok      int64         // 2xx answers
	errs    int64         // transport errors and non-2xx answers
	byError map[string]int64
	lat     []time.Duration // 2xx latencies, sorted
	cpu     cpuUse
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func (r result) maxLat() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[len(r.lat)-1]
}

func (r result) String() string {
	s := fmt.Sprintf("%-12s %6d conns %9.0f req/s  p50 %7s  p99 %7s  max %7s  ok %7d  errors %d",
		r.name, r.conns, r.rps(), ms(r.pct(50)), ms(r.pct(99)), ms(r.maxLat()), r.ok, r.errs)
	if len(r.byError) > 0 {
		keys := make([]string, 0, len(r.byError))
		for k := range r.byError {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, r.byError[k]))
		}
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	if r.cpu.valid {
		s += "  [" + r.cpu.String() + ", " + r.cpu.perOp(r.rps()) + " process CPU/req]"
	}
	return s
}

// merge combines rounds of one target (latencies pooled, elapsed summed), so
// rps() of the merge is the mean rate over all rounds.
func merge(name string, rs []result) result {
	out := result{name: name, byError: map[string]int64{}, cpu: cpuUse{valid: true}}
	var total time.Duration
	for _, r := range rs {
		total += r.elapsed
	}
	for _, r := range rs {
		w := r.elapsed.Seconds() / total.Seconds()
		out.cpu.self += r.cpu.self * w
		out.cpu.other += r.cpu.other * w
		out.cpu.valid = out.cpu.valid && r.cpu.valid
		out.conns = r.conns
		out.elapsed += r.elapsed
		out.ok += r.ok
		out.errs += r.errs
		out.lat = append(out.lat, r.lat...)
		for k, v := range r.byError {
			out.byError[k] += v
		}
	}
	slices.Sort(out.lat)
	return out
}

func best(rs []result) result {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.rps() > b.rps() {
			b = r
		}
	}
	return b
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}

// newClient is one connection's client: its own transport, keep-alive, no
// compression, so conns clients hold conns TCP connections.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// limit says when a load run ends: after d, or after n requests in total
// (whichever is set; n > 0 wins).
type limit struct {
	d time.Duration
	n int64
}

// closedLoop runs conns workers against t, each sending its next request as
// soon as the previous one was answered, until lim is reached or ctx ends.
// Requests in flight at the deadline are allowed to finish and count.
func closedLoop(ctx context.Context, t target, conns int, lim limit) result {
	var (
		seq     atomic.Int64
		mu      sync.Mutex
		all     []time.Duration
		ok      int64
		errs    int64
		byError = map[string]int64{}
		wg      sync.WaitGroup
	)
	cpu0 := sampleCPU()
	start := time.Now()
	deadline := start.Add(lim.d)
	for range conns {
		wg.Go(func() {
			c := newClient()
			defer c.CloseIdleConnections()
			lat := make([]time.Duration, 0, 4096)
			var wOK, wErr int64
			wErrs := map[string]int64{}
			for ctx.Err() == nil {
				var i int64
				if lim.n > 0 {
					if i = seq.Add(1); i > lim.n {
						break
					}
				} else {
					if !time.Now().Before(deadline) {
						break
					}
					i = seq.Add(1)
				}
				code, d, err := post(ctx, c, t, i)
				switch {
				case err != nil && code != 0:
					wErr++
					wErrs[err.Error()]++
				case err != nil:
					wErr++
					wErrs[errKey(err)]++
				case code < 200 || code > 299:
					wErr++
					wErrs["HTTP "+strconv.Itoa(code)]++
				default:
					wOK++
					lat = append(lat, d)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			ok += wOK
			errs += wErr
			for k, v := range wErrs {
				byError[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	return result{name: t.name, conns: conns, elapsed: elapsed, ok: ok, errs: errs, byError: byError, lat: all, cpu: cpuSince(cpu0)}
}

// post sends request i; a non-nil error with a non-zero status is the
// target's check rejecting a 2xx answer.
func post(ctx context.Context, c *http.Client, t target, i int64) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(t.body(i)))
	if err != nil {
		return 0, 0, err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	begin := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	if t.check == nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, time.Since(begin), nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	d := time.Since(begin)
	if err != nil {
		return 0, 0, err
	}
	if err := t.check(i, resp.StatusCode, body); err != nil {
		return resp.StatusCode, d, err
	}
	return resp.StatusCode, d, nil
}

// errKey groups transport errors by their last, most specific part.
func errKey(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
