package sdbx

import (
	"context"
	"net/http"
	"time"
)

// APIKey describes an API key. The secret is only ever returned once, by
// CreateKey.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateKey makes a new API key with a tenant of its own (admin key only)
// and returns it with its secret, which the server does not keep.
func (c *Client) CreateKey(ctx context.Context, name string) (*APIKey, string, error) {
	var out struct {
		Key    *APIKey `json:"key"`
		Secret string  `json:"secret"`
	}
	r := &request{method: http.MethodPost, path: []string{"keys"}, body: map[string]string{"name": name}}
	if err := c.call(ctx, r, &out); err != nil {
		return nil, "", err
	}
	if out.Key == nil || out.Secret == "" {
		return nil, "", &Error{Code: CodeInternal, Message: r.op() + `: response has no "key" or "secret"`}
	}
	return out.Key, out.Secret, nil
}

// ListKeys returns every API key (admin key only).
func (c *Client) ListKeys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	if err := c.call(ctx, &request{method: http.MethodGet, path: []string{"keys"}}, &out); err != nil {
		return nil, err
	}
	if out.Keys == nil {
		out.Keys = []APIKey{}
	}
	return out.Keys, nil
}

// RevokeKey deletes the key with this id or name (admin key only); it is
// refused from then on and its open connections are closed.
func (c *Client) RevokeKey(ctx context.Context, idOrName string) error {
	if err := checkID(opOther, "key", idOrName); err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodDelete, path: []string{"keys", idOrName}}, nil)
}
