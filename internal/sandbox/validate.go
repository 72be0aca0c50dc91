package sandbox

import (
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Input limits, documented in docs/protocol.md.
const (
	MaxNameLen     = 128
	MaxExpiry      = 7 * 24 * time.Hour
	MaxEnvVars     = 256
	MaxEnvValueLen = 32 * 1024
	MaxCommandLen  = 256 * 1024
	MaxArgs        = 4096
	DefaultTimeout = 60 * time.Second
	MaxTimeout     = 24 * time.Hour
	maxEnvNameLen  = 256
	maxCwdLen      = 4096
	maxResultLines = 10_000
	maxResultBytes = 10 << 20
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

func validateCreate(o CreateOptions) error {
	if o.TemplateID == "" {
		return invalid("templateId is required")
	}
	if len(o.Name) > MaxNameLen {
		return invalid("name is %d bytes long; at most %d are allowed", len(o.Name), MaxNameLen)
	}
	if !utf8.ValidString(o.Name) || strings.ContainsFunc(o.Name, isControl) {
		return invalid("name must be valid UTF-8 without control characters")
	}
	if o.Expiry < 0 {
		return invalid("expiryTime must not be negative, got %d ms", o.Expiry.Milliseconds())
	}
	if o.Expiry > MaxExpiry {
		return invalid("expiryTime must be at most %d ms (7 days), got %d ms", MaxExpiry.Milliseconds(), o.Expiry.Milliseconds())
	}
	return validateEnv("initialEnvVars", o.Env)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validateEnv checks names ([A-Za-z_][A-Za-z0-9_]*) and values (no NUL).
func validateEnv(field string, env map[string]string) error {
	if len(env) > MaxEnvVars {
		return invalid("%s has %d variables; at most %d are allowed", field, len(env), MaxEnvVars)
	}
	for k, v := range env {
		if !validEnvName(k) {
			return invalid("%s: variable name %q must match [A-Za-z_][A-Za-z0-9_]* (no '=', NUL or spaces)", field, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return invalid("%s.%s: value must not contain NUL", field, k)
		}
		if len(v) > MaxEnvValueLen {
			return invalid("%s.%s: value is %d bytes; at most %d are allowed", field, k, len(v), MaxEnvValueLen)
		}
	}
	return nil
}

func validEnvName(k string) bool {
	if k == "" || len(k) > maxEnvNameLen {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func validateCommand(r CommandRequest) error {
	switch {
	case r.Command == "" && len(r.Args) == 0:
		return invalid("command is required (or args)")
	case r.Command != "" && len(r.Args) > 0:
		return invalid("give either command or args, not both")
	case len(r.Command) > MaxCommandLen:
		return invalid("command is %d bytes; at most %d are allowed", len(r.Command), MaxCommandLen)
	case strings.IndexByte(r.Command, 0) >= 0:
		return invalid("command must not contain NUL")
	case len(r.Args) > MaxArgs:
		return invalid("args has %d entries; at most %d are allowed", len(r.Args), MaxArgs)
	}
	if len(r.Args) > 0 && r.Args[0] == "" {
		return invalid("args[0] (the program) must not be empty")
	}
	for i, a := range r.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return invalid("args[%d] must not contain NUL", i)
		}
	}
	if r.Cwd != "" {
		if !path.IsAbs(r.Cwd) || len(r.Cwd) > maxCwdLen || strings.IndexByte(r.Cwd, 0) >= 0 {
			return invalid("cwd must be an absolute path, got %q", r.Cwd)
		}
	}
	if r.Timeout < 0 {
		return invalid("timeoutMs must not be negative, got %d", r.Timeout.Milliseconds())
	}
	if r.Timeout > MaxTimeout {
		return invalid("timeoutMs must be at most %d (24 hours), got %d", MaxTimeout.Milliseconds(), r.Timeout.Milliseconds())
	}
	return validateEnv("envs", r.Env)
}
