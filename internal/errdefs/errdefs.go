// Package errdefs defines the fixed set of error kinds that sdbx returns.
//
// Every error that crosses a package boundary wraps exactly one of these
// sentinels with %w, so callers check kinds with errors.Is and transports
// map them once (HTTP status, Socket.IO ack code, CLI exit code).
package errdefs

import (
	"errors"
	"time"
)

var (
	// ErrNotFound is returned when a sandbox, template, context, key or file
	// does not exist (or belongs to another tenant).
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument is returned when input is malformed; the message
	// names the offending field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnauthenticated is returned when no API key or an unknown one is given.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied is returned when the key is valid but may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrRateLimited is returned when a rate or a count limit (requests,
	// sandboxes or runs per key, watches, transfers) is hit: the same call
	// may pass later, after RateLimitError.RetryAfter or once a slot frees.
	ErrRateLimited = errors.New("rate limited")
	// ErrResourceExhausted is returned when a write ran out of space: the
	// sandbox's disk quota (resources.diskMb, EDQUOT) is used up, or a file
	// system is full (ENOSPC: a tmpfs such as /tmp, or the host's disk).
	// Retrying does not help until files are deleted.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrTimeout is returned when an operation ran past its deadline.
	ErrTimeout = errors.New("timeout")
	// ErrConflict is returned when the target is in a state that forbids the
	// operation (e.g. exec in a terminated sandbox, duplicate name).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is returned when a dependency (runtime, agent) cannot be
	// reached right now, or the server is shutting down.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal is returned for bugs and unexpected host failures.
	ErrInternal = errors.New("internal")
)

// kinds lists the sentinels in the order Code checks them, with their codes.
var kinds = []struct {
	err  error
	code string
}{
	{ErrNotFound, "not_found"},
	{ErrInvalidArgument, "invalid_argument"},
	{ErrUnauthenticated, "unauthenticated"},
	{ErrPermissionDenied, "permission_denied"},
	{ErrRateLimited, "rate_limited"},
	{ErrResourceExhausted, "resource_exhausted"},
	{ErrTimeout, "timeout"},
	{ErrConflict, "conflict"},
	{ErrUnavailable, "unavailable"},
	{ErrInternal, "internal"},
}

// Code returns the wire code of err's kind ("not_found", ...), or "internal"
// when err wraps none of the sentinels.
func Code(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.code
		}
	}
	return "internal"
}

// FromCode returns the sentinel for a wire code, or ErrInternal for an
// unknown one.
func FromCode(code string) error {
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return ErrInternal
}

// RateLimitError carries how long the caller should wait. It wraps
// ErrRateLimited.
type RateLimitError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// Message returns the text to show a client. Internal errors are reduced
// to a generic message so host paths and other internals never leak.
func Message(err error) string {
	if Code(err) == "internal" {
		return "internal error"
	}
	return err.Error()
}
