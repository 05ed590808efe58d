// Package e2e holds end-to-end tests of the composed system.
package e2e
