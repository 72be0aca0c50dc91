package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// fakeFileServer keeps the files of sandbox sb-1 in memory for the CLI's
// unit tests. Directories exist implicitly (any prefix of a file) or
// explicitly (made with mkdir); /workspace always exists. The file /broken is announced with 100 bytes
// and cut after 10.
type fakeFileServer struct {
	mu    sync.Mutex
	files map[string][]byte
	dirs  map[string]bool
	reqs  []string
}

func newFakeFileServer(t *testing.T) (*fakeFileServer, cliEnv) {
	f := &fakeFileServer{files: map[string][]byte{}, dirs: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, cliEnv{URL: srv.URL, APIKey: "k"}
}

var fakeTime = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func (f *fakeFileServer) isDir(p string) bool {
	if p == "/workspace" || p == "/" || f.dirs[p] {
		return true
	}
	for name := range f.dirs {
		if strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	for name := range f.files {
		if strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	return false
}

func (f *fakeFileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	}
	if r.URL.Path == "/v1/sandboxes/sb-1/files" && r.URL.Query().Get("path") == "/broken" {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "0123456789")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
	q := r.URL.Query()
	p := q.Get("path")
	switch {
	case !strings.HasPrefix(r.URL.Path, "/v1/sandboxes/sb-1/"):
		fail(404, "not_found", "sandbox: not found")
	case p != "" && !strings.HasPrefix(p, "/"):
		fail(400, "invalid_argument", "path must be absolute")
	case r.Method == "PUT":
		if dir := path.Dir(p); q.Get("createParents") != "true" && !f.isDir(dir) {
			fail(404, "not_found", "write "+p+": parent directory does not exist")
			return
		}
		if f.isDir(p) {
			fail(409, "conflict", "write "+p+": is a directory")
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			fail(400, "invalid_argument", "request body: could not be read to its end")
			return
		}
		f.files[p] = data
		json.NewEncoder(w).Encode(sdbx.FileEntry{Name: path.Base(p), Path: p, Type: "file", Size: int64(len(data)), Mode: "0644", ModifiedAt: fakeTime})
	case r.Method == "GET" && r.URL.Path == "/v1/sandboxes/sb-1/files":
		data, ok := f.files[p]
		if !ok {
			fail(404, "not_found", "read "+p+": no such file")
			return
		}
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}))
		w.Write(data)
	case r.Method == "DELETE":
		if _, ok := f.files[p]; ok {
			delete(f.files, p)
		} else if !f.isDir(p) {
			fail(404, "not_found", "delete "+p+": no such file")
		} else if q.Get("recursive") != "true" {
			fail(409, "conflict", "delete "+p+": directory not empty")
		} else {
			for name := range f.files {
				if strings.HasPrefix(name, p+"/") {
					delete(f.files, name)
				}
			}
			for name := range f.dirs {
				if name == p || strings.HasPrefix(name, p+"/") {
					delete(f.dirs, name)
				}
			}
		}
		w.WriteHeader(204)
	case r.Method == "GET" && r.URL.Path == "/v1/sandboxes/sb-1/files/list":
		dir := p
		if dir == "" {
			dir = "/workspace"
		}
		if !f.isDir(dir) {
			fail(404, "not_found", "list "+dir+": no such directory")
			return
		}
		seen := map[string]sdbx.FileEntry{}
		for name, data := range f.files {
			rest, ok := strings.CutPrefix(name, dir+"/")
			if !ok {
				continue
			}
			if first, _, nested := strings.Cut(rest, "/"); nested {
				seen[first] = sdbx.FileEntry{Name: first, Path: dir + "/" + first, Type: "dir", Size: 4096, Mode: "0755", ModifiedAt: fakeTime}
			} else {
				seen[rest] = sdbx.FileEntry{Name: rest, Path: name, Type: "file", Size: int64(len(data)), Mode: "0644", ModifiedAt: fakeTime}
			}
		}
		list := sdbx.FileList{Path: dir, Entries: []sdbx.FileEntry{}}
		for _, name := range slices.Sorted(maps.Keys(seen)) {
			list.Entries = append(list.Entries, seen[name])
		}
		json.NewEncoder(w).Encode(list)
	case r.Method == "GET" && r.URL.Path == "/v1/sandboxes/sb-1/files/stat":
		if data, ok := f.files[p]; ok {
			json.NewEncoder(w).Encode(sdbx.FileEntry{Name: path.Base(p), Path: p, Type: "file", Size: int64(len(data)), Mode: "0644", ModifiedAt: fakeTime})
		} else if f.isDir(p) {
			json.NewEncoder(w).Encode(sdbx.FileEntry{Name: path.Base(p), Path: p, Type: "dir", Size: 4096, Mode: "0755", ModifiedAt: fakeTime})
		} else {
			fail(404, "not_found", "stat "+p+": no such file")
		}
	case r.Method == "POST" && r.URL.Path == "/v1/sandboxes/sb-1/files/mkdir":
		var body struct {
			Path    string `json:"path"`
			Parents bool   `json:"parents"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.reqs[len(f.reqs)-1] += fmt.Sprintf(" %+v", body)
		switch {
		case f.isDir(body.Path) && body.Parents:
		case f.isDir(body.Path):
			fail(409, "conflict", "mkdir "+body.Path+": already exists")
			return
		case !body.Parents && !f.isDir(path.Dir(body.Path)):
			fail(404, "not_found", "mkdir "+body.Path+": parent directory does not exist")
			return
		}
		f.dirs[body.Path] = true
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(sdbx.FileEntry{Name: path.Base(body.Path), Path: body.Path, Type: "dir", Size: 4096, Mode: "0755", ModifiedAt: fakeTime})
	case r.Method == "POST" && r.URL.Path == "/v1/sandboxes/sb-1/files/move":
		var body struct {
			From, To  string
			Overwrite bool
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.reqs[len(f.reqs)-1] += fmt.Sprintf(" %+v", body)
		data, ok := f.files[body.From]
		switch {
		case !ok:
			fail(404, "not_found", "move "+body.From+": no such file")
			return
		case f.files[body.To] != nil && !body.Overwrite:
			fail(409, "conflict", "move to "+body.To+": destination exists")
			return
		}
		delete(f.files, body.From)
		f.files[body.To] = data
		json.NewEncoder(w).Encode(sdbx.FileEntry{Name: path.Base(body.To), Path: body.To, Type: "file", Size: int64(len(data)), Mode: "0644", ModifiedAt: fakeTime})
	default:
		fail(404, "not_found", "no route")
	}
}

func TestCLIFiles(t *testing.T) {
	f, env := newFakeFileServer(t)
	dir := t.TempDir()
	local := filepath.Join(dir, "local.bin")
	content := []byte("binary\x00content\xff\n")
	if err := os.WriteFile(local, content, 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"put a file", "", []string{"files", "put", "sb-1", local, "/workspace/local.bin"}, 0, "", ""},
		{"put needs parents", "", []string{"files", "put", "sb-1", local, "/workspace/a/b/c.bin"}, 3, "",
			"sdbx: write /workspace/a/b/c.bin: parent directory does not exist\n"},
		{"put with parents", "", []string{"files", "put", "--parents", "sb-1", local, "/workspace/a/b/c.bin"}, 0, "", ""},
		{"put stdin", "from stdin\n", []string{"files", "put", "sb-1", "-", "/workspace/a/stdin.txt"}, 0, "", ""},
		{"put over a directory", "x", []string{"files", "put", "sb-1", "-", "/workspace/a"}, 1, "",
			"sdbx: write /workspace/a: is a directory\n"},
		{"put relative", "x", []string{"files", "put", "sb-1", "-", "rel.txt"}, 2, "", "sdbx: path must be absolute\n"},
		{"put missing local", "", []string{"files", "put", "sb-1", filepath.Join(dir, "nope"), "/workspace/x"}, 2, "",
			"sdbx: files put: \"" + filepath.Join(dir, "nope") + "\": no such file or directory\n"},
		{"put a local directory", "", []string{"files", "put", "sb-1", dir, "/workspace/x"}, 2, "",
			"sdbx: files put: \"" + dir + "\": is a directory\n"},
		{"ls", "", []string{"files", "ls", "sb-1"}, 0,
			"TYPE  SIZE  MODE  MODIFIED              NAME\n" +
				"dir   4096  0755  2026-11-26T09:00:00Z  a\n" +
				"file  16    0644  2026-11-26T09:00:00Z  local.bin\n", ""},
		{"ls dir", "", []string{"files", "ls", "sb-1", "/workspace/a"}, 0,
			"TYPE  SIZE  MODE  MODIFIED              NAME\n" +
				"dir   4096  0755  2026-11-26T09:00:00Z  b\n" +
				"file  11    0644  2026-11-26T09:00:00Z  stdin.txt\n", ""},
		{"ls missing", "", []string{"files", "ls", "sb-1", "/nope"}, 3, "", "sdbx: list /nope: no such directory\n"},
		{"cat", "", []string{"files", "cat", "sb-1", "/workspace/a/stdin.txt"}, 0, "from stdin\n", ""},
		{"cat binary", "", []string{"files", "cat", "sb-1", "/workspace/a/b/c.bin"}, 0, string(content), ""},
		{"get to stdout", "", []string{"files", "get", "sb-1", "/workspace/local.bin"}, 0, string(content), ""},
		{"get missing", "", []string{"files", "get", "sb-1", "/workspace/nope", filepath.Join(dir, "x")}, 3, "",
			"sdbx: read /workspace/nope: no such file\n"},
		{"get broken transfer", "", []string{"files", "get", "sb-1", "/broken", filepath.Join(dir, "broken")}, 5, "",
			"sdbx: GET /v1/sandboxes/sb-1/files: read content: unexpected EOF\n"},
		{"mkdir", "", []string{"files", "mkdir", "sb-1", "/workspace/new"}, 0, "", ""},
		{"mkdir existing", "", []string{"files", "mkdir", "sb-1", "/workspace/new"}, 1, "", "sdbx: mkdir /workspace/new: already exists\n"},
		{"mkdir missing parent", "", []string{"files", "mkdir", "sb-1", "/workspace/x/y"}, 3, "", "sdbx: mkdir /workspace/x/y: parent directory does not exist\n"},
		{"mkdir -p", "", []string{"files", "mkdir", "-p", "sb-1", "/workspace/x/y"}, 0, "", ""},
		{"mkdir -p existing", "", []string{"files", "mkdir", "sb-1", "-p", "/workspace/x/y"}, 0, "", ""},
		{"stat file", "", []string{"files", "stat", "sb-1", "/workspace/local.bin"}, 0,
			"TYPE  SIZE  MODE  MODIFIED              PATH\n" +
				"file  16    0644  2026-11-26T09:00:00Z  /workspace/local.bin\n", ""},
		{"stat dir", "", []string{"files", "stat", "--json", "sb-1", "/workspace/x/y"}, 0,
			"{\n  \"name\": \"y\",\n  \"path\": \"/workspace/x/y\",\n  \"type\": \"dir\",\n  \"size\": 4096,\n  \"mode\": \"0755\",\n  \"modifiedAt\": \"2026-11-26T09:00:00Z\"\n}\n", ""},
		{"stat missing", "", []string{"files", "stat", "sb-1", "/workspace/nope"}, 3, "", "sdbx: stat /workspace/nope: no such file\n"},
		{"mv", "", []string{"files", "mv", "sb-1", "/workspace/a/stdin.txt", "/workspace/x/y/moved.txt"}, 0, "", ""},
		{"mv onto existing", "", []string{"files", "mv", "sb-1", "/workspace/x/y/moved.txt", "/workspace/local.bin"}, 1, "",
			"sdbx: move to /workspace/local.bin: destination exists\n"},
		{"mv missing", "", []string{"files", "mv", "sb-1", "/workspace/a/stdin.txt", "/workspace/z"}, 3, "", "sdbx: move /workspace/a/stdin.txt: no such file\n"},
		{"mv -f", "", []string{"files", "mv", "-f", "sb-1", "/workspace/x/y/moved.txt", "/workspace/local.bin"}, 0, "", ""},
		{"cat moved", "", []string{"files", "cat", "sb-1", "/workspace/local.bin"}, 0, "from stdin\n", ""},
		{"stat without path", "", []string{"files", "stat", "sb-1"}, 2, "", "sdbx: files stat: want ID PATH, got 1 arguments (see sdbx files -h)\n"},
		{"mkdir without path", "", []string{"files", "mkdir", "-p", "sb-1"}, 2, "", "sdbx: files mkdir: want ID PATH, got 1 arguments (see sdbx files -h)\n"},
		{"mv without target", "", []string{"files", "mv", "sb-1", "/workspace/a"}, 2, "", "sdbx: files mv: want ID FROM TO, got 2 arguments (see sdbx files -h)\n"},
		{"rm file", "", []string{"files", "rm", "sb-1", "/workspace/local.bin"}, 0, "", ""},
		{"rm missing", "", []string{"files", "rm", "sb-1", "/workspace/local.bin"}, 3, "", "sdbx: delete /workspace/local.bin: no such file\n"},
		{"rm -r made dirs", "", []string{"files", "rm", "-r", "sb-1", "/workspace/x", "/workspace/new"}, 0, "", ""},
		{"rm dir without -r", "", []string{"files", "rm", "sb-1", "/workspace/a"}, 1, "", "sdbx: delete /workspace/a: directory not empty\n"},
		{"rm -r", "", []string{"files", "rm", "-r", "sb-1", "/workspace/a"}, 0, "", ""},
		{"ls empty", "", []string{"files", "ls", "--json", "sb-1"}, 0, "{\n  \"path\": \"/workspace\",\n  \"entries\": []\n}\n", ""},
		{"no command", "", []string{"files"}, 2, "", "sdbx: files: missing command (ls, cat, put, get, rm, stat, mkdir, mv, watch; see sdbx files -h)\n"},
		{"unknown command", "", []string{"files", "chmod"}, 2, "", "sdbx: files: unknown command \"chmod\" (see sdbx files -h)\n"},
		{"cat without path", "", []string{"files", "cat", "sb-1"}, 2, "", "sdbx: files cat: want ID PATH, got 1 arguments (see sdbx files -h)\n"},
		{"put without remote", "", []string{"files", "put", "sb-1", local}, 2, "", "sdbx: files put: want ID LOCAL PATH, got 2 arguments (see sdbx files -h)\n"},
		{"rm without path", "", []string{"files", "rm", "sb-1"}, 2, "", "sdbx: files rm: want ID PATH..., got 1 arguments (see sdbx files -h)\n"},
		{"unknown sandbox", "", []string{"files", "ls", "sb-2"}, 3, "", "sdbx: sandbox: not found\n"},
	}
	for _, st := range steps {
		code, out, errOut := runCLIWithStdin(t, env, strings.NewReader(st.stdin), st.args...)
		if code != st.wantCode || out != st.wantOut || errOut != st.wantErr {
			t.Fatalf("%s: code=%d out=%q err=%q\nwant %d %q %q", st.name, code, out, errOut, st.wantCode, st.wantOut, st.wantErr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "broken")); !os.IsNotExist(err) {
		t.Fatalf("a broken download left a file behind: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, want := range []string{
		"POST /v1/sandboxes/sb-1/files/mkdir {Path:/workspace/new Parents:false}",
		"POST /v1/sandboxes/sb-1/files/mkdir {Path:/workspace/x/y Parents:true}",
		"POST /v1/sandboxes/sb-1/files/move {From:/workspace/a/stdin.txt To:/workspace/x/y/moved.txt Overwrite:false}",
		"POST /v1/sandboxes/sb-1/files/move {From:/workspace/x/y/moved.txt To:/workspace/local.bin Overwrite:true}",
		"GET /v1/sandboxes/sb-1/files/stat?path=%2Fworkspace%2Flocal.bin",
	} {
		if !slices.Contains(f.reqs, want) {
			t.Errorf("no request %q in %q", want, f.reqs)
		}
	}
	if len(f.files) != 0 || len(f.dirs) != 0 {
		t.Fatalf("files left: %v %v", f.files, f.dirs)
	}
}

func TestCLIFilesGetToLocal(t *testing.T) {
	f, env := newFakeFileServer(t)
	f.files["/workspace/data.csv"] = []byte("a,b\n1,2\n")
	dir := t.TempDir()
	tests := []struct {
		name, local, wantPath string
	}{
		{"to a file", filepath.Join(dir, "out.csv"), filepath.Join(dir, "out.csv")},
		{"into a directory", dir, filepath.Join(dir, "data.csv")},
		{"over an existing file", filepath.Join(dir, "out.csv"), filepath.Join(dir, "out.csv")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLIWithStdin(t, env, nil, "files", "get", "sb-1", "/workspace/data.csv", tt.local)
			if code != 0 || out != "" || errOut != "" {
				t.Fatalf("code=%d out=%q err=%q", code, out, errOut)
			}
			got, err := os.ReadFile(tt.wantPath)
			if err != nil || !bytes.Equal(got, []byte("a,b\n1,2\n")) {
				t.Fatalf("%s = %q, %v", tt.wantPath, got, err)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"data.csv", "out.csv"}; !slices.Equal(names, want) {
		t.Fatalf("local dir holds %q, want %q (no temporary files)", names, want)
	}
}

func TestCLICodeAndFilesHelp(t *testing.T) {
	for _, args := range [][]string{
		{"code", "-h"}, {"files", "-h"}, {"files", "ls", "-h"}, {"files", "put", "--help"},
		{"files", "get", "-h"}, {"files", "cat", "-h"}, {"files", "rm", "-h"},
		{"files", "stat", "-h"}, {"files", "mkdir", "-h"}, {"files", "mv", "--help"},
	} {
		code, out, errOut := runCLI(t, cliEnv{APIKey: "secret-from-env"}, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: sdbx ") || errOut != "" {
			t.Errorf("%q: code=%d out=%q err=%q", args, code, out, errOut)
		}
		if strings.Contains(out, "secret-from-env") {
			t.Errorf("%q: help shows the API key from the environment", args)
		}
	}
}
