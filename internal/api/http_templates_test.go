package api

import "testing"

func TestTemplateDelete(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, "POST", "/v1/templates", keyA, `{"name": "mine", "language": "python"}`)
	created := decode(t, resp)
	id, _ := created["id"].(string)
	if resp.StatusCode != 201 || id == "" || created["status"] != "building" {
		t.Fatalf("create: %d %v", resp.StatusCode, created)
	}
	for _, tc := range []struct {
		id   string
		want int
	}{
		{id, 204},
		{id, 404},
		{"python-3-11", 403},
	} {
		resp := e.do(t, "DELETE", "/v1/templates/"+tc.id, keyA, "")
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("DELETE /v1/templates/%s: %d, want %d", tc.id, resp.StatusCode, tc.want)
		}
	}
}
