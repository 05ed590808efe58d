package service

import (
	"context"

	"github.com/labstack/echo/v5"
)

// Role is one part of Switchboard that a process can run — ingress, router,
// connection-lifecycle, history, and later webhook-receiver and scheduler.
// One composition root (services/switchboard/app) builds the roles a
// process is asked for around shared dependencies, and drives every one of
// them through this interface in the same order:
//
//  1. Start, role by role in the root's start order;
//  2. Register, once every role has started, before the shared HTTP server
//     accepts its first request;
//  3. Stop, role by role in reverse start order, after the server has
//     stopped taking requests and finished the ones in flight.
//
// Stop is called only for roles whose Start returned nil. No method is
// called concurrently with another on the same role.
type Role interface {
	// Name is the role's name, as given to `switchboard serve --role`.
	Name() string
	// Start acquires what the role needs (consumers, followers, local
	// files) and returns once the role serves: its consumers are consuming
	// and its handlers can answer. ctx bounds the start only; work started
	// here runs until Stop. A role with nothing to start returns nil.
	Start(ctx context.Context) error
	// Register mounts the role's HTTP routes on the process's one shared
	// server, next to the other roles' routes and /healthz and /readyz
	// (metrics are on the admin listener). A role without routes mounts nothing.
	Register(e *echo.Echo)
	// Stop stops the role's intake, finishes in-flight work by ctx's end
	// (abandoning what remains to JetStream redelivery), and releases what
	// Start acquired. It returns only once nothing of the role runs.
	Stop(ctx context.Context) error
}
