package agentproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// File operations. Every path is an absolute path inside the sandbox; the
// agent cleans it and resolves it inside its file root (the sandbox's "/"),
// so ".." and absolute symbolic links never lead out of the root.
//
//   - file.write {path, createParents, mode}: the request line is followed
//     by the content as chunks (see below) ended by an empty chunk. The file
//     is written to a temporary file in the same directory, synced, renamed
//     over path and the directory synced: once the final EventFileEntry is
//     sent, the write is durable. A symbolic link at path is followed when
//     its target exists. The agent may answer with an EventError before it
//     has read all chunks; it then reads and discards the rest of them, so a
//     client that reads the answer while it sends can stop early.
//   - file.read {path}: EventFileEntry (the file, symbolic links followed),
//     then the content as chunks ended by an empty chunk, then the final
//     EventFileEnd, or EventError when reading failed part way. Exactly
//     Entry.Size bytes are sent (bytes appended meanwhile are left out; a
//     file that shrank ends with a conflict error), except when Size is -1:
//     a file of /proc, /sys or the like, whose size is only known at its
//     end.
//   - file.stat {path}: final EventFileEntry. A symbolic link is described
//     itself (type "symlink"), not its target.
//   - file.list {path}: EventFileEntries batches (entries sorted by name
//     across batches), then the final EventFileEnd.
//   - file.remove {path, recursive}: final EventFileEnd. A directory is
//     removed only when empty, unless recursive.
//   - file.mkdir {path, createParents, mode}: final EventFileEntry. With
//     createParents, missing parents are created and an existing directory
//     is not an error.
//   - file.rename {path, to, overwrite, createParents}: final
//     EventFileEntry describing the entry at its new path. Without
//     overwrite an existing destination is a conflict.
//   - file.exists {path}: final EventFileExists (symbolic links followed).
//
// Errors are final EventError events whose message names the operation,
// the path and the reason: not_found; invalid_argument for a bad path,
// name or request; conflict for "is a directory", "not a directory",
// "already exists" and "directory not empty"; permission_denied.
const (
	OpFileWrite  = "file.write"
	OpFileRead   = "file.read"
	OpFileStat   = "file.stat"
	OpFileList   = "file.list"
	OpFileRemove = "file.remove"
	OpFileMkdir  = "file.mkdir"
	OpFileRename = "file.rename"
	OpFileExists = "file.exists"
)

// Event types of the file ops.
const (
	EventFileEntry   = "file.entry"   // Entry set; final except as the header of file.read
	EventFileEntries = "file.entries" // a batch of a listing: Entries set
	EventFileEnd     = "file.end"     // final answer to file.read, file.list and file.remove
	EventFileExists  = "file.exists"  // final answer to file.exists: Exists set
)

// FileRequest is the request of the file ops.
type FileRequest struct {
	// Path is an absolute path inside the sandbox.
	Path string `json:"path"`
	// CreateParents creates missing parent directories (write, mkdir,
	// rename's destination); for mkdir an existing directory is then not
	// an error.
	CreateParents bool `json:"createParents,omitempty"`
	// Mode sets the permission bits of a written file or a new directory;
	// 0 means 0644 for a new file, the existing file's bits for a file
	// that is replaced, 0755 for a directory.
	Mode uint32 `json:"mode,omitempty"`
	// Recursive removes a directory with its contents (file.remove), or
	// also watches the directories below Path (file.watch).
	Recursive bool `json:"recursive,omitempty"`
	// To is rename's destination path.
	To string `json:"to,omitempty"`
	// Overwrite lets rename replace an existing destination (a file, or an
	// empty directory when the source is a directory).
	Overwrite bool `json:"overwrite,omitempty"`
}

// File entry types.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other"
)

// FileEntry describes one directory entry.
type FileEntry struct {
	Name string `json:"name"` // last element of Path; "/" for the root
	Path string `json:"path"` // absolute, clean path in the sandbox
	Type string `json:"type"` // FileTypeFile, FileTypeDir, FileTypeSymlink or FileTypeOther
	Size int64  `json:"size"`
	// Mode is the permission bits (with setuid, setgid, sticky) in octal,
	// at least four digits: "0644".
	Mode       string    `json:"mode"`
	ModifiedAt time.Time `json:"modifiedAt"`
}

// Content streams: after a request line (file.write) or an EventFileEntry
// line (file.read), the content follows as chunks. A chunk is a 4-byte
// big-endian length and that many bytes; an empty chunk ends the content.
// A chunk holds at most MaxChunk bytes; senders use ChunkSize.
const (
	ChunkHeaderLen = 4
	ChunkSize      = 256 << 10
	MaxChunk       = 1 << 20
)

// MaxListEntries is the largest directory file.list lists; a larger one
// is refused with invalid_argument.
const MaxListEntries = 100_000

// PutChunkHeader writes the header of an n-byte chunk into b[:ChunkHeaderLen].
func PutChunkHeader(b []byte, n int) {
	binary.BigEndian.PutUint32(b, uint32(n))
}

// ErrChunkTooLarge is returned by ChunkReader for a chunk header that
// announces more than MaxChunk bytes.
var ErrChunkTooLarge = fmt.Errorf("content chunk larger than %d bytes", MaxChunk)

// ChunkReader reads the content of a chunk stream: Read returns the
// chunks' bytes and io.EOF after the empty chunk, which it consumes and
// nothing after it. An EOF of the underlying reader before the empty chunk
// is io.ErrUnexpectedEOF.
type ChunkReader struct {
	r    io.Reader
	left int
	done bool
	hdr  [ChunkHeaderLen]byte
}

// NewChunkReader returns a ChunkReader reading from r.
func NewChunkReader(r io.Reader) *ChunkReader { return &ChunkReader{r: r} }

// Read reads up to len(p) bytes of the current chunk. It blocks until they
// arrive or the chunk ends, so a reader with a large p gets large reads.
func (c *ChunkReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
			return 0, unexpected(err)
		}
		n := binary.BigEndian.Uint32(c.hdr[:])
		if n > MaxChunk {
			return 0, ErrChunkTooLarge
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = int(n)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := io.ReadFull(c.r, p[:min(len(p), c.left)])
	c.left -= n
	return n, unexpected(err)
}

// Done reports whether the empty chunk was read.
func (c *ChunkReader) Done() bool { return c.done }

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
