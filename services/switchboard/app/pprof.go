package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
)

// profiler is the admin listener: /metrics and, when asked for, Go's
// runtime profiles (net/http/pprof), on an address of their own and never
// on the API's. Metrics name project ids and profiles show the process's
// insides; both are an operator's, not an API caller's, which is why the
// address is loopback unless a deployment chooses otherwise.
type profiler struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// adminOptions say what an admin listener serves.
type adminOptions struct {
	Addr    string           // "127.0.0.1:9090"
	Metrics *metrics.Metrics // /metrics when set
	Pprof   bool             // /debug/pprof/ when set
}

// startAdmin listens on o.Addr and serves what o asks for.
func startAdmin(o adminOptions) (*profiler, error) {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("/metrics", o.Metrics.Handler())
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	p := &profiler{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: httpx.DefaultReadHeaderTimeout}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// startProfiler serves only the profiles on addr (SWITCHBOARD_PPROF_ADDR,
// kept for deployments that set it).
func startProfiler(addr string) (*profiler, error) {
	return startAdmin(adminOptions{Addr: addr, Pprof: true})
}

func (p *profiler) addr() string {
	if p == nil {
		return ""
	}
	return p.ln.Addr().String()
}

func (p *profiler) stop(ctx context.Context) error {
	if p == nil {
		return nil
	}
	err := p.srv.Shutdown(ctx)
	<-p.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
