package agentclient_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// benchRoots are the file systems the benchmarks run on: tmpfs measures
// the protocol (client ↔ unix socket ↔ agent), disk adds the fsyncs.
func benchRoots(b *testing.B) map[string]string {
	roots := map[string]string{"disk": b.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "sdbx-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			roots["tmpfs"] = dir
		}
	}
	return roots
}

const benchSize = 64 << 20

// repeat is a reader of n bytes cycling through block: content that costs
// nothing to produce, so the benchmark measures the transfer.
type repeat struct {
	block []byte
	n     int64
	off   int64
}

func newRepeat(n int64) *repeat {
	block := make([]byte, 1<<20)
	_, _ = newPattern(int64(len(block)), 5).Read(block)
	return &repeat{block: block, n: n}
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	i := int(r.off % int64(len(r.block)))
	n := copy(p[:min(int64(len(p)), r.n-r.off)], r.block[i:])
	r.off += int64(n)
	return n, nil
}

// BenchmarkWriteFile streams 64 MiB into a file per operation.
func BenchmarkWriteFile(b *testing.B) {
	for name, root := range benchRoots(b) {
		b.Run(name, func(b *testing.B) {
			fa := startFileAgent(b, root)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fa.client.WriteFile(b.Context(), agentproto.FileRequest{Path: "/bench.bin"}, newRepeat(benchSize)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadFile streams a 64 MiB file out per operation.
func BenchmarkReadFile(b *testing.B) {
	for name, root := range benchRoots(b) {
		b.Run(name, func(b *testing.B) {
			fa := startFileAgent(b, root)
			if _, err := fa.client.WriteFile(b.Context(), agentproto.FileRequest{Path: "/bench.bin"}, newRepeat(benchSize)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				_, r, err := fa.client.ReadFile(b.Context(), "/bench.bin")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				r.Close()
				if err != nil || n != benchSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip1GiB writes 1 GiB and reads it back, checking its
// hash; B/op and maxrss-MiB show that memory stays bounded.
func BenchmarkRoundTrip1GiB(b *testing.B) {
	const size = 1 << 30
	fa := startFileAgent(b, b.TempDir())
	b.SetBytes(2 * size)
	b.ReportAllocs()
	for b.Loop() {
		src := newPattern(size, 7)
		if _, err := fa.client.WriteFile(b.Context(), agentproto.FileRequest{Path: "/gib.bin"}, src); err != nil {
			b.Fatal(err)
		}
		_, r, err := fa.client.ReadFile(b.Context(), "/gib.bin")
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		r.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), src.sum.Sum(nil)) {
			b.Fatalf("read back %d bytes (%v), or the content differs", n, err)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	}
}
