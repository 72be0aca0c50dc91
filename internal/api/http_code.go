package api

import (
	"net/http"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// HTTP handlers of code execution, contexts, batches and template creation.

// runCode answers with the ExecutionResult, or streams NDJSON (output
// lines, display results, the exception) when the client accepts
// application/x-ndjson.
func (h *Handler) runCode(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body runCodeBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	h.serveStreamed(w, r, id, func(send func(any)) (any, error) {
		res, err := h.svc.RunCode(r.Context(), p.Tenant, id, body.request(), func(ev sandbox.CodeEvent) {
			send(ndjsonCodeEvent(nil, ev))
		})
		if err != nil {
			return nil, err
		}
		return toExecutionResult(res), nil
	})
}

// runBatch answers with {"results": [...]}, or streams NDJSON whose event
// lines carry their jobId.
func (h *Handler) runBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body batchBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	h.serveStreamed(w, r, id, func(send func(any)) (any, error) {
		results, err := h.svc.RunBatch(r.Context(), p.Tenant, id, body.request(), func(jobID string, ev sandbox.CodeEvent) {
			send(ndjsonCodeEvent(&jobID, ev))
		})
		if err != nil {
			return nil, err
		}
		return toBatchResults(results), nil
	})
}

// createContext accepts an empty body: every field is optional.
func (h *Handler) createContext(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body contextBody
	if err := h.readOptionalBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	c, err := h.svc.CreateContext(r.Context(), p.Tenant, id, body.options())
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusCreated, toCodeContext(c))
}

func (h *Handler) listContexts(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	list, err := h.svc.ListContexts(r.Context(), p.Tenant, id)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toContextList(list))
}

func (h *Handler) deleteContext(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := h.svc.DeleteContext(r.Context(), p.Tenant, r.PathValue("contextId")); err != nil {
		h.writeError(w, r, "", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) createTemplate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var body templateConfigBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, "", err)
		return
	}
	t, err := h.svc.CreateTemplate(r.Context(), p.Tenant, body.config())
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusCreated, toTemplate(t))
}
