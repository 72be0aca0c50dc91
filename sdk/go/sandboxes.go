package sdbx

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// createSandboxBody is the wire form of CreateSandboxOptions.
type createSandboxBody struct {
	TemplateID     string            `json:"templateId"`
	Name           string            `json:"name,omitempty"`
	ExpiryTime     int64             `json:"expiryTime,omitempty"`
	InitialEnvVars map[string]string `json:"initialEnvVars,omitempty"`
	Resources      *Resources        `json:"resources,omitempty"`
	Network        *Network          `json:"network,omitempty"`
}

// CreateSandbox creates a sandbox and returns it once it is ready. It is
// never retried automatically. Bad options fail with a *SandboxError
// matching ErrInvalidArgument whose message names the field; an unknown
// template fails with ErrNotFound.
func (c *Client) CreateSandbox(ctx context.Context, opts CreateSandboxOptions) (*Sandbox, error) {
	body := createSandboxBody{
		TemplateID:     opts.TemplateID,
		Name:           opts.Name,
		ExpiryTime:     durationMs(opts.Expiry),
		InitialEnvVars: opts.Env,
	}
	if opts.Resources != (Resources{}) {
		body.Resources = &opts.Resources
	}
	if opts.Network.Egress != "" || len(opts.Network.Allow) > 0 {
		body.Network = &opts.Network
	}
	var out struct {
		Sandbox *Sandbox `json:"sandbox"`
	}
	r := &request{method: http.MethodPost, path: []string{"sandboxes"}, body: body, kind: opSandbox}
	if err := c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	if out.Sandbox == nil {
		return nil, &Error{Code: CodeInternal, Message: r.op() + `: response has no "sandbox"`}
	}
	return out.Sandbox, nil
}

// GetSandbox returns the current record of a sandbox. An unknown id fails
// with a *SandboxError matching ErrNotFound.
func (c *Client) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	var sb Sandbox
	r := &request{method: http.MethodGet, path: []string{"sandboxes", id}, kind: opSandbox, sandboxID: id}
	if err := c.call(ctx, r, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// ListSandboxes returns the caller's live sandboxes.
func (c *Client) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	var out struct {
		Sandboxes []Sandbox `json:"sandboxes"`
	}
	r := &request{method: http.MethodGet, path: []string{"sandboxes"}, kind: opSandbox}
	if err := c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	if out.Sandboxes == nil {
		out.Sandboxes = []Sandbox{}
	}
	return out.Sandboxes, nil
}

// DeleteSandbox terminates a sandbox and frees everything it used. An
// unknown id fails with a *SandboxError matching ErrNotFound.
func (c *Client) DeleteSandbox(ctx context.Context, id string) error {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return err
	}
	r := &request{method: http.MethodDelete, path: []string{"sandboxes", id}, kind: opSandbox, sandboxID: id}
	return c.call(ctx, r, nil)
}

// ListTemplates returns one page of the template catalog. page starts at 1;
// pageSize is 1-100. Zero values mean the server's defaults (page 1, 10 per
// page).
func (c *Client) ListTemplates(ctx context.Context, page, pageSize int) (*TemplatePage, error) {
	q := url.Values{}
	if page != 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if pageSize != 0 {
		q.Set("pageSize", strconv.Itoa(pageSize))
	}
	var tp TemplatePage
	r := &request{method: http.MethodGet, path: []string{"templates"}, query: q}
	if err := c.call(ctx, r, &tp); err != nil {
		return nil, err
	}
	if tp.Templates == nil {
		tp.Templates = []Template{}
	}
	return &tp, nil
}

// GetTemplate returns one template. An unknown id fails with an *Error
// matching ErrNotFound.
func (c *Client) GetTemplate(ctx context.Context, id string) (*Template, error) {
	if err := checkID(opOther, "templateId", id); err != nil {
		return nil, err
	}
	var t Template
	r := &request{method: http.MethodGet, path: []string{"templates", id}}
	if err := c.call(ctx, r, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
