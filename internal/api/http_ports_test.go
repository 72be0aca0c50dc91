package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// upstream is a server on a host port (the fake service's ports are the
// host's): it answers with what it received, and upgrades /ws to an echo
// of raw bytes.
func upstream(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "no upgrade", http.StatusBadRequest)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			_, _ = io.Copy(conn, brw)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method":        r.Method,
			"path":          r.URL.Path,
			"rawPath":       r.URL.EscapedPath(),
			"query":         r.URL.RawQuery,
			"body":          string(body),
			"host":          r.Host,
			"authorization": r.Header.Get("Authorization"),
			"apiKey":        r.Header.Get("X-API-Key"),
			"prefix":        r.Header.Get("X-Forwarded-Prefix"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func TestHTTPPortProxy(t *testing.T) {
	e := newEnv(t)
	port := upstream(t)
	id := createSandbox(t, e)
	base := fmt.Sprintf("/v1/sandboxes/%s/ports/%d", id, port)

	for _, tc := range []struct {
		method, path, body       string
		wantPath, wantRaw, query string
	}{
		{"GET", "/", "", "/", "/", ""},
		{"GET", "/a/b%2Fc?x=1&y=%20", "", "/a/b/c", "/a/b%2Fc", "x=1&y=%20"},
		{"POST", "/submit", "payload", "/submit", "/submit", ""},
		{"DELETE", "/thing", "", "/thing", "/thing", ""},
	} {
		resp := e.do(t, tc.method, base+tc.path, keyA, tc.body)
		got := map[string]string{}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v", tc.method, tc.path, resp.StatusCode, err)
		}
		want := map[string]string{
			"method": tc.method, "path": tc.wantPath, "rawPath": tc.wantRaw, "query": tc.query,
			"body": tc.body, "host": "localhost:" + strconv.Itoa(port),
			"authorization": "", "apiKey": "", "prefix": base,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s %s: upstream saw %s=%q, want %q", tc.method, tc.path, k, got[k], v)
			}
		}
	}

	// X-API-Key authenticates too and is not forwarded either.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+base+"/k", nil)
	req.Header.Set("X-API-Key", keyA)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]string{}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got["apiKey"] != "" || got["path"] != "/k" {
		t.Fatalf("X-API-Key: %d %v %v", resp.StatusCode, got, err)
	}
}

func TestHTTPPortErrors(t *testing.T) {
	e := newEnv(t)
	port := upstream(t)
	id := createSandbox(t, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	for _, tc := range []struct {
		name, path, key string
		status          int
		code, msg       string
	}{
		{"no key", fmt.Sprintf("/v1/sandboxes/%s/ports/%d/", id, port), "", 401, "unauthenticated", ""},
		{"other tenant", fmt.Sprintf("/v1/sandboxes/%s/ports/%d/", id, port), keyB, 404, "not_found", ""},
		{"unknown sandbox", fmt.Sprintf("/v1/sandboxes/sb-nope/ports/%d/", port), keyA, 404, "not_found", ""},
		{"port not a number", fmt.Sprintf("/v1/sandboxes/%s/ports/http/", id), keyA, 400, "invalid_argument", `port "http"`},
		{"port 0", fmt.Sprintf("/v1/sandboxes/%s/ports/0/", id), keyA, 400, "invalid_argument", `port "0"`},
		{"port too large", fmt.Sprintf("/v1/sandboxes/%s/ports/65536/x", id), keyA, 400, "invalid_argument", `port "65536"`},
		{"nothing listens", fmt.Sprintf("/v1/sandboxes/%s/ports/%d/", id, closed), keyA, 502, "unavailable",
			fmt.Sprintf("nothing listens on port %d in sandbox %s", closed, id)},
	} {
		resp := e.do(t, "GET", tc.path, tc.key, "")
		code, msg := errorOf(t, decode(t, resp))
		if resp.StatusCode != tc.status || code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %s %q, want %d %s containing %q", tc.name, resp.StatusCode, code, msg, tc.status, tc.code, tc.msg)
		}
	}
}

func TestHTTPPortWebSocket(t *testing.T) {
	e := newEnv(t)
	port := upstream(t)
	id := createSandbox(t, e)
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/sandboxes/%s/ports/%d/ws HTTP/1.1\r\nHost: sdbx\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", id, port, keyA)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"ping", strings.Repeat("x", 100_000)} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
	}
}
