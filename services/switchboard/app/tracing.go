package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/tracing"
)

// The standard OpenTelemetry variables this process reads itself. The OTLP
// exporters read the rest of theirs (OTEL_EXPORTER_OTLP_ENDPOINT,
// _HEADERS, _TIMEOUT, the _TRACES_ variants …), the SDK its sampler
// (OTEL_TRACES_SAMPLER, _ARG) and batching (OTEL_BSP_*), and the resource
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
const (
	EnvTracesExporter     = "OTEL_TRACES_EXPORTER"
	EnvOTLPProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvOTLPTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	defaultTracingService = "switchboard"
	protocolHTTPProtobuf  = "http/protobuf"
	protocolGRPC          = "grpc"
	tracesExporterNone    = "none"
	tracesExporterOTLP    = "otlp"
	tracesExporterConsole = "console"
	defaultTracesExporter = tracesExporterNone
	roleAttribute         = attribute.Key("switchboard.roles")
)

// tracerFromEnv builds the process's TracerProvider from the OTEL_*
// environment. OTEL_TRACES_EXPORTER defaults to "none" here (the spec's
// default is "otlp"): a self-hosted install has no collector unless it says
// so, and exporting to a default localhost:4318 nobody listens on would
// only log errors. With "none" it returns nil, so the roles get no-op
// tracers and pay nothing; shutdown is then a no-op too.
//
// getenv is os.Getenv outside tests.
func tracerFromEnv(ctx context.Context, getenv func(string) string, roles []string) (*sdktrace.TracerProvider, error) {
	names := strings.Split(getenv(EnvTracesExporter), ",")
	var exporters []sdktrace.SpanExporter
	for _, name := range names {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			name = defaultTracesExporter
		}
		var exp sdktrace.SpanExporter
		var err error
		switch name {
		case tracesExporterNone:
			continue
		case tracesExporterOTLP:
			exp, err = otlpExporter(ctx, getenv)
		case tracesExporterConsole:
			exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		default:
			err = fmt.Errorf("%s=%q: not an exporter this build has (none, otlp, console)", EnvTracesExporter, name)
		}
		if err != nil {
			for _, e := range exporters {
				_ = e.Shutdown(ctx)
			}
			return nil, fmt.Errorf("tracing: %w", err)
		}
		exporters = append(exporters, exp)
	}
	if len(exporters) == 0 {
		return nil, nil
	}
	// service.name defaults to "switchboard"; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES (read by WithFromEnv, which comes later and
	// wins) override it. The roles a process runs tell a role-per-pod
	// deployment's processes apart without a service name per role.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultTracingService), roleAttribute.String(strings.Join(roles, ","))),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// otlpExporter is the OTLP trace exporter of the protocol the environment
// names (http/protobuf by default, as the spec recommends); it reads its
// endpoint and headers from the environment itself. It does not connect
// until it exports.
func otlpExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto := getenv(EnvOTLPTracesProtocol)
	if proto == "" {
		proto = getenv(EnvOTLPProtocol)
	}
	switch proto {
	case "", protocolHTTPProtobuf:
		return otlptracehttp.New(ctx)
	case protocolGRPC:
		return otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not supported (%s, %s)", proto, protocolHTTPProtobuf, protocolGRPC)
	}
}

// startTracing sets up a.Tracing: the caller's Options.TracerProvider (not
// ours to shut down), else one from the environment (shut down by
// stopTracing, after the roles, so their last spans are exported).
func (a *App) startTracing(ctx context.Context, roles []string) error {
	if a.opts.TracerProvider != nil {
		a.Tracing = a.opts.TracerProvider
		return nil
	}
	tp, err := tracerFromEnv(ctx, os.Getenv, roles)
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if tp != nil {
		a.Tracing, a.ownTracing = tp, tp
	}
	return nil
}

// stopTracing flushes and stops the provider the app built.
func (a *App) stopTracing(ctx context.Context) error {
	if a.ownTracing == nil {
		return nil
	}
	tp := a.ownTracing
	a.ownTracing = nil
	if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// httpTracing is the HTTP server's span middleware; the health probes are
// left out (a span per probe every few seconds, telling nothing).
func httpTracing(tp trace.TracerProvider) echo.MiddlewareFunc {
	return tracing.Middleware(tracing.HTTPOptions{TracerProvider: tp, Skip: func(c *echo.Context) bool {
		switch c.Request().URL.Path {
		case "/healthz", "/readyz":
			return true
		}
		return false
	}})
}
