package api

import (
	"strings"
	"testing"
)

func TestHTTPProcesses(t *testing.T) {
	e := newEnv(t)
	procs := "/v1/sandboxes/" + createSandbox(t, e) + "/processes"

	resp := e.do(t, "POST", procs, keyA, `{"command":"sleep 60"}`)
	started := decode(t, resp)
	if resp.StatusCode != 201 || started["running"] != true || started["id"] == "" {
		t.Fatalf("start: %d %v", resp.StatusCode, started)
	}
	pid := started["id"].(string)

	resp = e.do(t, "POST", procs+"/"+pid+"/stdin", keyA, `{"data":"aGkK","encoding":"base64"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("stdin: %d %v", resp.StatusCode, decode(t, resp))
	}

	resp = e.do(t, "GET", procs+"/"+pid+"/output?offset=5", keyA, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ndjsonType {
		t.Fatalf("output: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := decodeNDJSON(t, resp.Body, nil)
	// "/bin/bash -c sleep 60\n" is 22 bytes; from 5 on, then "hi\n".
	if len(lines) != 3 || lines[0]["type"] != "output" || lines[0]["data"] != "bash -c sleep 60\n" || lines[0]["offset"] != float64(5) ||
		lines[1]["data"] != "hi\n" || lines[2]["type"] != "end" || lines[2]["end"] != float64(25) {
		t.Fatalf("output lines: %v", lines)
	}

	resp = e.do(t, "POST", procs+"/"+pid+"/signal", keyA, `{"signal":"SIGBOGUS"}`)
	if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 400 || code != "invalid_argument" || !strings.Contains(msg, "SIGBOGUS") {
		t.Fatalf("bad signal: %d %s %s", resp.StatusCode, code, msg)
	}
	resp = e.do(t, "POST", procs+"/"+pid+"/signal", keyA, `{"signal":"TERM"}`)
	if got := decode(t, resp); resp.StatusCode != 200 || got["running"] != false || got["exitCode"] != float64(143) {
		t.Fatalf("signal: %d %v", resp.StatusCode, got)
	}
	resp = e.do(t, "GET", procs+"/"+pid+"/output?follow=true", keyA, "")
	lines = decodeNDJSON(t, resp.Body, nil)
	if last := lines[len(lines)-1]; last["type"] != "exit" || last["exitCode"] != float64(143) {
		t.Fatalf("final line: %v", last)
	}

	resp = e.do(t, "GET", procs, keyA, "")
	list := decode(t, resp)["processes"].([]any)
	if resp.StatusCode != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != pid {
		t.Fatalf("list: %d %v", resp.StatusCode, list)
	}
	resp = e.do(t, "DELETE", procs+"/"+pid, keyA, "")
	if got := decode(t, resp); resp.StatusCode != 200 || got["exitCode"] != float64(143) {
		t.Fatalf("kill: %d %v", resp.StatusCode, got)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", procs + "/nope/output", "", 404, "not_found"},
		{"DELETE", procs + "/nope", "", 404, "not_found"},
		{"GET", procs + "/" + pid + "/output?offset=-1", "", 400, "invalid_argument"},
		{"GET", procs + "/" + pid + "/output?follow=maybe", "", 400, "invalid_argument"},
		{"GET", procs + "/" + pid + "/output?bogus=1", "", 400, "invalid_argument"},
		{"POST", procs, `{"command":"x","timeoutMs":5}`, 400, "invalid_argument"},
		{"POST", procs, `{}`, 400, "invalid_argument"},
		{"POST", procs + "/" + pid + "/stdin", `{"data":"x","encoding":"rot13"}`, 400, "invalid_argument"},
		{"POST", procs + "/" + pid + "/stdin", `{"data":"x"}`, 409, "conflict"},
		{"PUT", procs + "/" + pid + "/signal", `{}`, 405, "invalid_argument"},
	} {
		resp := e.do(t, tc.method, tc.path, keyA, tc.body)
		if code, _ := errorOf(t, decode(t, resp)); resp.StatusCode != tc.status || code != tc.code {
			t.Errorf("%s %s %s: %d %s, want %d %s", tc.method, tc.path, tc.body, resp.StatusCode, code, tc.status, tc.code)
		}
	}
}
