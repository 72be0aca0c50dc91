package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// writeString writes content to path and fails the test on error.
func writeString(t *testing.T, c *sdbx.Client, sandboxID, path, content string, opts ...sdbx.FileOption) *sdbx.FileEntry {
	t.Helper()
	e, err := c.WriteFile(t.Context(), sandboxID, path, strings.NewReader(content), opts...)
	if err != nil {
		t.Fatalf("WriteFile(%s): %v", path, err)
	}
	return e
}

// names lists "name:type" of the entries of dir.
func names(t *testing.T, c *sdbx.Client, sandboxID, dir string) []string {
	t.Helper()
	l, err := c.ListFiles(t.Context(), sandboxID, dir)
	if err != nil {
		t.Fatalf("ListFiles(%s): %v", dir, err)
	}
	out := []string{}
	for _, e := range l.Entries {
		out = append(out, e.Name+":"+e.Type)
	}
	return out
}

func TestFilesRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	ctx := t.Context()
	dir := "/workspace/e2e-files"

	// Parents are created only when asked.
	_, err := c.WriteFile(ctx, sb.ID, dir+"/a/b/hello.txt", strings.NewReader("x"))
	if !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("WriteFile without parents = %v, want not_found", err)
	}
	text := "hello\nwörld\n"
	ent := writeString(t, c, sb.ID, dir+"/a/b/hello.txt", text, sdbx.CreateParents())
	if ent.Name != "hello.txt" || ent.Path != dir+"/a/b/hello.txt" || ent.Type != sdbx.FileTypeFile ||
		ent.Size != int64(len(text)) || ent.Mode != "0644" || ent.ModifiedAt.IsZero() {
		t.Fatalf("entry = %+v", ent)
	}
	if got := readAll(t, c, sb.ID, dir+"/a/b/hello.txt"); got != text {
		t.Fatalf("read back %q, want %q", got, text)
	}
	// Overwriting replaces the content.
	writeString(t, c, sb.ID, dir+"/a/b/hello.txt", "short")
	if got := readAll(t, c, sb.ID, dir+"/a/b/hello.txt"); got != "short" {
		t.Fatalf("after overwrite %q", got)
	}

	// An empty file.
	ent = writeString(t, c, sb.ID, dir+"/empty", "")
	if ent.Size != 0 {
		t.Fatalf("empty entry = %+v", ent)
	}
	f, err := c.ReadFile(ctx, sb.ID, dir+"/empty")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil || len(data) != 0 || f.Size != 0 || f.Name != "empty" {
		t.Fatalf("empty file: %q, %v, size %d, name %q", data, err, f.Size, f.Name)
	}

	// Every byte value, NUL included.
	bin := make([]byte, 0, 512)
	for i := range 512 {
		bin = append(bin, byte(i))
	}
	if _, err := c.WriteFile(ctx, sb.ID, dir+"/all-bytes.bin", bytes.NewReader(bin)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, sb.ID, dir+"/all-bytes.bin"); got != string(bin) {
		t.Fatalf("binary round trip differs: %d bytes back", len(got))
	}

	// Unicode names.
	uni := dir + "/ünïcødé 文件 🙂.txt"
	writeString(t, c, sb.ID, uni, "unicode")
	if got := readAll(t, c, sb.ID, uni); got != "unicode" {
		t.Fatalf("unicode file = %q", got)
	}

	want := []string{"a:dir", "all-bytes.bin:file", "empty:file", "ünïcødé 文件 🙂.txt:file"}
	if got := names(t, c, sb.ID, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
	if got := names(t, c, sb.ID, ""); !strings.Contains(strings.Join(got, ","), "e2e-files:dir") {
		t.Fatalf("default listing (/workspace) = %q", got)
	}

	// Delete a file, then a directory: non-empty needs recursive.
	if err := c.DeleteFile(ctx, sb.ID, uni, false); err != nil {
		t.Fatalf("DeleteFile: %v", err)
	}
	if _, err := c.ReadFile(ctx, sb.ID, uni); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("read after delete = %v", err)
	}
	if err := c.DeleteFile(ctx, sb.ID, dir+"/a", false); !errors.Is(err, sdbx.ErrConflict) {
		t.Fatalf("delete non-empty dir = %v, want conflict", err)
	}
	if err := c.DeleteFile(ctx, sb.ID, dir, true); err != nil {
		t.Fatalf("recursive delete: %v", err)
	}
	if _, err := c.ListFiles(ctx, sb.ID, dir); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("list after recursive delete = %v", err)
	}
}

func TestFilesLargeStreamed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	ctx := t.Context()
	const size = 64 << 20
	path := "/workspace/big.bin"

	// Pseudo-random content, generated and hashed as it is sent: neither
	// side of the test holds the file in memory.
	var seed [32]byte
	copy(seed[:], "sdbx e2e 64 MiB streamed upload")
	up := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), size), up)
	ent, err := c.WriteFile(ctx, sb.ID, path, src)
	if err != nil {
		t.Fatalf("WriteFile(64 MiB): %v", err)
	}
	if ent.Size != size {
		t.Fatalf("entry size = %d, want %d", ent.Size, size)
	}
	want := hex.EncodeToString(up.Sum(nil))

	// The sandbox sees the same bytes.
	res := runCode(t, c, sb.ID, fmt.Sprintf("import hashlib\nh = hashlib.sha256()\nwith open(%q, 'rb') as f:\n"+
		"    for chunk in iter(lambda: f.read(1 << 20), b''):\n        h.update(chunk)\nprint(h.hexdigest())", path))
	if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{want}) {
		t.Fatalf("sha256 in the sandbox = %q, want %s", res.Execution.Logs.Stdout, want)
	}

	f, err := c.ReadFile(ctx, sb.ID, path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	defer f.Close()
	if f.Size != size {
		t.Fatalf("download size = %d", f.Size)
	}
	down := sha256.New()
	n, err := io.Copy(down, f)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if got := hex.EncodeToString(down.Sum(nil)); got != want {
		t.Fatalf("download sha256 = %s, want %s", got, want)
	}
}

func TestFilesErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	ctx := t.Context()
	writeString(t, c, sb.ID, "/workspace/existing.txt", "x")

	tests := []struct {
		name string
		call func() error
		kind error
		want string // in the message
	}{
		{"write relative", func() error {
			_, err := c.WriteFile(ctx, sb.ID, "relative.txt", strings.NewReader("x"))
			return err
		}, sdbx.ErrInvalidArgument, "relative.txt"},
		{"read relative", func() error { _, err := c.ReadFile(ctx, sb.ID, "workspace/x"); return err }, sdbx.ErrInvalidArgument, "workspace/x"},
		{"write over a directory", func() error {
			_, err := c.WriteFile(ctx, sb.ID, "/workspace", strings.NewReader("x"))
			return err
		}, sdbx.ErrConflict, "directory"},
		{"read a directory", func() error { _, err := c.ReadFile(ctx, sb.ID, "/workspace"); return err }, sdbx.ErrConflict, "directory"},
		{"list a file", func() error { _, err := c.ListFiles(ctx, sb.ID, "/workspace/existing.txt"); return err }, sdbx.ErrConflict, "existing.txt"},
		{"write under a file", func() error {
			_, err := c.WriteFile(ctx, sb.ID, "/workspace/existing.txt/x", strings.NewReader("x"), sdbx.CreateParents())
			return err
		}, sdbx.ErrConflict, "existing.txt"},
		{"read missing", func() error { _, err := c.ReadFile(ctx, sb.ID, "/workspace/missing"); return err }, sdbx.ErrNotFound, "missing"},
		{"delete missing", func() error { return c.DeleteFile(ctx, sb.ID, "/workspace/missing", false) }, sdbx.ErrNotFound, "missing"},
		{"list missing", func() error { _, err := c.ListFiles(ctx, sb.ID, "/workspace/missing"); return err }, sdbx.ErrNotFound, "missing"},
		{"unknown sandbox", func() error {
			_, err := c.WriteFile(ctx, "sb-doesnotexist", "/workspace/x", strings.NewReader("x"))
			return err
		}, sdbx.ErrNotFound, "sb-doesnotexist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var se *sdbx.SandboxError
			if !errors.As(err, &se) || !errors.Is(err, tt.kind) || !strings.Contains(se.Message, tt.want) {
				t.Fatalf("err = %v (%T), want %v naming %q", err, err, tt.kind, tt.want)
			}
		})
	}

	// What the SDK would send fine but the server must refuse.
	raw := []struct {
		name, method, query string
		status              int
		code                string
		want                string
	}{
		{"NUL in the path", "PUT", "path=%2Fworkspace%2Fa%00b", 400, "invalid_argument", "NUL"},
		{"NUL in a read", "GET", "path=%2Fworkspace%2Fa%00b", 400, "invalid_argument", "NUL"},
		{"no path", "GET", "", 400, "invalid_argument", "path"},
		{"unknown parameter", "GET", "path=%2Fx&bogus=1", 400, "invalid_argument", "bogus"},
		{"bad boolean", "PUT", "path=%2Fworkspace%2Fx&createParents=1", 400, "invalid_argument", "createParents"},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "PUT" {
				body = "content"
			}
			r := e.do(t, tt.method, "/v1/sandboxes/"+sb.ID+"/files?"+tt.query, "bearer", body, nil)
			code, msg := errorBody(t, r)
			if r.status != tt.status || code != tt.code || !strings.Contains(msg, tt.want) {
				t.Fatalf("%s ?%s = %d %s %q, want %d %s naming %q", tt.method, tt.query, r.status, code, msg, tt.status, tt.code, tt.want)
			}
		})
	}
	// A refused write changed nothing.
	if got := readAll(t, c, sb.ID, "/workspace/existing.txt"); got != "x" {
		t.Fatalf("existing.txt = %q", got)
	}
	if r := e.do(t, "GET", "/v1/sandboxes/"+sb.ID+"/files?path=%2Fworkspace%2Fexisting.txt", "bearer", "", nil); r.status != http.StatusOK ||
		string(r.body) != "x" || r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Content-Length") != "1" {
		t.Fatalf("raw GET = %d %q %v", r.status, r.body, r.header)
	}
}

func TestFilesSharedWithCode(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	writeString(t, c, sb.ID, "/workspace/from-sdk.txt", "written by the SDK\n")
	res := runCode(t, c, sb.ID, "print(open('/workspace/from-sdk.txt').read(), end='')\nprint(open('from-sdk.txt').read().upper(), end='')")
	if want := []string{"written by the SDK", "WRITTEN BY THE SDK"}; !reflect.DeepEqual(res.Execution.Logs.Stdout, want) {
		t.Fatalf("code read %q, want %q", res.Execution.Logs.Stdout, want)
	}

	runCode(t, c, sb.ID, "import os\nos.makedirs('/workspace/out', exist_ok=True)\n"+
		"with open('/workspace/out/from-code.bin', 'wb') as f:\n    f.write(b'code\\x00bytes\\n')")
	if got := readAll(t, c, sb.ID, "/workspace/out/from-code.bin"); got != "code\x00bytes\n" {
		t.Fatalf("ReadFile of the code's file = %q", got)
	}
	if got := names(t, c, sb.ID, "/workspace/out"); !reflect.DeepEqual(got, []string{"from-code.bin:file"}) {
		t.Fatalf("list = %q", got)
	}
	// Commands see the same files.
	out, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "cat /workspace/from-sdk.txt"})
	if err != nil || !reflect.DeepEqual(out.Stdout, []string{"written by the SDK"}) {
		t.Fatalf("cat = %+v, %v", out, err)
	}
}

// analysisScript is the seed README's data-analysis example file, exactly
// as its JS template literal holds it.
const analysisScript = `
import pandas as pd
import numpy as np

df = pd.read_csv('data.csv')
print(df.describe())
print(f"Mean: {df['value'].mean()}")
  `

func TestFilesDataAnalysisExample(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := dataScienceSandbox(t, e)

	// The example reads data.csv from the working directory; it does not
	// say what is in it.
	writeString(t, c, sb.ID, "/workspace/data.csv", "name,value\na,10\nb,20\nc,30\nd,40\n")
	writeString(t, c, sb.ID, "/workspace/analysis.py", analysisScript)
	res := runCode(t, c, sb.ID, `exec(open("/workspace/analysis.py").read())`)
	if res.Execution.Error != nil {
		t.Fatalf("error: %+v", res.Execution.Error)
	}
	out := res.Execution.Logs.Stdout
	if len(out) < 2 || out[len(out)-1] != "Mean: 25.0" {
		t.Fatalf("stdout = %q, want describe() then Mean: 25.0", out)
	}
	describe := strings.Join(out, "\n")
	for _, want := range []string{"value", "count", "4.000000", "mean", "25.000000", "max", "40.000000"} {
		if !strings.Contains(describe, want) {
			t.Errorf("describe() output lacks %q:\n%s", want, describe)
		}
	}
}

// TestFilesStatMkdirMove drives mkdir, stat, move and exists against a
// real sandbox.
func TestFilesStatMkdirMove(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	ctx := t.Context()
	dir := "/workspace/e2e-ops"

	if _, err := c.MakeDir(ctx, sb.ID, dir+"/a/b", false); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("MakeDir without parents = %v, want not_found", err)
	}
	d, err := c.MakeDir(ctx, sb.ID, dir+"/a/b", true)
	if err != nil || d.Type != sdbx.FileTypeDir || d.Path != dir+"/a/b" || d.Name != "b" {
		t.Fatalf("MakeDir -p = %+v, %v", d, err)
	}
	if _, err := c.MakeDir(ctx, sb.ID, dir+"/a/b", true); err != nil {
		t.Fatalf("MakeDir -p of an existing directory: %v", err)
	}
	if _, err := c.MakeDir(ctx, sb.ID, dir+"/a/b", false); !errors.Is(err, sdbx.ErrConflict) {
		t.Fatalf("MakeDir of an existing directory = %v, want conflict", err)
	}

	writeString(t, c, sb.ID, dir+"/a/b/f.txt", "hello")
	st, err := c.StatFile(ctx, sb.ID, dir+"/a/b/f.txt")
	if err != nil || st.Type != sdbx.FileTypeFile || st.Size != 5 || st.Name != "f.txt" || st.ModifiedAt.IsZero() {
		t.Fatalf("StatFile = %+v, %v", st, err)
	}
	if st, err := c.StatFile(ctx, sb.ID, dir+"/a"); err != nil || st.Type != sdbx.FileTypeDir {
		t.Fatalf("StatFile of a directory = %+v, %v", st, err)
	}
	if _, err := c.StatFile(ctx, sb.ID, dir+"/missing"); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("StatFile of a missing path = %v, want not_found", err)
	}

	moved, err := c.MoveFile(ctx, sb.ID, dir+"/a/b/f.txt", dir+"/g.txt", false)
	if err != nil || moved.Path != dir+"/g.txt" || moved.Size != 5 {
		t.Fatalf("MoveFile = %+v, %v", moved, err)
	}
	for p, want := range map[string]bool{dir + "/g.txt": true, dir + "/a/b/f.txt": false, dir + "/a/b": true} {
		if ok, err := c.FileExists(ctx, sb.ID, p); err != nil || ok != want {
			t.Fatalf("FileExists(%s) = %v, %v; want %v", p, ok, err, want)
		}
	}
	if got := readAll(t, c, sb.ID, dir+"/g.txt"); got != "hello" {
		t.Fatalf("moved content %q", got)
	}

	// Onto an existing file: a conflict that changes nothing, unless
	// overwrite.
	writeString(t, c, sb.ID, dir+"/h.txt", "other")
	if _, err := c.MoveFile(ctx, sb.ID, dir+"/g.txt", dir+"/h.txt", false); !errors.Is(err, sdbx.ErrConflict) {
		t.Fatalf("MoveFile onto an existing file = %v, want conflict", err)
	}
	if got := readAll(t, c, sb.ID, dir+"/h.txt"); got != "other" {
		t.Fatalf("destination after a refused move %q", got)
	}
	if ok, _ := c.FileExists(ctx, sb.ID, dir+"/g.txt"); !ok {
		t.Fatal("source gone after a refused move")
	}
	if _, err := c.MoveFile(ctx, sb.ID, dir+"/g.txt", dir+"/h.txt", true); err != nil {
		t.Fatalf("MoveFile with overwrite: %v", err)
	}
	if got := readAll(t, c, sb.ID, dir+"/h.txt"); got != "hello" {
		t.Fatalf("destination after overwrite %q", got)
	}
	if _, err := c.FileExists(ctx, sb.ID, "relative"); !errors.Is(err, sdbx.ErrInvalidArgument) {
		t.Fatalf("FileExists of a relative path = %v, want invalid_argument", err)
	}
}
