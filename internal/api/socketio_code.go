package api

import (
	"context"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// Socket.IO operations of code execution, contexts, batches and template
// creation.

// sandboxPayload is a Socket.IO payload that names a sandbox.
type sandboxPayload interface{ sandbox() string }

// decodeSandboxPayload decodes the call's payload into p (a pointer to a
// payload struct) and records the sandbox it names, which is required.
func (c *call) decodeSandboxPayload(p sandboxPayload) error {
	if err := decodeObject("payload", c.payload, p); err != nil {
		return err
	}
	if p.sandbox() == "" {
		return invalidf(`field "sandboxId": required`)
	}
	c.sandboxID = p.sandbox()
	return nil
}

// decodeRef decodes the call's payload into p (a pointer to a payload
// struct) and checks that *id, the payload's field named field, is set.
func decodeRef(c *call, p any, field string, id *string) error {
	if err := decodeObject("payload", c.payload, p); err != nil {
		return err
	}
	if *id == "" {
		return invalidf("field %q: required", field)
	}
	return nil
}

// runCode serves code:run. With a streamId, output lines (stream:output),
// rich results (stream:result) and the exception (stream:error) are
// emitted before the ack.
func (sess *session) runCode(ctx context.Context, c *call) (any, error) {
	var p runCodePayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	em, err := sess.openStream(ctx, p.StreamID)
	if err != nil {
		return nil, err
	}
	defer em.close()
	res, err := sess.h.svc.RunCode(ctx, sess.principal.Tenant, p.SandboxID, p.request(), func(ev sandbox.CodeEvent) {
		em.code(nil, ev)
	})
	if err != nil {
		return nil, err
	}
	return toExecutionResult(res), nil
}

// runBatch serves batch:run; every streamed event carries its jobId.
func (sess *session) runBatch(ctx context.Context, c *call) (any, error) {
	var p batchPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	em, err := sess.openStream(ctx, p.StreamID)
	if err != nil {
		return nil, err
	}
	defer em.close()
	results, err := sess.h.svc.RunBatch(ctx, sess.principal.Tenant, p.SandboxID, p.request(), func(jobID string, ev sandbox.CodeEvent) {
		em.code(&jobID, ev)
	})
	if err != nil {
		return nil, err
	}
	return toBatchResults(results), nil
}

func (sess *session) createContext(ctx context.Context, c *call) (any, error) {
	var p contextPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	opts := contextBody{Language: p.Language, Cwd: p.Cwd, Envs: p.Envs}.options()
	cc, err := sess.h.svc.CreateContext(ctx, sess.principal.Tenant, p.SandboxID, opts)
	if err != nil {
		return nil, err
	}
	return toCodeContext(cc), nil
}

func (sess *session) listContexts(ctx context.Context, c *call) (any, error) {
	id, err := c.decodeSandboxRef()
	if err != nil {
		return nil, err
	}
	list, err := sess.h.svc.ListContexts(ctx, sess.principal.Tenant, id)
	if err != nil {
		return nil, err
	}
	return toContextList(list), nil
}

func (sess *session) deleteContext(ctx context.Context, c *call) (any, error) {
	var ref contextRef
	if err := decodeRef(c, &ref, "contextId", &ref.ContextID); err != nil {
		return nil, err
	}
	if err := sess.h.svc.DeleteContext(ctx, sess.principal.Tenant, ref.ContextID); err != nil {
		return nil, err
	}
	return emptyJSON{}, nil
}

func (sess *session) createTemplate(ctx context.Context, c *call) (any, error) {
	var body templateConfigBody
	if err := decodeObject("payload", c.payload, &body); err != nil {
		return nil, err
	}
	t, err := sess.h.svc.CreateTemplate(ctx, sess.principal.Tenant, body.config())
	if err != nil {
		return nil, err
	}
	return toTemplate(t), nil
}
