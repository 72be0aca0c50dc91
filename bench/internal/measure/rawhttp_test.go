package measure

import (
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRawPoster checks the lean client's framing (Content-Length and
// chunked bodies on one connection) and that it fails on a bad status or
// an error in the body.
func TestRawPoster(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" || r.Method != http.MethodPost || r.URL.Path != "/run" {
			http.Error(w, "bad request line or key", http.StatusBadRequest)
			return
		}
		switch r.URL.Query().Get("mode") {
		case "chunked":
			w.Write([]byte(`{"execution":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`{"executionCount":2}}`))
		case "failed":
			w.Write([]byte(`{"execution":{"error":{"name":"NameError"}}}`))
		case "status":
			http.Error(w, `{"error":{"code":"rate_limited"}}`, http.StatusTooManyRequests)
		default:
			w.Header().Set("Content-Length", "32")
			w.Write([]byte(`{"execution":{"executionCount":1`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++
		}
	}
	srv.Start()
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second)

	for _, tt := range []struct{ path, wantErr string }{
		{"/run", ""},
		{"/run?mode=chunked", ""},
		{"/run", ""},
		{"/run?mode=failed", "run failed"},
		{"/run?mode=status", "429 Too Many Requests"},
		{"/other", "400 Bad Request"},
	} {
		p, err := newRawPoster(t.Context(), srv.URL, "k", tt.path, []byte(`{"code":"x += 1"}`))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			err := p.post(deadline)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("%s post %d: %v", tt.path, i, err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("%s: err = %v, want %q", tt.path, err, tt.wantErr)
				}
				break
			}
		}
		if tt.path == "/run?mode=chunked" && string(p.body) != `{"execution":{"executionCount":2}}` {
			t.Errorf("chunked body = %q", p.body)
		}
		p.Close()
	}
	if conns != 6 {
		t.Errorf("%d connections for 6 posters: keep-alive broken?", conns)
	}
	if _, err := newRawPoster(t.Context(), "https://127.0.0.1:1", "k", "/", nil); err == nil {
		t.Error("https URL accepted")
	}
}

// TestHostCPU checks that the host's CPU counters read and move, and that
// Settle gives up after maxWait on a busy host.
func TestHostCPU(t *testing.T) {
	busy, total := hostCPU()
	if busy <= 0 || total < busy {
		t.Fatalf("hostCPU = %v busy of %v", busy, total)
	}
	stop := make(chan struct{})
	defer close(stop)
	for range runtime.NumCPU() {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	if waited := Settle(t.Context(), time.Second); waited < time.Second {
		t.Errorf("Settle returned after %v with every CPU busy", waited)
	}
	if b, tt := hostCPU(); b <= busy || tt <= total {
		t.Errorf("counters did not move: %v/%v then %v/%v", busy, total, b, tt)
	}
}
