package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// portGet sends GET url with key (when not empty) as a Bearer token and
// returns the status and body.
func portGet(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestPortExposure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	key := e.srv.APIKey
	const content = "served from inside the sandbox\n"
	writeString(t, c, sb.ID, "/workspace/www/hello.txt", content, sdbx.CreateParents())

	// The command ends at once; setsid keeps the server out of its process
	// group, which is killed when the command finishes.
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{
		Command: "cd /workspace/www && setsid python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &",
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("start the server: %+v, %v", res, err)
	}

	url := c.PortURL(sb.ID, 8000) + "hello.txt"
	var status int
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; {
		status, body = portGet(t, url, key)
		if status != http.StatusBadGateway || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status != http.StatusOK || body != content {
		t.Fatalf("GET %s = %d %q, want 200 %q", url, status, body, content)
	}

	// Without a key, and with another tenant's key.
	if status, body := portGet(t, url, ""); status != http.StatusUnauthorized {
		t.Errorf("without a key: %d %s, want 401", status, body)
	}
	admin := e.client(t)
	k, secret, err := admin.CreateKey(t.Context(), "e2e-ports-"+RandomKey()[10:22])
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	t.Cleanup(func() { _ = admin.RevokeKey(t.Context(), k.ID) })
	if status, body := portGet(t, url, secret); status != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Errorf("another tenant's key: %d %s, want 404", status, body)
	}

	// A port nothing listens on.
	status, body = portGet(t, c.PortURL(sb.ID, 8001), key)
	var eb struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &eb); err != nil || status != http.StatusBadGateway ||
		eb.Error.Code != "unavailable" ||
		!strings.Contains(eb.Error.Message, fmt.Sprintf("nothing listens on port 8001 in sandbox %s", sb.ID)) {
		t.Errorf("port 8001: %d %s, want 502 unavailable", status, body)
	}
}
