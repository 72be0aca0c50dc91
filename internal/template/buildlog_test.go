package template

import (
	"strings"
	"testing"
)

func TestBuildLogSince(t *testing.T) {
	l := newBuildLog()
	l.add("one")
	l.add("two")
	lines, pos, ended, changed := l.since(0)
	if strings.Join(lines, "|") != "one|two" || pos != 8 || ended {
		t.Fatalf("since(0) = %q, %d, %v", lines, pos, ended)
	}
	select {
	case <-changed:
		t.Fatal("changed before a change")
	default:
	}
	l.add("three")
	<-changed
	if lines, _, _, _ := l.since(pos); strings.Join(lines, "|") != "three" {
		t.Fatalf("since(%d) = %q", pos, lines)
	}
	l.end()
	if _, _, ended, _ := l.since(0); !ended {
		t.Fatal("not ended after end()")
	}
}

func TestBuildLogKeepsTheEnd(t *testing.T) {
	l := newBuildLog()
	line := strings.Repeat("x", 1000)
	for range 2 * maxBuildLog / 1000 {
		l.add(line)
	}
	l.add("last")
	s := l.String()
	if len(s) > maxBuildLog+100 || !strings.HasPrefix(s, droppedNote+"\n") || !strings.HasSuffix(s, "last\n") {
		t.Fatalf("kept %d bytes, starting %q", len(s), s[:40])
	}
	// A reader from the start is told that lines were dropped.
	lines, _, _, _ := l.since(0)
	if lines[0] != droppedNote || lines[len(lines)-1] != "last" {
		t.Fatalf("since(0): first %q, last %q", lines[0], lines[len(lines)-1])
	}
}
