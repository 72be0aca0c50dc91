package api

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// HTTP handlers of background processes.

// procStartBody is the body of POST .../processes: a command without a
// timeout.
type procStartBody struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Envs    map[string]string `json:"envs"`
	Cwd     string            `json:"cwd"`
}

// procStdinBody is the body of POST .../processes/{pid}/stdin.
type procStdinBody struct {
	Data string `json:"data"`
	// Encoding is "utf8" (the default) or "base64".
	Encoding string `json:"encoding"`
	Close    bool   `json:"close"`
}

// procSignalBody is the body of POST .../processes/{pid}/signal.
type procSignalBody struct {
	Signal string `json:"signal"`
}

// procListJSON is the answer of GET .../processes.
type procListJSON struct {
	Processes []sandbox.Process `json:"processes"`
}

// procOutputLine is one output line of GET .../output.
type procOutputLine struct {
	Type   string `json:"type"` // "output"
	Stream string `json:"stream"`
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
	Lost   int64  `json:"lost,omitempty"`
}

// procEndLine is the last line of GET .../output: "exit" once the process
// has exited, "end" when it still runs (without follow).
type procEndLine struct {
	Type     string          `json:"type"`
	ExitCode *int            `json:"exitCode,omitempty"`
	End      int64           `json:"end"`
	Lost     int64           `json:"lost,omitempty"`
	Process  sandbox.Process `json:"process"`
}

func (h *Handler) startProcess(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body procStartBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	proc, err := h.svc.StartProcess(r.Context(), p.Tenant, id, sandbox.CommandRequest{
		Command: body.Command, Args: body.Args, Env: body.Envs, Cwd: body.Cwd,
	})
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusCreated, proc)
}

func (h *Handler) listProcesses(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	list, err := h.svc.ListProcesses(r.Context(), p.Tenant, id)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	if list == nil {
		list = []sandbox.Process{}
	}
	writeJSON(w, http.StatusOK, procListJSON{Processes: list})
}

// processOutput streams NDJSON: output lines, then an exit or end line. An
// error before the first line is an ordinary HTTP error; after it, an
// {"type":"error"} line.
func (h *Handler) processOutput(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	q, err := queryParams(r.URL, "offset", "follow")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	var offset int64
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			h.writeError(w, r, id, invalidf("query parameter %q: expected a non-negative integer, got %q", "offset", v))
			return
		}
	}
	var follow bool
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			h.writeError(w, r, id, invalidf("query parameter %q: expected true or false, got %q", "follow", v))
			return
		}
	}
	s := newNDJSONStream(w, r)
	defer s.close()
	end, err := h.svc.ProcessOutput(r.Context(), p.Tenant, id, r.PathValue("pid"), offset, follow, func(c sandbox.ProcessChunk) {
		s.send(procOutputLine{Type: "output", Stream: c.Stream, Data: c.Data, Offset: c.Offset, Lost: c.Lost})
	})
	started := s.finish()
	if err != nil {
		if !started {
			h.writeError(w, r, id, err)
			return
		}
		h.logError(opName(r), id, err)
		s.final(ndjsonError{Type: "error", Error: toWireError(err)})
		return
	}
	line := procEndLine{Type: "end", End: end.End, Lost: end.Lost, Process: end.Process}
	if !end.Process.Running && end.Process.ExitCode != nil {
		line.Type, line.ExitCode = "exit", end.Process.ExitCode
	}
	s.final(line)
}

func (h *Handler) writeProcessStdin(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body procStdinBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	data, err := decodeInput(body.Data, body.Encoding)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	proc, err := h.svc.WriteStdin(r.Context(), p.Tenant, id, r.PathValue("pid"), data, body.Close)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, proc)
}

func (h *Handler) signalProcess(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body procSignalBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	proc, err := h.svc.SignalProcess(r.Context(), p.Tenant, id, r.PathValue("pid"), body.Signal)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, proc)
}

func (h *Handler) killProcess(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	proc, err := h.svc.KillProcess(r.Context(), p.Tenant, id, r.PathValue("pid"))
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, proc)
}

// decodeInput decodes the data of a stdin or terminal input: encoding is
// utf8 (the default) or base64.
func decodeInput(data, encoding string) ([]byte, error) {
	switch encoding {
	case "", "utf8", "utf-8":
		return []byte(data), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, invalidf("data: not valid base64")
		}
		return b, nil
	}
	return nil, invalidf("encoding: want utf8 or base64, got %q", encoding)
}
