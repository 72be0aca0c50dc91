package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// defaultServerURL is where the CLI looks for a server when neither --url
// nor SDBX_URL says otherwise.
const defaultServerURL = "http://127.0.0.1:3000"

// Retry policy of the CLI's idempotent calls (GET, DELETE): 0.25s, 0.5s.
const (
	cliMaxRetries = 2
	cliRetryDelay = 250 * time.Millisecond
)

// cliEnv is the part of the environment the CLI verbs read.
type cliEnv struct {
	URL    string // SDBX_URL
	APIKey string // SDBX_API_KEY
}

// cliEnvironment reads the CLI's environment variables. It is the only
// place the CLI verbs look at the environment.
func cliEnvironment() cliEnv {
	return cliEnv{URL: os.Getenv("SDBX_URL"), APIKey: os.Getenv("SDBX_API_KEY")}
}

// connFlags are the flags every CLI verb takes to reach a server.
type connFlags struct {
	url    string
	apiKey string
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	cf := &connFlags{}
	// The defaults are resolved after parsing so that -h never prints the
	// key taken from the environment.
	fs.StringVar(&cf.url, "url", "", "server URL (env SDBX_URL, default "+defaultServerURL+")")
	fs.StringVar(&cf.apiKey, "api-key", "", "API key (env SDBX_API_KEY)")
	return cf
}

// resolve applies the precedence flag > environment > default.
func (cf *connFlags) resolve(env cliEnv) (url, apiKey string) {
	url, apiKey = cf.url, cf.apiKey
	if url == "" {
		url = env.URL
	}
	if url == "" {
		url = defaultServerURL
	}
	if apiKey == "" {
		apiKey = env.APIKey
	}
	return url, apiKey
}

// client returns an SDK client for the resolved connection settings.
func (cf *connFlags) client(env cliEnv) (*sdbx.Client, error) {
	url, key := cf.resolve(env)
	// A person waits at the terminal: retry briefly, then say what failed.
	c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key, MaxRetries: cliMaxRetries, RetryDelay: cliRetryDelay})
	if err != nil {
		msg := err.Error()
		var e *sdbx.Error
		if errors.As(err, &e) {
			msg = e.Message
		}
		// The SDK names its Config fields; name the flags instead.
		if rest, ok := strings.CutPrefix(msg, "ServerURL"); ok {
			return nil, usagef("--url%s", rest)
		}
		if rest, ok := strings.CutPrefix(msg, "APIKey"); ok {
			return nil, usagef("--api-key%s", rest)
		}
		return nil, usagef("--url %q: %s", url, msg)
	}
	return c, nil
}

// usageError is a mistake in the command line; it exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}
