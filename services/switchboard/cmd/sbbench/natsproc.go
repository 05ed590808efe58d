package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/broker"
)

// natsServer is the NATS server a scenario runs against: an in-process one
// (broker.Embedded) or a stock nats-server process.
type natsServer interface {
	ClientURL() string
	Connect(name string) (*nats.Conn, error)
	Shutdown()
}

// natsProc is a stock `nats-server -js` process, built from the nats-server
// module this repository depends on: the server production runs, with the Go
// runtime settings of its own binary (GOGC 100, no memory limit) rather than
// those of the process hosting an embedded one, and its own CPU and RSS.
type natsProc struct {
	cmd *exec.Cmd
	url string
	// profAddr is the server's pprof listener (--profile).
	profAddr string
	exited   chan error
	log      *lockedBuffer
}

// startNATSProc builds nats-server into dir and starts it with JetStream
// storing under storeDir (an embedded server's DataDir/nats reads the same).
func startNATSProc(ctx context.Context, dir, storeDir string) (*natsProc, error) {
	bin := filepath.Join(dir, "nats-server")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	prof, err := freeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	_, profPort, _ := net.SplitHostPort(prof)
	p := &natsProc{url: "nats://" + addr, profAddr: prof, exited: make(chan error, 1), log: &lockedBuffer{}}
	p.cmd = exec.Command(bin, "-js", "-sd", storeDir, "-a", host, "-p", port, "-n", "switchboard", "--profile", profPort)
	// The environment's GOGC/GOMEMLIMIT are for Switchboard's processes.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- p.cmd.Wait() }()
	// A store of millions of keys takes a while to load.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		nc, err := nats.Connect(p.url, nats.Timeout(time.Second))
		if err == nil {
			js, jerr := nc.JetStream()
			if jerr == nil {
				if _, jerr = js.AccountInfo(); jerr == nil {
					nc.Close()
					return p, nil
				}
			}
			nc.Close()
			err = jerr
		}
		select {
		case werr := <-p.exited:
			return nil, fmt.Errorf("nats-server exited: %v\n%s", werr, p.log.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Shutdown()
			return nil, errors.Join(errors.New("nats-server not ready after 5 minutes"), err)
		}
	}
}

func (p *natsProc) ClientURL() string { return p.url }

func (p *natsProc) Connect(name string) (*nats.Conn, error) { return broker.Connect(p.url, name) }

func (p *natsProc) pid() int { return p.cmd.Process.Pid }

// Shutdown stops the server (it flushes and exits) and waits.
func (p *natsProc) Shutdown() { interruptAndWait(p.cmd, p.exited, 30*time.Second) }

// interruptAndWait sends cmd SIGINT and waits until it has exited (exited
// is its Wait's result), killing it after grace.
func interruptAndWait(cmd *exec.Cmd, exited <-chan error, grace time.Duration) {
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}
