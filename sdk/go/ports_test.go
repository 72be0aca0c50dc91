package sdbx

import "testing"

func TestPortURL(t *testing.T) {
	for _, tc := range []struct {
		server, id string
		port       int
		want       string
	}{
		{"http://127.0.0.1:3000", "sb-abc", 8000, "http://127.0.0.1:3000/v1/sandboxes/sb-abc/ports/8000/"},
		{"http://127.0.0.1:3000/", "sb-abc", 80, "http://127.0.0.1:3000/v1/sandboxes/sb-abc/ports/80/"},
		{"https://example.test/sdbx/", "sb-x", 5173, "https://example.test/sdbx/v1/sandboxes/sb-x/ports/5173/"},
		{"http://127.0.0.1:3000/a%20b", "sb/../x", 1, "http://127.0.0.1:3000/a%20b/v1/sandboxes/sb%2F..%2Fx/ports/1/"},
	} {
		c, err := New(Config{ServerURL: tc.server})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.PortURL(tc.id, tc.port); got != tc.want {
			t.Errorf("PortURL(%q, %d) on %s = %q, want %q", tc.id, tc.port, tc.server, got, tc.want)
		}
	}
}
