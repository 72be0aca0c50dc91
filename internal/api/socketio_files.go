package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// Socket.IO operations of files. Content travels inside the JSON payload
// and ack, as UTF-8 text or base64, so it is bounded: a file:write by the
// message size (Limits.MaxMessageBytes), a file:read by
// Limits.MaxReadBytes. Larger files go over HTTP.

// checkEncoding returns the content encoding of a payload: utf8 (the
// default) or base64.
func checkEncoding(enc string) (string, error) {
	switch enc {
	case "", encodingUTF8:
		return encodingUTF8, nil
	case encodingBase64:
		return encodingBase64, nil
	}
	return "", invalidf(`field "encoding": expected "utf8" or "base64", got %q`, enc)
}

// requirePath checks the payload's path is present; what it must look
// like is the service's to say.
func requirePath(path string) error {
	if path == "" {
		return invalidf(`field "path": required`)
	}
	return nil
}

func (sess *session) writeFile(ctx context.Context, c *call) (any, error) {
	var p fileWritePayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	if p.Content == nil {
		return nil, invalidf(`field "content": required (it may be "")`)
	}
	enc, err := checkEncoding(p.Encoding)
	if err != nil {
		return nil, err
	}
	var content io.Reader
	switch enc {
	case encodingBase64:
		data, err := decodeBase64(*p.Content)
		if err != nil {
			return nil, err
		}
		content = bytes.NewReader(data)
	default:
		content = strings.NewReader(*p.Content)
	}
	entry, err := sess.h.svc.WriteFile(ctx, sess.principal.Tenant, p.SandboxID, p.Path, content,
		sandbox.WriteFileOptions{CreateParents: p.CreateParents})
	if err != nil {
		return nil, err
	}
	return toFileEntry(entry), nil
}

// decodeBase64 decodes standard base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var raw error
		if data, raw = base64.RawStdEncoding.DecodeString(s); raw != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return nil, invalidf(`field "content": not valid base64 (at byte %d)`, int64(ce))
			}
			return nil, invalidf(`field "content": not valid base64`)
		}
	}
	return data, nil
}

// readFile serves file:read: the whole content in the ack, up to
// Limits.MaxReadBytes.
func (sess *session) readFile(ctx context.Context, c *call) (any, error) {
	var p fileReadPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	enc, err := checkEncoding(p.Encoding)
	if err != nil {
		return nil, err
	}
	entry, rc, err := sess.h.svc.OpenFile(ctx, sess.principal.Tenant, p.SandboxID, p.Path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	limit := sess.h.limits.MaxReadBytes
	if entry.Size > limit {
		return nil, sess.tooLargeToRead(p.SandboxID, p.Path)
	}
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("file %s: reading: %w", p.Path, err)
	}
	if int64(len(data)) > limit {
		return nil, sess.tooLargeToRead(p.SandboxID, p.Path)
	}
	out := fileContentJSON{Encoding: enc, Size: int64(len(data))}
	switch enc {
	case encodingBase64:
		out.Content = base64.StdEncoding.EncodeToString(data)
	default:
		if !utf8.Valid(data) {
			return nil, invalidf("file %s: not valid UTF-8 text; read it with encoding \"base64\"", p.Path)
		}
		out.Content = string(data)
	}
	return out, nil
}

// tooLargeToRead is the error of a file:read past Limits.MaxReadBytes; it
// points to the HTTP download.
func (sess *session) tooLargeToRead(sandboxID, path string) error {
	return invalidf("file %s: larger than the %d bytes file:read returns; download it with GET /v1/sandboxes/%s/files?path=%s",
		path, sess.h.limits.MaxReadBytes, url.PathEscape(sandboxID), url.QueryEscape(path))
}

func (sess *session) deleteFile(ctx context.Context, c *call) (any, error) {
	var p fileDeletePayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	if err := sess.h.svc.DeleteFile(ctx, sess.principal.Tenant, p.SandboxID, p.Path, p.Recursive); err != nil {
		return nil, err
	}
	return emptyJSON{}, nil
}

// listFiles serves file:list; path is optional.
func (sess *session) listFiles(ctx context.Context, c *call) (any, error) {
	var p fileListPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	list, err := sess.h.svc.ListFiles(ctx, sess.principal.Tenant, p.SandboxID, p.Path)
	if err != nil {
		return nil, err
	}
	return toFileList(list), nil
}

// requireMovePaths checks a move names both its source and destination.
func requireMovePaths(from, to string) error {
	switch {
	case from == "":
		return invalidf(`field "from": required`)
	case to == "":
		return invalidf(`field "to": required`)
	}
	return nil
}

// statFile serves file:stat.
func (sess *session) statFile(ctx context.Context, c *call) (any, error) {
	var p fileStatPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	entry, err := sess.h.svc.StatFile(ctx, sess.principal.Tenant, p.SandboxID, p.Path)
	if err != nil {
		return nil, err
	}
	return toFileEntry(entry), nil
}

// makeDir serves file:mkdir.
func (sess *session) makeDir(ctx context.Context, c *call) (any, error) {
	var p fileMkdirPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	entry, err := sess.h.svc.MakeDir(ctx, sess.principal.Tenant, p.SandboxID, p.Path, p.Parents)
	if err != nil {
		return nil, err
	}
	return toFileEntry(entry), nil
}

// moveFile serves file:move.
func (sess *session) moveFile(ctx context.Context, c *call) (any, error) {
	var p fileMovePayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requireMovePaths(p.From, p.To); err != nil {
		return nil, err
	}
	entry, err := sess.h.svc.MoveFile(ctx, sess.principal.Tenant, p.SandboxID, p.From, p.To, p.Overwrite)
	if err != nil {
		return nil, err
	}
	return toFileEntry(entry), nil
}

// fileExists serves file:exists.
func (sess *session) fileExists(ctx context.Context, c *call) (any, error) {
	var p fileStatPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	ok, err := sess.h.svc.FileExists(ctx, sess.principal.Tenant, p.SandboxID, p.Path)
	if err != nil {
		return nil, err
	}
	return fileExistsJSON{Exists: ok}, nil
}
