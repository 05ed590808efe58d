// Package deploy holds the deployment files (Dockerfile, compose override,
// kustomize base and overlays) and the test that renders and checks them.
//
// It is a module of its own so that kustomize and the Kubernetes API types,
// which only the test needs, never enter the switchboard binary's module
// graph (deploy/Dockerfile builds services/switchboard with GOWORK=off).
package deploy
