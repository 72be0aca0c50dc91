// Package sdbx is the Go client of an sdbx server: it creates sandboxes
// from templates, runs commands in them with live output, and deletes them.
//
// # Getting started
//
// Start a server (as root) with a key of your choice, then run this program
// with the same key in SDBX_API_KEY:
//
//	SDBX_API_KEY=secret sdbx serve --addr 127.0.0.1:3000
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//		"os"
//
//		sdbx "github.com/sdbx/sdbx/sdk/go"
//	)
//
//	func main() {
//		ctx := context.Background()
//		client, err := sdbx.New(sdbx.Config{
//			ServerURL: "http://127.0.0.1:3000",
//			APIKey:    os.Getenv("SDBX_API_KEY"),
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//		sb, err := client.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer client.DeleteSandbox(context.WithoutCancel(ctx), sb.ID)
//
//		res, err := client.RunCommand(ctx, sb.ID,
//			sdbx.Command{Args: []string{"python3", "-c", "print(6*7)"}},
//			sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Println("live:", l.Line) }),
//		)
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println("exit code", res.ExitCode, "stdout", res.Stdout)
//	}
//
// # Transport
//
// The client speaks the HTTP JSON API under /v1 (docs/protocol.md). Command
// output is streamed as NDJSON, so callbacks see each line as it is
// produced, in order, and all of them before RunCommand returns.
//
// # Errors
//
// Every failure matches one kind sentinel with errors.Is (ErrNotFound,
// ErrInvalidArgument, ErrUnauthenticated, ErrPermissionDenied,
// ErrRateLimited, ErrTimeout, ErrConflict, ErrUnavailable, ErrInternal) and
// has one of these concrete types, for errors.As:
//
//   - *SandboxError: a sandbox operation was refused for not_found,
//     conflict or invalid_argument (the message names the field);
//   - *TimeoutError: a command ran past its timeout, or the call's deadline
//     passed;
//   - *RateLimitError: a limit was hit; RetryAfter says how long to wait;
//   - *ConnectionError: the server could not be reached or the connection
//     broke;
//   - *Error: everything else (and the form every type above unwraps to).
//
// The caller's own cancellation is returned as an error wrapping
// context.Canceled.
//
// # Retries
//
// Calls that are safe to repeat (GET and DELETE) are retried after a
// connection failure, a 503 or a 429, with exponential backoff
// (Config.MaxRetries, Config.RetryDelay). Creating a sandbox and running a
// command are never repeated automatically.
package sdbx
