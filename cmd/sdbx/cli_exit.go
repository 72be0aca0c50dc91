package main

import (
	"context"
	"errors"
	"flag"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// Exit codes of the CLI verbs when sdbx itself fails (exec and run
// otherwise exit with the command's own code). docs/cli.md lists them.
const (
	exitOK          = 0
	exitError       = 1   // anything else: internal, conflict, permission, unexpected
	exitUsage       = 2   // bad command line, or the server refused the input (invalid_argument)
	exitNotFound    = 3   // no such sandbox or template
	exitAuth        = 4   // unauthenticated or permission_denied
	exitUnavailable = 5   // server unreachable, connection lost, or unavailable
	exitRateLimited = 6   // rate_limited
	exitNoSpace     = 7   // resource_exhausted: the sandbox's disk quota or a file system is full
	exitTimeout     = 124 // the command (or the call) ran past its timeout
	exitInterrupted = 130 // interrupted by Ctrl-C / SIGTERM
)

// exitCode maps an error to the CLI's exit code. It is the one place where
// error kinds become exit codes.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, sdbx.ErrTimeout):
		return exitTimeout
	case errors.Is(err, sdbx.ErrInvalidArgument):
		return exitUsage
	case errors.Is(err, sdbx.ErrNotFound):
		return exitNotFound
	case errors.Is(err, sdbx.ErrUnauthenticated), errors.Is(err, sdbx.ErrPermissionDenied):
		return exitAuth
	case errors.Is(err, sdbx.ErrUnavailable):
		return exitUnavailable
	case errors.Is(err, sdbx.ErrRateLimited):
		return exitRateLimited
	case errors.Is(err, sdbx.ErrResourceExhausted):
		return exitNoSpace
	default:
		return exitError
	}
}

// commandExitCode turns a command's exit code into a process exit code
// (0-255): codes out of that range (a server reporting a signal as a
// negative number, say) become 1 or 255.
func commandExitCode(code int) int {
	switch {
	case code < 0:
		return exitError
	case code > 255:
		return 255
	default:
		return code
	}
}
