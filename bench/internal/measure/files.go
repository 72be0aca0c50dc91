package measure

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// FileRates are the write and read rates of one file transfer, in MB/s
// (10⁶ bytes per second).
type FileRates struct {
	Write, Read float64
	Size        int64
}

// FileTransfer writes size pseudo-random bytes to /tmp in sandbox id
// through the Go SDK, reads them back, checks their SHA-256 and deletes
// the file.
func FileTransfer(ctx context.Context, c *sdbx.Client, id string, size int64) (FileRates, error) {
	const path = "/tmp/sdbx-bench.bin"
	src := rand.NewChaCha8([32]byte{1})
	want := sha256.New()
	t0 := time.Now()
	if _, err := c.WriteFile(ctx, id, path, io.TeeReader(io.LimitReader(src, size), want)); err != nil {
		return FileRates{}, fmt.Errorf("write %d bytes: %w", size, err)
	}
	write := time.Since(t0)
	t1 := time.Now()
	r, err := c.ReadFile(ctx, id, path)
	if err != nil {
		return FileRates{}, err
	}
	got := sha256.New()
	n, err := io.Copy(got, r)
	r.Close()
	read := time.Since(t1)
	if err != nil {
		return FileRates{}, fmt.Errorf("read back: %w", err)
	}
	if n != size || string(got.Sum(nil)) != string(want.Sum(nil)) {
		return FileRates{}, fmt.Errorf("read back %d bytes that differ from the %d written", n, size)
	}
	if err := c.DeleteFile(ctx, id, path, false); err != nil {
		return FileRates{}, err
	}
	mb := float64(size) / 1e6
	return FileRates{Write: mb / write.Seconds(), Read: mb / read.Seconds(), Size: size}, nil
}
