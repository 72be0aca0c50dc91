package agentclient

import (
	"bufio"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// agentLines are lines as the agent writes them, and lines the fast path
// must leave to encoding/json.
var agentLines = []string{
	`{"t":"done","ts":1764147600123,"done":{"executionCount":12,"timedOut":false,"stateKept":true},"keepAlive":true}`,
	`{"t":"stdout","d":"hello wörld","ts":1764147600123}`,
	`{"t":"stderr","d":"","ts":1}`,
	`{"t":"exit","code":-1,"timedOut":true,"keepAlive":true}`,
	`{"t":"pong","version":"1.2.3","keepAlive":true}`,
	`{"t":"error","err":"not_found","msg":"context ctx-1: not found"}`,
	`{"t":"started","pid":4242}`,
	`{"t":"exists","exists":true}`,
	`{"t":"done","done":{}}`,
	`{}`, // the first agentFastLines lines end here
	// encoding/json's: escapes, other keys, case-folded keys, repeats,
	// nulls, fractions, white space, trailing bytes, bad JSON.
	`{"t":"stdout","d":"tab\there \"q\" \u00e9","ts":1}`,
	`{"t":"display","result":{"text":"1","html":"<b>1</b>"}}`,
	`{"T":"stdout","D":"x"}`,
	`{"t":"a","t":"b"}`,
	`{"t":"done","done":{"executionCount":1,"executionCount":2}}`,
	`{"t":"done","done":null}`,
	`{"t":"exit","code":1.0}`,
	`{"t":"exit","code":01}`,
	`{"t":"exit","code":12345678901234567890}`,
	`{"t": "stdout"}`,
	`{"t":"stdout"} `,
	"{\"t\":\"stdout\",\"d\":\"\xff\"}",
	`{"t":"stdout",}`,
	`{"t":"stdout"`,
	`{"keepAlive":tru}`,
	`[]`,
	``,
}

// agentFastLines is how many of agentLines, from the first, the fast path
// reads.
const agentFastLines = 10

// TestDecodeEventMatchesJSON checks that decodeEvent decodes every line
// exactly as encoding/json does, errors included.
func TestDecodeEventMatchesJSON(t *testing.T) {
	for _, line := range agentLines {
		checkDecodeEvent(t, []byte(line))
	}
	var ev agentproto.Event
	if !scanEvent([]byte(agentLines[0]), &ev) || ev.Done == nil || ev.Done.ExecutionCount != 12 || !ev.KeepAlive {
		t.Fatalf("the agent's done line missed the fast path: %+v", ev)
	}
	// The agent's lines take the fast path; the others are left to
	// encoding/json (a scanner that took a repeated key, say, would
	// still decode like encoding/json but read more than it should).
	for i, line := range agentLines {
		var ev agentproto.Event
		if got, want := scanEvent([]byte(line), &ev), i < agentFastLines; got != want {
			t.Errorf("scanEvent(%q) read the line: %v, want %v", line, got, want)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, line := range agentLines {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkDecodeEvent(t, line) })
}

func checkDecodeEvent(t *testing.T, line []byte) {
	t.Helper()
	var want agentproto.Event
	got, gotErr := decodeEvent(line)
	wantErr := json.Unmarshal(line, &want)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("decodeEvent(%q) error %v, encoding/json's %v", line, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeEvent(%q) = %+v, encoding/json gives %+v", line, got, want)
	}
}

// TestReadLineInPlace checks that lines come out whole and in order,
// whether they sit in the buffer or span several reads, and that limits
// and a missing newline are reported as readLine reports them.
func TestReadLineInPlace(t *testing.T) {
	long := strings.Repeat("x", 100)
	br := bufio.NewReaderSize(strings.NewReader("a\n"+long+"\nb\n\nlast"), 16)
	for _, want := range []string{"a", long, "b", ""} {
		line, err := readLineInPlace(br, 1000)
		if err != nil || string(line) != want {
			t.Fatalf("line %q, %v; want %q", line, err, want)
		}
	}
	if line, err := readLineInPlace(br, 1000); string(line) != "last" || err == nil {
		t.Fatalf("unterminated line: %q, %v", line, err)
	}
	if _, err := readLineInPlace(br, 1000); err == nil {
		t.Fatal("no error at the end")
	}
	br = bufio.NewReaderSize(strings.NewReader("abcdef\n"), 16)
	if _, err := readLineInPlace(br, 6); err == nil {
		t.Fatal("a 7-byte line passed a limit of 6")
	}
}

// BenchmarkDecodeDone decodes the agent's final event of a code run:
//
//	go test ./internal/agentclient -run '^$' -bench DecodeDone -benchmem
func BenchmarkDecodeDone(b *testing.B) {
	line := []byte(agentLines[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEvent(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev agentproto.Event
			if err := json.Unmarshal(line, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
