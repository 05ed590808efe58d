package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runDevProc builds the switchboard binary, starts `switchboard dev` on a
// fresh data dir (cold), stops it, starts it again on the same dir (warm)
// and measures the time until /readyz answers 200, then its RSS after 3s idle.
func runDevProc(ctx context.Context, b *bench) error {
	repo, err := repoRoot(b.cfg.repo)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(b.tmp, "devproc-")
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "switchboard")
	buildStart := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./services/switchboard/cmd/switchboard")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	b.printf("devproc: built %s in %s\n", bin, time.Since(buildStart).Round(time.Millisecond))
	data := filepath.Join(dir, "data")

	cold, err := startDev(ctx, bin, data)
	if err != nil {
		return fmt.Errorf("cold start: %w", err)
	}
	b.printf("  cold start: /readyz 200 after %s (process says %s)\n", cold.ready.Round(time.Millisecond), cold.selfReported())
	if err := cold.stop(); err != nil {
		return fmt.Errorf("stop after cold start: %w", err)
	}
	b.printf("  cold stop (SIGTERM): exited after %s\n", cold.stopped.Round(time.Millisecond))

	warm, err := startDev(ctx, bin, data)
	if err != nil {
		return fmt.Errorf("warm start: %w", err)
	}
	defer warm.kill()
	b.printf("  warm start: /readyz 200 after %s (process says %s)\n", warm.ready.Round(time.Millisecond), warm.selfReported())
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	rss, hwm, err := procMem(warm.cmd.Process.Pid)
	if err != nil {
		return err
	}
	b.printf("  idle after 3s: VmRSS %.1f MB (VmHWM %.1f MB)\n", rss, hwm)
	if err := warm.stop(); err != nil {
		return fmt.Errorf("stop after warm start: %w", err)
	}
	b.printf("  warm stop (SIGTERM): exited after %s\n", warm.stopped.Round(time.Millisecond))

	verdict := func(ok bool) string {
		if ok {
			return "meets"
		}
		return "BELOW"
	}
	b.summary = append(b.summary,
		fmt.Sprintf("%-28s %8s until /readyz 200 (target < 1s: %s; cold start %s)",
			"dev warm start", warm.ready.Round(time.Millisecond), verdict(warm.ready < time.Second), cold.ready.Round(time.Millisecond)),
		fmt.Sprintf("%-28s %8.1f MB VmRSS after 3s idle (target ≤ 80 MB: %s)", "dev idle RSS", rss, verdict(rss <= 80)),
	)
	return nil
}

type devProc struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	exited  chan error
	ready   time.Duration
	stopped time.Duration
}

// startDev starts `switchboard dev` on free ports and waits (at most 30s)
// until /readyz answers 200.
func startDev(ctx context.Context, bin, data string) (*devProc, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &devProc{stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "dev", "--data-dir", data, "--http-addr", httpAddr, "--nats-addr", natsAddr, "--examples", "/nonexistent")
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "SWITCHBOARD_LOG_LEVEL=info")
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- p.cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + httpAddr + "/readyz"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.ready = time.Since(start)
				return p, nil
			}
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("switchboard dev exited: %v\n%s", err, p.stderr.String())
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			p.kill()
			return nil, fmt.Errorf("not ready after 30s\n%s", p.stderr.String())
		}
	}
}

// selfReported is the startup duration the process logs with "ready".
func (p *devProc) selfReported() string {
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var rec struct {
			Msg     string `json:"msg"`
			Startup string `json:"startup"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "ready" && rec.Startup != "" {
			return "startup=" + rec.Startup
		}
	}
	return "no ready log line"
}

// stop sends SIGTERM and waits at most 15s before killing.
func (p *devProc) stop() error {
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-p.exited:
		p.stopped = time.Since(start)
		p.exited <- err // for kill()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	case <-time.After(15 * time.Second):
		p.kill()
		return errors.New("still running 15s after SIGTERM; killed")
	}
}

// kill ends the process if it still runs.
func (p *devProc) kill() {
	select {
	case err := <-p.exited:
		p.exited <- err
	default:
		_ = p.cmd.Process.Kill()
		p.exited <- <-p.exited
	}
}

func procMem(pid int) (rssMB, hwmMB float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rssMB = kb / 1024
		case "VmHWM:":
			hwmMB = kb / 1024
		}
	}
	if rssMB == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rssMB, hwmMB, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// repoRoot is dir, or the nearest parent of the working directory holding
// go.work.
func repoRoot(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s; pass -repo", wd)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// procCPU is the CPU time (user + system) process pid has used, from
// /proc/<pid>/stat (clock ticks of 1/100 s, the Linux USER_HZ).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis. utime and stime are fields 14
	// and 15, so the 12th and 13th after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
