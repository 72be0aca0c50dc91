// Package sdbx is the Go client of an sdbx server: it creates sandboxes
// from templates, runs commands and code in them with live output (code in
// persistent interpreters whose state survives between runs), moves files
// in and out as streams, and deletes them.
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
//
//		// Code runs in the sandbox's default context: state survives.
//		if _, err := client.RunCode(ctx, sb.ID, "x = 10 + 20"); err != nil {
//			log.Fatal(err)
//		}
//		out, err := client.RunCode(ctx, sb.ID, `print(f"Result: {x}")`)
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(out.Execution.Logs.Stdout) // [Result: 30]
//	}
//
// # Transport
//
// The client speaks the HTTP JSON API under /v1 (docs/protocol.md). The
// output of commands, code and batches is streamed as NDJSON, so callbacks
// (OnStdout, OnStderr, OnResult, OnError) see each event as it is
// produced, in order, and all of them before the call returns. File
// contents travel raw and are streamed both ways (WriteFile reads an
// io.Reader as it sends, ReadFile returns a reader of the response).
//
// # Code
//
// RunCode runs code in a code context, a persistent interpreter (Python or
// JavaScript): without InContext, in the sandbox's default context of the
// language. A raised exception is not an error of the call: it is in
// Execution.Error (and streamed to OnError). Rich values (the trailing
// expression, display(...), matplotlib figures) are Results with one
// field per MIME type (PNG and JPEG as base64). CreateContext makes
// further contexts with their own working directory and environment;
// RunBatch runs many pieces of code at once.
//
// # Errors
//
// Every failure matches one kind sentinel with errors.Is (ErrNotFound,
// ErrInvalidArgument, ErrUnauthenticated, ErrPermissionDenied,
// ErrRateLimited, ErrResourceExhausted, ErrTimeout, ErrConflict,
// ErrUnavailable, ErrInternal) and has one of these concrete types, for
// errors.As:
//
//   - *SandboxError: an operation on a sandbox (its commands, code,
//     contexts and files included) was refused for not_found, conflict or
//     invalid_argument (the message names the field), or a write found
//     the sandbox's disk full (resource_exhausted: delete files, do not
//     retry);
//   - *TimeoutError: a command or code ran past its timeout (for code the
//     message says whether the context's state was kept), or the call's
//     deadline passed;
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
// Calls that are safe to repeat (GET and DELETE: getting and listing,
// deleting, ReadFile before its transfer starts) are retried after a
// connection failure, a 503 or a 429, with exponential backoff
// (Config.MaxRetries, Config.RetryDelay). Creating a sandbox or a context,
// running a command, code or a batch, and writing a file are never
// repeated automatically.
package sdbx
