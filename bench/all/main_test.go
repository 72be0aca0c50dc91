package main

import "testing"

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"python3", "-c", "print(1)", "it's", "plain"})
	if want := `python3 -c 'print(1)' 'it'\''s' plain`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestFaster(t *testing.T) {
	if got := faster(5, 20); got != "4.0× faster" {
		t.Errorf("faster(5, 20) = %q", got)
	}
	if got := faster(60, 20); got != "3.0× slower" {
		t.Errorf("faster(60, 20) = %q", got)
	}
}
