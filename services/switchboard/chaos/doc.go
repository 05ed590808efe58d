// Package chaos is Switchboard's crash suite: it runs the real binaries —
// `switchboard dev`, `switchboard serve --role …` and a stock nats-server,
// each built from this workspace and started with os/exec — puts a paced
// App Event load on them, kills processes with SIGKILL mid-load, restarts
// them on the same data dir, store dir and ports, and then checks what a
// listener recorded against what the callers were told and what the run
// history says:
//
//   - lost: an event answered 2xx whose run is missing, did not succeed or
//     did not deliver both of its steps;
//   - duplicate: one event (one payload id / Idempotency-Key) that ran
//     under two run ids;
//   - re-executed: a step delivered for a run after its succeeded snapshot
//     was already stored in RUN_EVENTS (a finished run ran again);
//   - retried-unfinished: a step delivered twice for a run that had not
//     finished yet — at-least-once after a crash, reported, not a failure;
//   - keys not exactly once: an accepted key without exactly one
//     succeeded run;
//   - history mismatch: the runs API disagrees with the listener.
//
// The scenarios are: kill -9 `switchboard dev` twice mid-load; kill -9
// one of two routers in split mode; kill -9 nats-server mid-load while the
// callers retry every event with an Idempotency-Key until it is accepted.
// A scenario fails when any of lost, duplicate, re-executed, keys not
// exactly once or history mismatch is non-zero. The figures are logged and
// written as JSON and markdown to a directory (SWITCHBOARD_CHAOS_OUT, or a
// new temp dir) with every process's output; docs/reliability.md records
// them.
//
// The tests are behind the `chaos` build tag rather than an environment
// switch: they build two binaries and need a few minutes of wall time, so a
// plain `go test ./...` (make test) does not even compile them, and a test
// binary that silently skips cannot be mistaken for a passing crash suite.
// `make chaos` (run by .ci/run) compiles, vets and runs them:
//
//	cd services/switchboard && go test -tags chaos -count=1 -timeout 5m ./chaos/
//
// SWITCHBOARD_CHAOS_LOAD (default 15s) sets each scenario's load duration
// and SWITCHBOARD_CHAOS_RATE (default 30) the events per second.
package chaos
