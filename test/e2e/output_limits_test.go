package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// The kept-output limits of results (internal/sandbox, resultBytes.keep):
// at most 10,000 lines per stream and 10 MiB of lines in all; past them
// truncated is set, the kept lines are the first ones, and every line is
// still streamed.
const (
	keptLines = 10_000
	// wideLine is the length of the lines of the byte-limit cases: 2560 of
	// them are exactly the 10 MiB kept.
	wideLine = 4096
)

// numbered returns "0".."n-1" plus from.
func numbered(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(from + i)
	}
	return out
}

// wide returns wideLine-byte lines "00000xxx...", "00001xxx...", ...
// for i in [from, to).
func wide(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		s := fmt.Sprintf("%05d", i)
		out = append(out, s+strings.Repeat("x", wideLine-len(s)))
	}
	return out
}

// pyWide is Python that prints wide(from, to) to stream (sys.stdout or
// sys.stderr).
func pyWide(stream string, from, to int) string {
	return fmt.Sprintf("import sys\nfor i in range(%d, %d):\n    s = '%%05d' %% i\n    %s.write(s + 'x' * (%d - len(s)) + '\\n')\n%s.flush()\n",
		from, to, stream, wideLine, stream)
}

// sameLines fails t unless got equals want, naming the first difference.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	at := func(l []string) string {
		if i < len(l) {
			return fmt.Sprintf("%.20q (%d bytes)", l[i], len(l[i]))
		}
		return "nothing"
	}
	t.Errorf("%s: %d lines, want %d; line %d is %s, want %s", what, len(got), len(want), i, at(got), at(want))
}

// outputCase is Python code and what it prints, with what a result
// keeps of it.
type outputCase struct {
	name             string
	code             string
	stdout, stderr   []string // every line printed
	keptOut, keptErr []string // what the result keeps
	// keptTotal, when set, replaces keptOut and keptErr: the result
	// keeps the first lines of each stream, keptTotal in all (which
	// stream's line came last is up to the pipes).
	keptTotal int
	truncated bool
}

// streamed collects the lines an OnStdout/OnStderr pair was called with.
type streamed struct{ out, err []string }

func (s *streamed) options() []sdbx.RunOption {
	return []sdbx.RunOption{
		sdbx.OnStdout(func(l sdbx.OutputLine) { s.out = append(s.out, l.Line) }),
		sdbx.OnStderr(func(l sdbx.OutputLine) { s.err = append(s.err, l.Line) }),
	}
}

// check compares what was streamed and kept with tt.
func (tt outputCase) check(t *testing.T, got streamed, keptOut, keptErr []string, truncated bool) {
	t.Helper()
	sameLines(t, "streamed stdout", got.out, tt.stdout)
	sameLines(t, "streamed stderr", got.err, tt.stderr)
	if tt.keptTotal > 0 {
		tt.keptOut, tt.keptErr = got.out[:min(len(keptOut), len(got.out))], got.err[:min(len(keptErr), len(got.err))]
		if n := len(keptOut) + len(keptErr); n != tt.keptTotal {
			t.Errorf("kept %d + %d lines, want %d in all", len(keptOut), len(keptErr), tt.keptTotal)
		}
	}
	sameLines(t, "kept stdout", keptOut, tt.keptOut)
	sameLines(t, "kept stderr", keptErr, tt.keptErr)
	if truncated != tt.truncated {
		t.Errorf("truncated = %v, want %v", truncated, tt.truncated)
	}
}

// shortLineAfterLimit: a line that does not fit ends what is kept; a
// shorter one after it is not kept either (the result holds the first
// lines, without a hole).
var shortLineAfterLimit = outputCase{
	name:   "a short line after the limit",
	code:   pyWide("sys.stdout", 0, 2559) + "print('y' * 4097)\nprint('end')\n",
	stdout: append(wide(0, 2559), strings.Repeat("y", 4097), "end"), stderr: []string{},
	keptOut: wide(0, 2559), keptErr: []string{}, truncated: true,
}

func TestCommandOutputLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	tests := []outputCase{
		{
			name:   "at the line limit",
			code:   "for i in range(10000): print(i)\nimport sys\nprint('e', file=sys.stderr)",
			stdout: numbered(0, keptLines), stderr: []string{"e"},
			keptOut: numbered(0, keptLines), keptErr: []string{"e"},
		},
		{
			// Lines are counted per stream: stderr's are kept.
			name:   "past the line limit",
			code:   "import sys\nfor i in range(12000): print(i)\nfor i in range(3): print(i, file=sys.stderr)",
			stdout: numbered(0, 12000), stderr: numbered(0, 3),
			keptOut: numbered(0, keptLines), keptErr: numbered(0, 3), truncated: true,
		},
		{
			name:   "at the byte limit",
			code:   pyWide("sys.stdout", 0, 2560),
			stdout: wide(0, 2560), stderr: []string{},
			keptOut: wide(0, 2560), keptErr: []string{},
		},
		{
			// Bytes count both streams together.
			name:   "past the byte limit over both streams",
			code:   pyWide("sys.stdout", 0, 1280) + pyWide("sys.stderr", 1280, 2561),
			stdout: wide(0, 1280), stderr: wide(1280, 2561),
			keptTotal: 2560, truncated: true,
		},
		shortLineAfterLimit,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got streamed
			res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: `python3 -c "$CODE"`, Env: map[string]string{"CODE": tt.code}}, got.options()...)
			if err != nil {
				t.Fatalf("RunCommand: %v", err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("exit code %d; stderr %.200q", res.ExitCode, res.Stderr)
			}
			tt.check(t, got, res.Stdout, res.Stderr, res.Truncated)
		})
	}
}

func TestCodeOutputLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	tests := []outputCase{
		{
			name:   "at the line limit",
			code:   "for i in range(10000): print(i)",
			stdout: numbered(0, keptLines), stderr: []string{},
			keptOut: numbered(0, keptLines), keptErr: []string{},
		},
		{
			name:   "past the line limit",
			code:   "import sys\nfor i in range(10001): print(i)\nsys.stdout.flush()\nfor i in range(3): print(i, file=sys.stderr)",
			stdout: numbered(0, 10001), stderr: numbered(0, 3),
			keptOut: numbered(0, keptLines), keptErr: numbered(0, 3), truncated: true,
		},
		{
			name:   "past the byte limit",
			code:   pyWide("sys.stdout", 0, 2561),
			stdout: wide(0, 2561), stderr: []string{},
			keptOut: wide(0, 2560), keptErr: []string{}, truncated: true,
		},
		shortLineAfterLimit,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got streamed
			var opts []sdbx.CodeOption
			for _, o := range got.options() {
				opts = append(opts, o)
			}
			res := runCode(t, c, sb.ID, tt.code, opts...)
			if res.Execution.Error != nil {
				t.Fatalf("raised %s: %s", res.Execution.Error.Name, res.Execution.Error.Value)
			}
			tt.check(t, got, res.Execution.Logs.Stdout, res.Execution.Logs.Stderr, res.Execution.Truncated)
		})
	}
}
