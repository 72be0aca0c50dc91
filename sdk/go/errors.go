package sdbx

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Error kinds. Every error the Client returns for a failed operation
// matches exactly one of them with errors.Is, whatever its concrete type:
//
//	if errors.Is(err, sdbx.ErrNotFound) { ... }
//
// Errors of the caller's own context (context.Canceled) match none of them.
var (
	// ErrNotFound: no such sandbox or template (or it belongs to another tenant).
	ErrNotFound = errors.New("sdbx: not found")
	// ErrInvalidArgument: the request was malformed; the message names the field.
	ErrInvalidArgument = errors.New("sdbx: invalid argument")
	// ErrUnauthenticated: no API key, or one the server does not know.
	ErrUnauthenticated = errors.New("sdbx: unauthenticated")
	// ErrPermissionDenied: the key is valid but may not do this.
	ErrPermissionDenied = errors.New("sdbx: permission denied")
	// ErrRateLimited: a limit was hit; see RateLimitError.RetryAfter.
	ErrRateLimited = errors.New("sdbx: rate limited")
	// ErrResourceExhausted: a write ran out of space: the sandbox's disk
	// quota (Resources.DiskMB) is used up, or a file system in it (a tmpfs
	// such as /tmp) is full. Retrying does not help until files are
	// deleted; it is never retried automatically.
	ErrResourceExhausted = errors.New("sdbx: resource exhausted")
	// ErrTimeout: the operation (or the command) ran past its timeout.
	ErrTimeout = errors.New("sdbx: timeout")
	// ErrConflict: the target's state forbids the operation (e.g. the
	// sandbox is not running).
	ErrConflict = errors.New("sdbx: conflict")
	// ErrUnavailable: the server (or its runtime) cannot be reached now, or
	// it is shutting down. Connection failures match it too.
	ErrUnavailable = errors.New("sdbx: unavailable")
	// ErrInternal: a server bug or host failure (details are in the server log).
	ErrInternal = errors.New("sdbx: internal error")
)

// Wire error codes (docs/protocol.md).
const (
	CodeNotFound          = "not_found"
	CodeInvalidArgument   = "invalid_argument"
	CodeUnauthenticated   = "unauthenticated"
	CodePermissionDenied  = "permission_denied"
	CodeRateLimited       = "rate_limited"
	CodeResourceExhausted = "resource_exhausted"
	CodeTimeout           = "timeout"
	CodeConflict          = "conflict"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
)

// kindOf returns the sentinel of a wire code; unknown codes are internal.
func kindOf(code string) error {
	switch code {
	case CodeNotFound:
		return ErrNotFound
	case CodeInvalidArgument:
		return ErrInvalidArgument
	case CodeUnauthenticated:
		return ErrUnauthenticated
	case CodePermissionDenied:
		return ErrPermissionDenied
	case CodeRateLimited:
		return ErrRateLimited
	case CodeResourceExhausted:
		return ErrResourceExhausted
	case CodeTimeout:
		return ErrTimeout
	case CodeConflict:
		return ErrConflict
	case CodeUnavailable:
		return ErrUnavailable
	default:
		return ErrInternal
	}
}

// statusCode returns the HTTP status the protocol assigns to a wire code.
func statusCode(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodePermissionDenied:
		return http.StatusForbidden
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeResourceExhausted:
		return http.StatusInsufficientStorage
	case CodeTimeout:
		return http.StatusRequestTimeout
	case CodeConflict:
		return http.StatusConflict
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// codeOfStatus guesses the wire code of an HTTP status whose body carried
// none (a proxy's error page, say).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusInsufficientStorage:
		return CodeResourceExhausted
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return CodeTimeout
	case http.StatusConflict:
		return CodeConflict
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// Error is an error reported by the server (or, for ConnectionError and
// TimeoutError, by the client on its behalf). Every typed error of this
// package unwraps to an *Error, so errors.As(err, &e) with e an *Error works
// on all of them.
type Error struct {
	// Code is the wire code: "not_found", "invalid_argument", ...
	Code string
	// Message names the problem (for bad input: the field).
	Message string
	// StatusCode is the HTTP status of the response. For an error reported
	// inside a stream (after the 200 was sent) it is the status the protocol
	// assigns to Code; for errors found by the client it is 0.
	StatusCode int
}

func (e *Error) Error() string { return message(e.Code, e.Message) }

// Is makes errors.Is(err, ErrNotFound) (and the other kinds) work.
func (e *Error) Is(target error) bool { return target == kindOf(e.Code) }

func message(code, msg string) string {
	if msg == "" {
		return code
	}
	return msg
}

// SandboxError is returned by operations on a sandbox (create, get, delete,
// run a command or code, batches, contexts of a sandbox, files) when the
// server refuses them for not_found, conflict or invalid_argument, or
// when a write found the sandbox's disk full (resource_exhausted).
type SandboxError struct {
	Code       string
	Message    string
	StatusCode int
	// SandboxID is the sandbox the operation was about ("" for create).
	SandboxID string
}

func (e *SandboxError) Error() string { return message(e.Code, e.Message) }

// Unwrap returns the *Error form, which matches the kind sentinel.
func (e *SandboxError) Unwrap() error {
	return &Error{Code: e.Code, Message: e.Message, StatusCode: e.StatusCode}
}

// TimeoutError is returned when a command ran past its timeout (the server
// killed it), when code ran past its timeout (the server interrupted it;
// Message says whether the context's state was kept), or when the client's
// own deadline for a call passed. Code is always "timeout".
type TimeoutError struct {
	Code       string
	Message    string
	StatusCode int
	cause      error
}

func (e *TimeoutError) Error() string { return message(e.Code, e.Message) }

// Unwrap returns the *Error form and, for a client-side deadline,
// context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() []error {
	errs := []error{&Error{Code: e.Code, Message: e.Message, StatusCode: e.StatusCode}}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// RateLimitError is returned when the server refused a call because a limit
// was hit. Calls that are safe to repeat (GET, DELETE) are retried
// automatically first; this error is what is left when retries ran out.
type RateLimitError struct {
	Code       string
	Message    string
	StatusCode int
	// RetryAfter is how long the server asked the client to wait.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return message(e.Code, e.Message) }

// Unwrap returns the *Error form, which matches ErrRateLimited.
func (e *RateLimitError) Unwrap() error {
	return &Error{Code: e.Code, Message: e.Message, StatusCode: e.StatusCode}
}

// ConnectionError is returned when the server could not be reached or the
// connection broke before a complete response arrived. Code is always
// "unavailable"; the network error is available through errors.As/Is.
type ConnectionError struct {
	Code    string
	Message string
	cause   error
}

func (e *ConnectionError) Error() string { return message(e.Code, e.Message) }

// Unwrap returns the *Error form (matching ErrUnavailable) and the
// underlying network error.
func (e *ConnectionError) Unwrap() []error {
	errs := []error{&Error{Code: e.Code, Message: e.Message}}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func connectionError(op string, cause error) *ConnectionError {
	// A *url.Error repeats the method and URL; the op says it shorter.
	inner := cause
	var ue *url.Error
	if errors.As(cause, &ue) {
		inner = ue.Err
	}
	return &ConnectionError{
		Code:    CodeUnavailable,
		Message: fmt.Sprintf("%s: %v", op, inner),
		cause:   cause,
	}
}

// opKind says which typed error a server error becomes.
type opKind int

const (
	opOther   opKind = iota // health, templates, keys, delete context
	opSandbox               // everything under /v1/sandboxes
)

// apiError turns a server error into the package's typed error.
func apiError(kind opKind, sandboxID string, we wireError, status int, retryAfter time.Duration) error {
	code := we.Code
	if code == "" {
		code = codeOfStatus(status)
	}
	switch {
	case code == CodeTimeout:
		return &TimeoutError{Code: code, Message: we.Message, StatusCode: status}
	case code == CodeRateLimited:
		if we.RetryAfterMs > 0 {
			retryAfter = time.Duration(we.RetryAfterMs) * time.Millisecond
		}
		return &RateLimitError{Code: code, Message: we.Message, StatusCode: status, RetryAfter: retryAfter}
	case kind == opSandbox && (code == CodeNotFound || code == CodeConflict || code == CodeInvalidArgument || code == CodeResourceExhausted):
		return &SandboxError{Code: code, Message: we.Message, StatusCode: status, SandboxID: sandboxID}
	default:
		return &Error{Code: code, Message: we.Message, StatusCode: status}
	}
}

// wireError is the "error" object of an HTTP error body or stream event.
type wireError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

// streamError is the error of a stream's {"type":"error"} line; we is its
// error object (nil when the line had none).
func streamError(r *request, we *wireError) error {
	w := wireError{Code: CodeInternal, Message: r.op() + ": error event without details"}
	if we != nil {
		w = *we
	}
	return apiError(r.kind, r.sandboxID, w, statusCode(w.Code), 0)
}
