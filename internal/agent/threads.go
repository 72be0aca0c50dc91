package agent

import (
	"runtime"
	"sync"
)

// ReserveThreads makes the Go runtime start n OS threads now, which it
// keeps idle once they are done and takes before it starts new ones. In
// a sandbox the agent's threads count against the sandbox's pids limit:
// code that fills it (a fork bomb) would otherwise leave the runtime
// unable to start a thread when a syscall blocks, which is fatal to the
// agent. Call it before any code of the sandbox runs.
func ReserveThreads(n int) {
	var locked, done sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	for range n {
		done.Go(func() {
			// A goroutine locked to its thread keeps it while it waits,
			// so the others each need a thread of their own.
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		})
	}
	locked.Wait()
	close(release)
	done.Wait()
}
