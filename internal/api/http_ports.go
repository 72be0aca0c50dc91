package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// Port exposure: any request to /v1/sandboxes/{id}/ports/{port}/{path...}
// is proxied, with the prefix stripped, to port on the sandbox's loopback
// interface (see docs/protocol.md, "Ports"). The API key is taken from the
// headers only (Authorization: Bearer or X-API-Key) and is removed before
// the request is forwarded. WebSocket upgrades pass through.

// portDialTimeout bounds the dial of a port through the sandbox's agent.
const portDialTimeout = 15 * time.Second

// proxyPort serves /v1/sandboxes/{id}/ports/{port}/{path...}.
func (h *Handler) proxyPort(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || port < 1 || port > 65535 {
		h.writeError(w, r, id, invalidf("port %q: must be a number between 1 and 65535", r.PathValue("port")))
		return
	}
	// The first connection is dialled here, so that a missing sandbox or
	// a port nothing listens on is answered before anything is proxied.
	dial := func(ctx context.Context) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, portDialTimeout)
		defer cancel()
		return h.svc.DialPort(ctx, p.Tenant, id, port)
	}
	first, err := dial(r.Context())
	if err != nil {
		h.writePortError(w, r, id, err)
		return
	}
	var once sync.Once
	transport := &http.Transport{
		// One tunnel per upstream connection, never reused by another
		// request (the transport lives for this request only).
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var c net.Conn
			once.Do(func() { c, first = first, nil })
			if c != nil {
				return c, nil
			}
			return dial(ctx)
		},
		MaxResponseHeaderBytes: 1 << 20,
	}
	defer func() {
		once.Do(func() {
			if first != nil {
				first.Close()
			}
		})
		transport.CloseIdleConnections()
	}()
	prefix, rest := splitPortPath(r.URL.EscapedPath())
	proxy := &httputil.ReverseProxy{
		Transport: transport,
		// Copy failures after the answer started (a client or process that
		// went away) are routine.
		ErrorLog: slog.NewLogLogger(h.logger.Handler(), slog.LevelDebug),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = net.JoinHostPort("localhost", strconv.Itoa(port))
			pr.Out.Host = ""
			pr.Out.URL.RawPath = rest
			pr.Out.URL.Path, _ = url.PathUnescape(rest)
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("X-API-Key")
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Prefix", prefix)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away: nobody reads an answer.
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			if errdefs.Code(err) == "internal" {
				err = fmt.Errorf("port %d in sandbox %s: the upstream failed: %v: %w", port, id, err, errdefs.ErrUnavailable)
			}
			h.writePortError(w, r, id, err)
		},
	}
	proxy.ServeHTTP(w, r)
}

// writePortError answers a failed dial or proxying: 502 when the port
// cannot be reached, the error's own status otherwise.
func (h *Handler) writePortError(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errdefs.Code(err) == "unavailable" {
		h.logError(opName(r), id, err)
		h.writeErrorStatus(w, http.StatusBadGateway, err)
		return
	}
	h.writeError(w, r, id, err)
}

// splitPortPath splits an escaped path /v1/sandboxes/{id}/ports/{port}/rest
// into the prefix and "/rest".
func splitPortPath(escaped string) (prefix, rest string) {
	// "", "v1", "sandboxes", id, "ports", port, rest
	parts := strings.SplitN(escaped, "/", 7)
	if len(parts) < 7 {
		return escaped, "/"
	}
	return strings.Join(parts[:6], "/"), "/" + parts[6]
}
