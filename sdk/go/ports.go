package sdbx

import (
	"net/url"
	"strconv"
	"strings"
)

// PortURL returns the URL through which the server proxies HTTP and
// WebSocket requests to port on the loopback interface of the sandbox
// (a process inside it listening on 127.0.0.1:port or 0.0.0.0:port), for
// example http://127.0.0.1:3000/v1/sandboxes/sb-x/ports/8000/. Append the
// path the process serves to it.
//
// Requests to it need the API key of the sandbox's tenant in a header,
// "Authorization: Bearer <key>" or "X-API-Key: <key>" (never in the URL);
// the server removes the header before forwarding. A port nothing listens
// on is answered with 502 and the error code "unavailable".
func (c *Client) PortURL(sandboxID string, port int) string {
	u := *c.base
	raw := strings.TrimSuffix(c.base.EscapedPath(), "/") +
		"/v1/sandboxes/" + url.PathEscape(sandboxID) + "/ports/" + strconv.Itoa(port) + "/"
	path, err := url.PathUnescape(raw)
	if err != nil {
		path = raw
	}
	u.Path, u.RawPath = path, raw
	return u.String()
}
