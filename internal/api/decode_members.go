package api

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"unicode/utf8"
)

// The allocation-light reading of JSON objects behind decodeObject: the
// members of an already validated object are sliced out of it rather than
// decoded into a map, and plain strings are copied rather than unquoted.

// stringType is the type whose values isPlainString's fast path sets.
var stringType = reflect.TypeFor[string]()

// member is one member of a JSON object: its (unquoted) key and its raw
// value.
type member struct {
	key string
	raw json.RawMessage
}

// objectMembers returns the members of data, a well-formed JSON object
// (already validated, without surrounding space), sorted by key; of a
// repeated key the last one counts. That is what decoding into a
// map[string]json.RawMessage and sorting its keys gives. The raw values
// share data's memory.
func objectMembers(data []byte) ([]member, error) {
	if len(data) < 2 || data[0] != '{' {
		return nil, errMalformed
	}
	var out []member
	i := skipSpace(data, 1)
	for i < len(data) && data[i] != '}' {
		kend := valueEnd(data, i)
		if data[i] != '"' || kend < 0 {
			return nil, errMalformed
		}
		key, err := unquote(data[i:kend])
		if err != nil {
			return nil, err
		}
		i = skipSpace(data, kend)
		if i >= len(data) || data[i] != ':' {
			return nil, errMalformed
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend <= i {
			return nil, errMalformed
		}
		out = append(out, member{key: key, raw: data[i:vend]})
		i = skipSpace(data, vend)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	if i != len(data)-1 {
		return nil, errMalformed
	}
	slices.SortStableFunc(out, func(a, b member) int { return cmp.Compare(a.key, b.key) })
	// Keep the last of each run of equal keys.
	kept := out[:0]
	for j, m := range out {
		if j+1 < len(out) && out[j+1].key == m.key {
			continue
		}
		kept = append(kept, m)
	}
	return kept, nil
}

// errMalformed reports input that objectMembers cannot split; it does not
// happen for input that passed validation.
var errMalformed = &json.SyntaxError{}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at i,
// or -1 when it does not end.
func valueEnd(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if i >= len(data) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the object holding a number or literal
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	if depth != 0 {
		return -1
	}
	return i
}

// unquote decodes a JSON string literal.
func unquote(lit []byte) (string, error) {
	if isPlainString(lit) {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	err := json.Unmarshal(lit, &s)
	return s, err
}

// isPlainString reports whether raw is a JSON string literal without
// escapes or control characters whose content is valid UTF-8: one whose
// value is its content, byte for byte.
func isPlainString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(in)
}
