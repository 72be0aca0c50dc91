package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// keyJSON is the wire form of an API key (never its secret or hash).
type keyJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"createdAt"`
}

func toKey(k auth.Key) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Admin: k.Admin, CreatedAt: k.CreatedAt}
}

type createKeyBody struct {
	Name string `json:"name"`
}

func (h *Handler) keyManager() (KeyManager, error) {
	if h.keys == nil {
		return nil, fmt.Errorf("key management is not enabled on this server: %w", errdefs.ErrUnavailable)
	}
	return h.keys, nil
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var body createKeyBody
	km, err := h.keyManager()
	if err == nil {
		err = h.readBody(w, r, &body)
	}
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	secret, key, err := km.Create(r.Context(), p, body.Name)
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, struct {
		Key    keyJSON `json:"key"`
		Secret string  `json:"secret"`
	}{toKey(key), secret})
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	km, err := h.keyManager()
	var keys []auth.Key
	if err == nil {
		keys, err = km.List(r.Context(), p)
	}
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toKey(k))
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []keyJSON `json:"keys"`
	}{out})
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	km, err := h.keyManager()
	if err == nil {
		_, err = km.Revoke(r.Context(), p, r.PathValue("key"))
	}
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
