package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// errMissingKey is returned when a request carries no API key at all.
var errMissingKey = fmt.Errorf("no API key given: %w", errdefs.ErrUnauthenticated)

// invalidf returns an invalid_argument error; the message should name the
// field.
func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// wireError is the error object both transports send:
// {"code", "message", "retryAfterMs"?}.
type wireError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs *int64 `json:"retryAfterMs,omitempty"`
}

// toWireError maps err to its wire form. Internal errors keep their text
// out of the message (errdefs.Message). rate_limited always carries
// retryAfterMs (0 when the error does not say how long to wait).
func toWireError(err error) wireError {
	we := wireError{Code: errdefs.Code(err), Message: errdefs.Message(err)}
	if we.Code == "rate_limited" {
		ms := retryAfter(err).Milliseconds()
		if time.Duration(ms)*time.Millisecond < retryAfter(err) {
			ms++ // round up: never tell a client to come back too early
		}
		we.RetryAfterMs = &ms
	}
	return we
}

// retryAfter is how long a rate-limited caller should wait, or 0 when err
// does not say.
func retryAfter(err error) time.Duration {
	var rl *errdefs.RateLimitError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter
	}
	return 0
}

// retryAfterSeconds is the HTTP Retry-After value: whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if time.Duration(s)*time.Second < d {
		s++
	}
	return s
}

// httpStatus maps a wire code to its HTTP status (docs/protocol.md).
func httpStatus(code string) int {
	switch code {
	case "invalid_argument":
		return http.StatusBadRequest
	case "unauthenticated":
		return http.StatusUnauthorized
	case "permission_denied":
		return http.StatusForbidden
	case "not_found":
		return http.StatusNotFound
	case "timeout":
		return http.StatusRequestTimeout
	case "conflict":
		return http.StatusConflict
	case "rate_limited":
		return http.StatusTooManyRequests
	case "resource_exhausted":
		return http.StatusInsufficientStorage
	case "unavailable":
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// logError records errors a client cannot act on: internal errors (whose
// text the client never sees) and unavailable ones. op names the
// operation ("sandbox:create", "POST /v1/sandboxes").
func (h *Handler) logError(op, sandboxID string, err error) {
	attrs := []any{slog.String("op", op), slog.Any("err", err)}
	if sandboxID != "" {
		attrs = append(attrs, slog.String("sandbox_id", sandboxID))
	}
	switch errdefs.Code(err) {
	case "internal":
		h.logger.Error("request failed", attrs...)
	case "unavailable":
		h.logger.Warn("request failed", attrs...)
	default:
		h.logger.Debug("request refused", attrs...)
	}
}
