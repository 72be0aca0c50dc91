package sdbx

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// TemplateConfig asks the server to build a custom template (the TS SDK's
// createTemplate options). Name and Language are required; the base is
// DockerImage when given, else the built-in of Language and Version;
// Dependencies and InstallCommand run in a build sandbox.
type TemplateConfig struct {
	Name           string            `json:"name"`
	Language       string            `json:"language"`
	Version        string            `json:"version,omitempty"`
	DockerImage    string            `json:"dockerImage,omitempty"`
	Dependencies   []string          `json:"dependencies,omitempty"`
	InstallCommand string            `json:"installCommand,omitempty"`
	DefaultEnvVars map[string]string `json:"defaultEnvVars,omitempty"`
}

// Template statuses.
const (
	TemplateReady       = "ready"
	TemplateBuilding    = "building"
	TemplateFailed      = "failed"
	TemplatePending     = "pending"
	TemplateUnavailable = "unavailable"
)

// CreateTemplate registers a custom template and starts its build. It
// returns at once with Status "building"; follow the build with
// TemplateLogs (follow=true) or poll GetTemplate until the status is
// "ready" or "failed" (Error says why). A name the caller already uses
// fails with an *Error matching ErrConflict, a bad field with
// ErrInvalidArgument naming it.
func (c *Client) CreateTemplate(ctx context.Context, cfg TemplateConfig) (*Template, error) {
	var t Template
	r := &request{method: http.MethodPost, path: []string{"templates"}, body: cfg}
	if err := c.call(ctx, r, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTemplate deletes one of the caller's custom templates (a build in
// progress is stopped). A built-in fails with ErrPermissionDenied, a
// template that sandboxes still use with ErrConflict.
func (c *Client) DeleteTemplate(ctx context.Context, id string) error {
	if err := checkID(opOther, "templateId", id); err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodDelete, path: []string{"templates", id}}, nil)
}

// TemplateLogsEnd ends TemplateLogs: the template as it was when its log
// had been read to the end.
type TemplateLogsEnd struct {
	Status   string   `json:"status"`
	Error    string   `json:"error,omitempty"`
	Template Template `json:"template"`
}

// TemplateLogs calls onLine (from the calling goroutine, in order) for
// each line of the output of a template's last build. With follow and a
// build in progress, it returns when the build has ended, so its wait is
// bounded only by ctx; otherwise once the lines kept so far (the last
// 1 MiB) were delivered. The output of a failed build stays readable and
// ends with the reason.
func (c *Client) TemplateLogs(ctx context.Context, id string, follow bool, onLine func(string)) (*TemplateLogsEnd, error) {
	if err := checkID(opOther, "templateId", id); err != nil {
		return nil, err
	}
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	r := &request{method: http.MethodGet, path: []string{"templates", id, "logs"}, query: q, accept: ndjson}
	var end *TemplateLogsEnd
	err := c.readLines(ctx, r, follow, func(raw json.RawMessage) (bool, error) {
		// The error line's "error" is an object, the end line's a string.
		var head struct {
			Type string `json:"type"`
			Line string `json:"line"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return false, decodeError(r, err)
		}
		switch head.Type {
		case "log":
			if onLine != nil {
				onLine(head.Line)
			}
		case "end":
			end = &TemplateLogsEnd{}
			if err := json.Unmarshal(raw, end); err != nil {
				return false, decodeError(r, err)
			}
			return true, nil
		case "error":
			var el struct {
				Error *wireError `json:"error"`
			}
			_ = json.Unmarshal(raw, &el)
			return false, streamError(r, el.Error)
		}
		// Unknown line types are ignored so that the server can add new ones.
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return end, nil
}
