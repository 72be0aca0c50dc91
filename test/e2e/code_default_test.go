package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// TestCodeConcurrentFirstRuns: runs that arrive together at a sandbox
// without a default context create exactly one and all run in it (the
// service serializes the default context's creation per sandbox and
// language). Pooled sandboxes come with their template's default context
// started, so python runs in a sandbox with limits of its own (never
// pooled), and javascript in a python sandbox.
func TestCodeConcurrentFirstRuns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	// Each run counts itself in the interpreter's state and prints its
	// interpreter's pid: one shared context prints one pid and counts
	// 1..runs.
	tests := []struct {
		language string
		opts     sdbx.CreateSandboxOptions
		code     string
	}{
		{sdbx.LanguagePython, sdbx.CreateSandboxOptions{Resources: sdbx.Resources{CPU: 1.5}},
			"import os\ntry:\n    n += 1\nexcept NameError:\n    n = 1\nprint(os.getpid(), n)"},
		{sdbx.LanguageJavaScript, sdbx.CreateSandboxOptions{},
			"globalThis.n = (globalThis.n ?? 0) + 1\nconsole.log(process.pid, globalThis.n)"},
	}
	for _, tt := range tests {
		t.Run(tt.language, func(t *testing.T) {
			t.Parallel()
			sb := e.sandbox(t, tt.opts)
			concurrentFirstRuns(t, c, sb.ID, tt.language, tt.code)
		})
	}
}

// concurrentFirstRuns fires runs of code at the same time at sandbox id,
// which has no context yet, and checks they shared one new default
// context.
func concurrentFirstRuns(t *testing.T, c *sdbx.Client, id, language, code string) {
	t.Helper()
	if list := contextsOf(t, c, id, language); len(list) != 0 {
		t.Fatalf("%s contexts of a fresh sandbox: %+v; want none", language, list)
	}
	const runs = 8
	type outcome struct {
		line, contextID string
		err             error
	}
	outcomes := make([]outcome, runs)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			<-start
			res, err := c.RunCode(t.Context(), id, code, sdbx.Language(language))
			if err != nil {
				outcomes[i].err = err
				return
			}
			outcomes[i].line = strings.Join(res.Execution.Logs.Stdout, "|")
			outcomes[i].contextID = res.Metadata.ContextID
			if res.Execution.Error != nil {
				outcomes[i].err = fmt.Errorf("raised %s: %s", res.Execution.Error.Name, res.Execution.Error.Value)
			}
		})
	}
	close(start)
	wg.Wait()

	pids := map[string]bool{}
	contexts := map[string]bool{}
	var counts []int
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("run %d: %v", i, o.err)
		}
		pid, count, ok := strings.Cut(o.line, " ")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			t.Fatalf("run %d printed %q, want \"<pid> <count>\"", i, o.line)
		}
		pids[pid] = true
		contexts[o.contextID] = true
		counts = append(counts, n)
	}
	slices.Sort(counts)
	want := make([]int, runs)
	for i := range want {
		want[i] = i + 1
	}
	if len(pids) != 1 || len(contexts) != 1 || !slices.Equal(counts, want) {
		t.Errorf("%d runs: interpreter pids %v, contexts %v, counts %v; want one pid, one context, counts 1..%d",
			runs, pids, contexts, counts, runs)
	}

	if list := contextsOf(t, c, id, language); len(list) != 1 || !list[0].Default || list[0].Language != language || !contexts[list[0].ID] {
		t.Errorf("contexts after the runs: %+v; want the one default %s context the runs used (%v)", list, language, contexts)
	}
}

// contextsOf lists the contexts of one language in sandbox id.
func contextsOf(t *testing.T, c *sdbx.Client, id, language string) []sdbx.CodeContext {
	t.Helper()
	list, err := c.ListContexts(t.Context(), id)
	if err != nil {
		t.Fatalf("ListContexts: %v", err)
	}
	return slices.DeleteFunc(list, func(cc sdbx.CodeContext) bool { return cc.Language != language })
}
