package api

import (
	"context"
	"net/http"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

// templateLogger is the optional ability of a Service to stream template
// build output (sandbox.Service has it).
type templateLogger interface {
	TemplateLogs(ctx context.Context, tenant, id string, follow bool, onLine func(string)) (template.Template, error)
}

var _ templateLogger = (*sandbox.Service)(nil)

// templateLogs calls the service's ability, or answers the template with
// no lines when the service has none.
func (h *Handler) templateLogs(ctx context.Context, tenant, id string, follow bool, onLine func(string)) (template.Template, error) {
	if tl, ok := h.svc.(templateLogger); ok {
		return tl.TemplateLogs(ctx, tenant, id, follow, onLine)
	}
	return h.svc.Template(ctx, tenant, id)
}

// templateLogLine is one line of build output.
type templateLogLine struct {
	StreamID string `json:"streamId,omitempty"` // Socket.IO only
	Type     string `json:"type,omitempty"`     // HTTP only: "log"
	Line     string `json:"line"`
}

// templateLogsEnd ends a template's log: its status when the log was read
// to the end (still "building" without follow).
type templateLogsEnd struct {
	Type     string       `json:"type,omitempty"` // HTTP only: "end"
	Status   string       `json:"status"`
	Error    string       `json:"error,omitempty"`
	Template templateJSON `json:"template"`
	Lines    *[]string    `json:"lines,omitempty"` // Socket.IO without streamId
}

// getTemplateLogs serves GET /v1/templates/{id}/logs?follow=true: NDJSON
// {"type":"log","line"} lines, then {"type":"end","status",...}.
func (h *Handler) getTemplateLogs(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := queryParams(r.URL, "follow")
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	follow, err := boolParam(q, "follow")
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	// The template must exist before the stream starts.
	if _, err := h.svc.Template(r.Context(), p.Tenant, r.PathValue("id")); err != nil {
		h.writeError(w, r, "", err)
		return
	}
	s := newNDJSONStream(w, r)
	defer s.close()
	s.open()
	t, err := h.templateLogs(r.Context(), p.Tenant, r.PathValue("id"), follow, func(line string) {
		s.send(templateLogLine{Type: "log", Line: line})
	})
	s.finish()
	if err != nil {
		if r.Context().Err() == nil {
			h.logError(opName(r), "", err)
			s.final(ndjsonError{Type: "error", Error: toWireError(err)})
		}
		return
	}
	s.final(templateLogsEnd{Type: "end", Status: t.Status, Error: t.Error, Template: toTemplate(t)})
}

// templateLogsPayload is the template:logs payload.
type templateLogsPayload struct {
	TemplateID string  `json:"templateId"`
	Follow     bool    `json:"follow"`
	StreamID   *string `json:"streamId"`
}

// getTemplateLogs serves template:logs: with a streamId each line is
// emitted as template:log before the ack; without, the ack carries them.
func (sess *session) getTemplateLogs(ctx context.Context, c *call) (any, error) {
	var pl templateLogsPayload
	if err := decodeRef(c, &pl, "templateId", &pl.TemplateID); err != nil {
		return nil, err
	}
	em, err := sess.openStream(ctx, pl.StreamID)
	if err != nil {
		return nil, err
	}
	defer em.close()
	var lines []string
	t, err := sess.h.templateLogs(ctx, sess.principal.Tenant, pl.TemplateID, pl.Follow, func(line string) {
		if pl.StreamID == nil {
			lines = append(lines, line)
			return
		}
		em.emit("template:log", func(streamID string) any { return templateLogLine{StreamID: streamID, Line: line} })
	})
	if err != nil {
		return nil, err
	}
	end := templateLogsEnd{Status: t.Status, Error: t.Error, Template: toTemplate(t)}
	if pl.StreamID == nil {
		if lines == nil {
			lines = []string{}
		}
		end.Lines = &lines
	}
	return end, nil
}
