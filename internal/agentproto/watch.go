package agentproto

// Watching a directory.
//
//   - file.watch {path, recursive}: the agent resolves path inside its
//     file root (it must be a directory), adds inotify watches (with
//     recursive, on every directory below it too, and on directories
//     created later), then sends EventFileWatching. From then on it sends
//     EventFileChange lines, one Change each, until the client closes the
//     connection. When the watched directory itself is deleted or moved
//     away, the last change is its "deleted" and the final EventFileEnd
//     follows. An error before EventFileWatching (not_found, conflict
//     "not a directory", ...) or later is a final EventError.
//
// Changes are coalesced (a run of "modified" of one path with nothing
// else of that path in between is sent once) and queued in the agent up
// to MaxWatchQueue changes while the client does not read; past that,
// changes are dropped and one ChangeOverflow says so, where they were
// lost. The kernel's own queue overflowing is reported the same way.
const OpFileWatch = "file.watch"

// Event types of file.watch.
const (
	EventFileWatching = "file.watching" // the watch is in place
	EventFileChange   = "file.change"   // Change set
)

// Change types.
const (
	ChangeCreated  = "created"
	ChangeModified = "modified" // content or metadata changed
	ChangeDeleted  = "deleted"
	ChangeRenamed  = "renamed"  // Path is the new path, OldPath the old one
	ChangeOverflow = "overflow" // changes were lost; Path is empty
)

// Change is one change seen by file.watch. A move within the watched tree
// is one ChangeRenamed; a move out of it is a ChangeDeleted and a move
// into it a ChangeCreated. The agent's own atomic writes (a temporary
// file renamed over the path) are reported as one ChangeCreated or
// ChangeModified of the path.
type Change struct {
	Type    string `json:"type"`
	Path    string `json:"path,omitempty"`
	OldPath string `json:"oldPath,omitempty"`
	IsDir   bool   `json:"isDir,omitempty"`
	// TS is when the agent read the change, in Unix milliseconds.
	TS int64 `json:"ts"`
}

// MaxWatchQueue is how many changes file.watch queues for a client that
// does not read before it drops changes (ChangeOverflow).
const MaxWatchQueue = 8192

// MaxWatchDirs bounds the directories one recursive file.watch watches;
// directories beyond it are not watched and a ChangeOverflow says changes
// were missed.
const MaxWatchDirs = 8192
