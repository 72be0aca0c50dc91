package procfs

import "testing"

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want Proc
		ok   bool
	}{
		{"plain", "12 (sleep) S 7 12 5 0 -1", Proc{PID: 12, PPID: 7, Pgrp: 12, Sid: 5, State: 'S'}, true},
		{"comm with spaces and parens", "12 (a) b (c)) Z 1 2 3 0", Proc{PID: 12, PPID: 1, Pgrp: 2, Sid: 3, State: 'Z'}, true},
		{"truncated", "12 (x) S 1", Proc{}, false},
		{"no comm", "12 S 1 2 3", Proc{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseStat(12, []byte(tt.stat))
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseStat = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
